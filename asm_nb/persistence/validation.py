"""EventValidator: structural checks that reject an event, and advisory shape checks.

See docs/event-model.md, the persistence pipeline. ``validate_structural`` raises on the first failure;
``validate_shape``
returns warning strings that the pipeline attaches to ``metadata["_validation_warnings"]``
(it never rejects). Both accept an ``Event`` or any object/mapping with the same fields, so
a half-built or foreign event can be checked too.

Imports only ``core``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import AsmError
from ..core.events import Event, EventType, is_valid_type

__all__ = ["validate_structural", "validate_shape", "shape_warnings", "SHAPE_RULES"]

_T = EventType

# type -> ((field, expected type name), ...) in the order warnings are produced
SHAPE_RULES: dict[EventType, tuple[tuple[str, str], ...]] = {
    _T.MESSAGE_RECEIVED: (("content", "string"), ("role", "string")),
    _T.MESSAGE_STREAMED: (("content", "string"),),
    _T.TOOL_CALL_STARTED: (("tool_name", "string"),),
    _T.TOOL_CALL_COMPLETED: (("tool_name", "string"),),
    _T.TOOL_CALL_FAILED: (("tool_name", "string"),),
    _T.TOKEN_USAGE_UPDATED: (("input_tokens", "integer"), ("output_tokens", "integer")),
    _T.RUN_COMPLETED: (("stop_reason", "string"),),
    _T.ERROR_OCCURRED: (("error_message", "string"),),
    _T.POLICY_VIOLATION: (("policy", "string"), ("kind", "string")),
    _T.TOOL_APPROVAL_REQUESTED: (("tool_name", "string"), ("policy_name", "string")),
    _T.TOOL_APPROVAL_GRANTED: (("tool_name", "string"),),
    _T.TOOL_APPROVAL_DENIED: (("tool_name", "string"),),
}
_RULES_BY_VALUE = {t.value: r for t, r in SHAPE_RULES.items()}


def _field(event: object, name: str) -> Any:
    if isinstance(event, Mapping):
        return event.get(name)
    return getattr(event, name, None)


def validate_structural(event: object) -> None:
    """Raise ``AsmError`` for the first structural problem; return None when the event is sound.

    Checks, in order: ``type``, ``session_id``, ``timestamp`` present; ``type`` a valid
    ``EventType`` (unknown string → ``invalid_event_type``); ``data`` a dict or None.
    """
    if type(event) is Event:  # the pipeline's case: plain attribute reads
        etype, session_id, timestamp, data = event.type, event.session_id, event.timestamp, event.data
    else:
        etype, session_id, timestamp, data = (_field(event, "type"), _field(event, "session_id"),
                                              _field(event, "timestamp"), _field(event, "data"))
    if etype is None:
        raise AsmError("validation_error", "type is required")
    if session_id is None:
        raise AsmError("validation_error", "session_id is required")
    if timestamp is None:
        raise AsmError("validation_error", "timestamp is required")
    if not isinstance(etype, EventType):
        if not isinstance(etype, str):
            raise AsmError("validation_error", f"type must be an EventType, got: {etype!r}")
        if not is_valid_type(etype):
            raise AsmError("invalid_event_type", f"Invalid event type: {etype!r}")
    if data is not None and not isinstance(data, dict):
        raise AsmError("validation_error", f"data must be a dict, got: {data!r}")


def validate_shape(event: object) -> list[str]:
    """Advisory warnings for missing or mistyped payload fields of the types in ``SHAPE_RULES``.

    >>> from asm_nb.core.events import Event
    >>> validate_shape(Event.new("message_received", "ses_1", data={"role": "assistant"}))
    ["missing required field 'content' for shape validation"]
    """
    etype = _field(event, "type")
    if isinstance(etype, EventType):
        rules = SHAPE_RULES.get(etype)
    else:
        rules = _RULES_BY_VALUE.get(etype) if isinstance(etype, str) else None
    if not rules:
        return []
    return _check_shape(rules, _field(event, "data"))


def shape_warnings(etype: EventType, data: object) -> list[str]:
    """``validate_shape`` for a type and payload before the ``Event`` exists (pipeline fast path)."""
    rules = SHAPE_RULES.get(etype)
    return _check_shape(rules, data) if rules else []


def _check_shape(rules: tuple[tuple[str, str], ...], data: object) -> list[str]:
    if type(data) is not dict and not isinstance(data, Mapping):
        data = {}
    warnings: list[str] = []
    for name, expected in rules:
        value = data.get(name)
        if value is None:
            warnings.append(f"missing required field '{name}' for shape validation")
        elif expected == "string":
            if not isinstance(value, str):
                warnings.append(f"field '{name}' expected string, got {value!r}")
        elif not isinstance(value, int) or isinstance(value, bool):
            warnings.append(f"field '{name}' expected integer, got {value!r}")
    return warnings
