"""JSON-safe conversion, ids and UTC time helpers shared by every ``to_dict``.

Pure standard library. See docs/event-model.md, conventions (ids, time, serialization).
"""

from __future__ import annotations

import base64
import dataclasses
import os
from datetime import datetime, timezone
from enum import Enum
from typing import Any, overload

ID_PREFIXES = {"session": "ses_", "run": "run_", "event": "evt_", "normalized_event": "nevt_"}


# Ids come from ``os.urandom`` (what ``secrets.token_hex`` uses), drawn 256 at a time: one
# system call per id was the largest part of its cost (~0.4 µs of ~0.5 µs) on the event ingest
# path. ``list.pop`` is atomic, so threads never share an id; a forked child drops the pool it
# inherited (the parent would hand out the same ids).
_ID_BATCH = 256
_id_pool: list[str] = []

_UTC = timezone.utc


def _refill_ids() -> None:
    global _id_pool
    text = os.urandom(16 * _ID_BATCH).hex()
    _id_pool = [text[i:i + 32] for i in range(0, 32 * _ID_BATCH, 32)]


def _forget_ids_after_fork() -> None:
    global _id_pool
    _id_pool = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids_after_fork)


def new_id(prefix: str) -> str:
    """``prefix`` + 32 lowercase hex chars from 16 random bytes (``ses_…``, ``run_…``, ``evt_…``)."""
    while True:
        try:
            return prefix + _id_pool.pop()
        except IndexError:
            _refill_ids()


def utc_now() -> datetime:
    """The current time as a tz-aware UTC datetime."""
    return datetime.now(timezone.utc)


@overload
def format_datetime(dt: datetime) -> str: ...
@overload
def format_datetime(dt: None) -> None: ...
@overload
def format_datetime(dt: datetime | None) -> str | None: ...
def format_datetime(dt: datetime | None) -> str | None:
    """ISO-8601 with microseconds and a ``Z`` suffix; naive datetimes are taken as UTC."""
    if dt is None:
        return None
    if type(dt) is datetime and dt.tzinfo is _UTC:  # the common case: the same text, no conversion
        return dt.isoformat(timespec="microseconds")[:-6] + "Z"
    dt = ensure_aware(dt)
    # isoformat, not strftime: strftime("%Y") does not zero-pad years before 1000 on glibc
    return dt.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_datetime(value: str) -> datetime:
    """Parse ISO-8601 with ``Z`` or ``±hh:mm``; strings without an offset raise ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError("datetime must be a string")
    s = value.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        raise ValueError(f"datetime has no UTC offset: {value!r}")
    return dt.astimezone(timezone.utc)


def ensure_aware(dt: datetime) -> datetime:
    """Naive → assume UTC; aware → converted to UTC."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` into plain JSON types (keys → str, enums → value, datetimes → ISO…)."""
    t = type(value)  # the plain JSON types first (exact types: a str-enum member is not one)
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if t is dict:
        return {k if type(k) is str else _json_key(k): to_jsonable(v) for k, v in value.items()}
    if t is list:
        return [to_jsonable(v) for v in value]
    # Enum before str/int: a ``str``-enum member is a str but must serialize as its plain value
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {_json_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return repr(value)


def _json_key(k: object) -> str:
    if isinstance(k, Enum):
        return str(k.value)
    if type(k) is str:
        return k
    return str(k)


def first_set(*values: Any) -> Any:
    """The first argument that is neither ``None`` nor ``False`` (Elixir ``a || b``); else None."""
    for v in values:
        if v is not None and v is not False:
            return v
    return None
