"""JSON bytes for LocalStore files: orjson when installed (several times faster), else ``json``.

Event lines follow spec part 3 §3.2: exactly ``Event.to_dict()`` (11 keys, that order), compact,
UTF-8 without ASCII escaping, one per line. ``event_line_parts`` serializes an event once,
*before* a sequence number exists, and returns the bytes on either side of the number so the
append path can splice it in under the lock.
"""

from __future__ import annotations

import json
from datetime import timezone
from typing import Any

from ..core.events import Event
from ..core.serialization import format_datetime, to_jsonable

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is optional
    _orjson = None

__all__ = ["dumps", "loads", "event_line_parts", "HAVE_ORJSON"]

HAVE_ORJSON = _orjson is not None
_SEQ_MARK = b'"sequence_number":0,'


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=to_jsonable).encode("utf-8")


if _orjson is not None:
    _OPTS = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON; values JSON cannot hold go through ``to_jsonable``."""
        try:
            return _orjson.dumps(obj, default=to_jsonable, option=_OPTS)
        except TypeError:  # non-str dict keys, ints beyond 64 bits: the slow exact path
            return _json_dumps(to_jsonable(obj))

    loads = _orjson.loads
else:  # pragma: no cover
    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON; values JSON cannot hold go through ``to_jsonable``."""
        return _json_dumps(obj)

    def loads(data: bytes | str) -> Any:
        return json.loads(data)


_UTC = timezone.utc


def event_line_parts(e: Event) -> tuple[bytes, bytes]:
    """``(before, after)``: the event's JSON line is ``before + str(seq) + after`` (``after`` ends
    with ``\\n``). Raises ``TypeError``/``ValueError`` when the event cannot be serialized."""
    ts = e.timestamp
    if ts.tzinfo is _UTC:  # the common case, same text as format_datetime at a third of the cost
        ts_text = ts.isoformat(timespec="microseconds")[:-6] + "Z"
    else:
        ts_text = format_datetime(ts)
    d = {
        "id": e.id, "type": e.type._value_, "timestamp": ts_text, "session_id": e.session_id,
        "run_id": e.run_id, "sequence_number": 0, "data": e.data, "metadata": e.metadata,
        "schema_version": e.schema_version, "provider": e.provider, "correlation_id": e.correlation_id,
    }
    line = dumps(d)
    # The first occurrence is the key itself: every value before it is a JSON string, in which
    # a quote is always escaped, so the marker cannot appear inside one.
    i = line.index(_SEQ_MARK) + len(_SEQ_MARK) - 2
    return line[:i], line[i + 1:] + b"\n"
