"""Pure domain objects and rules: errors, sessions, runs, events, capabilities, manifests,
registry, transcripts. Standard library only; no I/O."""

from .capabilities import Capability, CapabilityResolver, CapabilityType, NegotiationResult
from .errors import AsmError, ErrorCategory, ErrorCode
from .events import EVENT_SCHEMA_VERSION, Event, EventType, NormalizedEvent
from .run import Run, RunStatus
from .session import Session, SessionStatus

__all__ = [
    "AsmError", "ErrorCategory", "ErrorCode", "Capability", "CapabilityResolver", "CapabilityType",
    "NegotiationResult", "EVENT_SCHEMA_VERSION", "Event", "EventType", "NormalizedEvent", "Run", "RunStatus",
    "Session", "SessionStatus",
]
