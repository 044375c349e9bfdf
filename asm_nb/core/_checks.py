"""Small validation helpers shared by the ``from_dict`` constructors of core objects."""

from __future__ import annotations

from datetime import datetime
from collections.abc import Mapping
from typing import Any

from .errors import AsmError
from .serialization import parse_datetime


def require_str(d: Mapping[str, Any], key: str) -> str:
    """``None`` → "<key> is required"; ``""`` → "cannot be empty"; non-str → "must be a string"."""
    v = d.get(key)
    if v is None:
        raise AsmError("validation_error", f"{key} is required")
    if not isinstance(v, str):
        raise AsmError("validation_error", f"{key} must be a string")
    if v == "":
        raise AsmError("validation_error", f"{key} cannot be empty")
    return v


def require_non_empty(value: object, key: str) -> str:
    """Constructor rule: missing/None → "<key> is required", ``""`` → "<key> cannot be empty"."""
    if value is None:
        raise AsmError("validation_error", f"{key} is required")
    if isinstance(value, str) and value == "":
        raise AsmError("validation_error", f"{key} cannot be empty")
    if not isinstance(value, str):
        raise AsmError("validation_error", f"{key} must be a string")
    return value


def require_datetime(d: Mapping[str, Any], key: str, *, label: str = "datetime") -> datetime:
    """``from_dict`` rule for a required datetime: None → "<label> is required", non-str →
    "<label> must be a string", unparseable → "Invalid datetime format"."""
    v = d.get(key)
    if v is None:
        raise AsmError("validation_error", f"{label} is required")
    if isinstance(v, datetime):
        from .serialization import ensure_aware

        return ensure_aware(v)
    if not isinstance(v, str):
        raise AsmError("validation_error", f"{label} must be a string")
    try:
        return parse_datetime(v)
    except ValueError:
        raise AsmError("validation_error", "Invalid datetime format") from None


def optional_datetime(d: Mapping[str, Any], key: str) -> datetime | None:
    """An optional datetime field: a datetime or ISO string, else (or unparseable) None."""
    v = d.get(key)
    if isinstance(v, datetime):
        from .serialization import ensure_aware

        return ensure_aware(v)
    if isinstance(v, str):
        try:
            return parse_datetime(v)
        except ValueError:
            return None
    return None


def dict_or_empty(v: object) -> dict[str, Any]:
    """A shallow copy of a mapping; anything else (None included) → ``{}``."""
    return dict(v) if isinstance(v, Mapping) else {}
