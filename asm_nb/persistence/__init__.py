"""Persistence services: the event pipeline (build → redact → validate → sequence → append),
validation, redaction, the in-run ExecutionState, the AuditLogger (and, from other modules
of this package, retention and the artifact registry).

See docs/event-model.md (the persistence pipeline), docs/stores.md and docs/runtime.md (audit). The names below are
the ones most callers need; import the
submodules for the rest.
"""

from __future__ import annotations

from .execution_state import ExecutionPayload, ExecutionState
from .pipeline import EventPipeline, PipelineContext, build_event
from .redaction import RedactionConfig, RedactionResult, default_patterns, redact, redact_map
from .validation import validate_shape, validate_structural

__all__ = [
    "EventPipeline", "ExecutionPayload", "ExecutionState", "PipelineContext", "RedactionConfig",
    "RedactionResult", "build_event", "default_patterns", "redact", "redact_map", "validate_shape",
    "validate_structural",
]
