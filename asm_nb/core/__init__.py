"""Pure domain objects and rules: errors, sessions, runs, events, capabilities, manifests,
registry, transcripts. Standard library only; no I/O (``tests/core/test_core_purity.py`` checks)."""

from .capabilities import Capability, CapabilityResolver, CapabilityType, NegotiationResult
from .errors import AsmError, BatchNormalizationError, ErrorCategory, ErrorCode
from .event_stream import EventStream, StreamStatus
from .events import EVENT_SCHEMA_VERSION, Event, EventType, NormalizedEvent
from .manifest import Manifest
from .permission import PermissionMode
from .registry import Registry
from .run import Run, RunStatus
from .session import Session, SessionStatus
from .transcript import Role, Transcript, TranscriptBuilder, TranscriptMessage

__all__ = [
    "AsmError", "BatchNormalizationError", "ErrorCategory", "ErrorCode", "Capability", "CapabilityResolver",
    "CapabilityType", "NegotiationResult", "EVENT_SCHEMA_VERSION", "Event", "EventStream", "EventType",
    "Manifest", "NormalizedEvent", "PermissionMode", "Registry", "Role", "Run", "RunStatus", "Session",
    "SessionStatus", "StreamStatus", "Transcript", "TranscriptBuilder", "TranscriptMessage",
]
