"""The error taxonomy: one ``AsmError`` class carrying a code, a category and ``retryable``.

Pure standard library (``core/`` imports nothing else). See docs/event-model.md, errors.
"""

from __future__ import annotations

import traceback as _traceback
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Mapping


class ErrorCategory(str, Enum):
    """The nine error categories (docs/event-model.md, errors)."""

    VALIDATION = "validation"
    STATE = "state"
    RESOURCE = "resource"
    PROVIDER = "provider"
    STORAGE = "storage"
    RUNTIME = "runtime"
    CONCURRENCY = "concurrency"
    TOOL = "tool"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class ErrorCode(str, Enum):
    """The 45 taxonomy codes (docs/event-model.md, errors) plus four Python additions."""

    def __str__(self) -> str:  # f"{ErrorCode.TIMEOUT}" → "timeout"
        return self.value

    # validation
    VALIDATION_ERROR = "validation_error"
    INVALID_INPUT = "invalid_input"
    MISSING_REQUIRED_FIELD = "missing_required_field"
    INVALID_FORMAT = "invalid_format"
    # state
    INVALID_STATUS = "invalid_status"
    INVALID_TRANSITION = "invalid_transition"
    INVALID_EVENT_TYPE = "invalid_event_type"
    INVALID_CAPABILITY_TYPE = "invalid_capability_type"
    MISSING_REQUIRED_CAPABILITY = "missing_required_capability"
    STREAM_CLOSED = "stream_closed"
    CONTEXT_MISMATCH = "context_mismatch"
    INVALID_CURSOR = "invalid_cursor"
    SESSION_MISMATCH = "session_mismatch"
    RUN_MISMATCH = "run_mismatch"
    # resource
    NOT_FOUND = "not_found"
    SESSION_NOT_FOUND = "session_not_found"
    RUN_NOT_FOUND = "run_not_found"
    CAPABILITY_NOT_FOUND = "capability_not_found"
    ALREADY_EXISTS = "already_exists"
    DUPLICATE_CAPABILITY = "duplicate_capability"
    # provider
    PROVIDER_ERROR = "provider_error"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_AUTHENTICATION_FAILED = "provider_authentication_failed"
    PROVIDER_QUOTA_EXCEEDED = "provider_quota_exceeded"
    # storage
    STORAGE_ERROR = "storage_error"
    STORAGE_CONNECTION_FAILED = "storage_connection_failed"
    DEPENDENCY_NOT_AVAILABLE = "dependency_not_available"
    MIGRATION_REQUIRED = "migration_required"
    STORAGE_WRITE_FAILED = "storage_write_failed"
    STORAGE_READ_FAILED = "storage_read_failed"
    # runtime
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    POLICY_VIOLATION = "policy_violation"
    INTERNAL_ERROR = "internal_error"
    UNKNOWN_ERROR = "unknown_error"
    # concurrency
    MAX_SESSIONS_EXCEEDED = "max_sessions_exceeded"
    MAX_RUNS_EXCEEDED = "max_runs_exceeded"
    CAPABILITY_NOT_SUPPORTED = "capability_not_supported"
    INVALID_OPERATION = "invalid_operation"
    # tool
    TOOL_ERROR = "tool_error"
    TOOL_NOT_FOUND = "tool_not_found"
    TOOL_EXECUTION_FAILED = "tool_execution_failed"
    TOOL_PERMISSION_DENIED = "tool_permission_denied"
    # Python additions (codes the reference raises outside its taxonomy)
    QUERY_ERROR = "query_error"
    MAINTENANCE_ERROR = "maintenance_error"
    PERSISTENCE_ERROR = "persistence_error"
    COMMAND_NOT_FOUND = "command_not_found"


_C = ErrorCategory
_TABLE: list[tuple[str, ErrorCategory, str]] = [
    ("validation_error", _C.VALIDATION, "Validation error occurred"),
    ("invalid_input", _C.VALIDATION, "Invalid input provided"),
    ("missing_required_field", _C.VALIDATION, "Required field is missing"),
    ("invalid_format", _C.VALIDATION, "Invalid format"),
    ("invalid_status", _C.STATE, "Invalid status value"),
    ("invalid_transition", _C.STATE, "Invalid state transition"),
    ("invalid_event_type", _C.STATE, "Invalid event type"),
    ("invalid_capability_type", _C.STATE, "Invalid capability type"),
    ("missing_required_capability", _C.STATE, "Required capability is missing"),
    ("stream_closed", _C.STATE, "Stream is closed"),
    ("context_mismatch", _C.STATE, "Event context does not match stream context"),
    ("invalid_cursor", _C.STATE, "Invalid cursor operation"),
    ("session_mismatch", _C.STATE, "Session IDs do not match"),
    ("run_mismatch", _C.STATE, "Run IDs do not match"),
    ("not_found", _C.RESOURCE, "Resource not found"),
    ("session_not_found", _C.RESOURCE, "Session not found"),
    ("run_not_found", _C.RESOURCE, "Run not found"),
    ("capability_not_found", _C.RESOURCE, "Capability not found"),
    ("already_exists", _C.RESOURCE, "Resource already exists"),
    ("duplicate_capability", _C.RESOURCE, "Capability with this name already exists"),
    ("provider_error", _C.PROVIDER, "Provider error occurred"),
    ("provider_unavailable", _C.PROVIDER, "Provider is unavailable"),
    ("provider_rate_limited", _C.PROVIDER, "Provider rate limit exceeded"),
    ("provider_timeout", _C.PROVIDER, "Provider request timed out"),
    ("provider_authentication_failed", _C.PROVIDER, "Provider authentication failed"),
    ("provider_quota_exceeded", _C.PROVIDER, "Provider quota exceeded"),
    ("storage_error", _C.STORAGE, "Storage error occurred"),
    ("storage_connection_failed", _C.STORAGE, "Storage connection failed"),
    ("dependency_not_available", _C.STORAGE, "Required optional dependency is not available"),
    ("migration_required", _C.STORAGE, "Required storage migration has not been applied"),
    ("storage_write_failed", _C.STORAGE, "Storage write operation failed"),
    ("storage_read_failed", _C.STORAGE, "Storage read operation failed"),
    ("timeout", _C.RUNTIME, "Operation timed out"),
    ("cancelled", _C.RUNTIME, "Operation was cancelled"),
    ("policy_violation", _C.RUNTIME, "Policy violation occurred"),
    ("internal_error", _C.RUNTIME, "Internal error occurred"),
    ("unknown_error", _C.RUNTIME, "An unknown error occurred"),
    ("max_sessions_exceeded", _C.CONCURRENCY, "Maximum parallel sessions limit exceeded"),
    ("max_runs_exceeded", _C.CONCURRENCY, "Maximum parallel runs limit exceeded"),
    ("capability_not_supported", _C.CONCURRENCY, "Capability not supported by provider"),
    ("invalid_operation", _C.CONCURRENCY, "Operation not valid for current state"),
    ("tool_error", _C.TOOL, "Tool error occurred"),
    ("tool_not_found", _C.TOOL, "Tool not found"),
    ("tool_execution_failed", _C.TOOL, "Tool execution failed"),
    ("tool_permission_denied", _C.TOOL, "Tool permission denied"),
    ("query_error", _C.STORAGE, "Query failed"),
    ("maintenance_error", _C.STORAGE, "Maintenance operation failed"),
    ("persistence_error", _C.STORAGE, "Persistence operation failed"),
    ("command_not_found", _C.TOOL, "Command not found"),
]
_CATEGORY = {code: cat for code, cat, _ in _TABLE}
_MESSAGE = {code: msg for code, _, msg in _TABLE}
_TAXONOMY = [code for code, _, _ in _TABLE[:45]]
_RETRYABLE = frozenset(
    {"provider_timeout", "provider_rate_limited", "provider_unavailable", "storage_connection_failed", "timeout"}
)


def _code_str(code: Any) -> str:
    if isinstance(code, Enum):
        return str(code.value)
    return code if isinstance(code, str) else repr(code)


def is_valid_code(code: Any) -> bool:
    """True for taxonomy codes (enum members or their string values); False otherwise."""
    if isinstance(code, ErrorCode):
        return True
    return isinstance(code, str) and code in _CATEGORY


def all_codes() -> list[str]:
    """The 45 taxonomy codes in spec order, followed by the four Python additions."""
    return [code for code, _, _ in _TABLE]


def category(code: Any) -> str:
    """The category of a code as a string; unknown codes are ``"unknown"``."""
    cat = _CATEGORY.get(_code_str(code))
    return cat.value if cat else ErrorCategory.UNKNOWN.value


def is_retryable(code_or_error: Any) -> bool:
    """True only for the five retryable codes (timeouts, rate limit, unavailable, storage connection)."""
    code = code_or_error.code if isinstance(code_or_error, AsmError) else code_or_error
    return _code_str(code) in _RETRYABLE


def _codes_of(cat: ErrorCategory) -> list[str]:
    return [c for c, k, _ in _TABLE[:45] if k is cat]


def validation_codes() -> list[str]:
    """The validation codes of the taxonomy, in spec order."""
    return _codes_of(ErrorCategory.VALIDATION)


def state_codes() -> list[str]:
    """The state codes of the taxonomy, in spec order."""
    return _codes_of(ErrorCategory.STATE)


def resource_codes() -> list[str]:
    """The resource codes of the taxonomy, in spec order."""
    return _codes_of(ErrorCategory.RESOURCE)


def provider_codes() -> list[str]:
    """The provider codes of the taxonomy, in spec order."""
    return _codes_of(ErrorCategory.PROVIDER)


def storage_codes() -> list[str]:
    """The storage codes of the taxonomy, in spec order."""
    return _codes_of(ErrorCategory.STORAGE)


def runtime_codes() -> list[str]:
    """The runtime codes of the taxonomy, in spec order."""
    return _codes_of(ErrorCategory.RUNTIME)


def concurrency_codes() -> list[str]:
    """The concurrency codes of the taxonomy, in spec order."""
    return _codes_of(ErrorCategory.CONCURRENCY)


def tool_codes() -> list[str]:
    """The tool codes of the taxonomy, in spec order."""
    return _codes_of(ErrorCategory.TOOL)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class AsmError(Exception):
    """The one exception asm_nb raises: ``code``, ``message``, ``category``, ``retryable``.

    ``str(err)`` reads ``"[code] message"``. Users catch ``asm_nb.AsmError``; nothing lets a
    bare third-party exception cross a port.

    >>> AsmError("run_not_found", "Run not found: run_1").retryable
    False
    """

    def __init__(
        self,
        code: Any = "unknown_error",
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        provider_error: Mapping[str, Any] | None = None,
        stacktrace: str | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        if isinstance(code, ErrorCode):
            code_value: Any = code.value
        else:
            code_value = code if code is not None else "unknown_error"
        self.code: str = code_value
        if message is None:
            message = _MESSAGE.get(_code_str(code_value), "An error occurred")
        self.message: str = message
        self.details: dict[str, Any] = dict(details) if details else {}
        self.provider_error: dict[str, Any] | None = dict(provider_error) if provider_error is not None else None
        self.stacktrace = stacktrace
        self.context: dict[str, Any] = dict(context) if context else {}
        self.timestamp: datetime = timestamp or _utcnow()
        super().__init__(self.message)

    # -- identity ------------------------------------------------------------------------
    @property
    def category(self) -> str:
        """The category of ``code`` (docs/event-model.md, errors) as a string."""
        return category(self.code)

    @property
    def retryable(self) -> bool:
        """True for the five transient codes (timeouts, rate limit, unavailable, storage connection)."""
        return is_retryable(self.code)

    @property
    def run_id(self) -> str | None:
        """The run this error concerns, from ``context``, if known."""
        return self.context.get("run_id")

    @property
    def session_id(self) -> str | None:
        """The session this error concerns, from ``context``, if known."""
        return self.context.get("session_id")

    def __str__(self) -> str:
        prefix = ""
        if self.run_id:
            prefix = f"run {self.run_id}"
            provider = self.context.get("provider")
            if provider:
                prefix += f" ({provider})"
            prefix += ": "
        return f"{prefix}[{_code_str(self.code)}] {self.message}"

    def __repr__(self) -> str:
        return f"AsmError({_code_str(self.code)!r}, {self.message!r})"

    def __reduce__(self):  # errors cross process pools and kernels
        return (
            _rebuild,
            (self.code, self.message, self.details, self.provider_error, self.stacktrace, self.context, self.timestamp),
        )

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def wrap(cls, code: Any, exc: BaseException, *, message: str | None = None,
             details: Mapping[str, Any] | None = None, **kw: Any) -> "AsmError":
        """Wrap a lower-level exception, keeping its class name (and message) in ``details``."""
        d = dict(details or {})
        d["original_exception"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
        if message is not None:
            d["original_message"] = str(exc)
        st = kw.pop("stacktrace", None) or "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(code, message if message is not None else str(exc), details=d, stacktrace=st, **kw)

    @classmethod
    def from_exception(cls, exc: BaseException, code: Any = "internal_error") -> "AsmError":
        """Pass an ``AsmError`` through unchanged; wrap anything else under ``code``."""
        if isinstance(exc, AsmError):
            return exc
        return cls.wrap(code, exc)

    def with_context(self, **context: Any) -> "AsmError":
        """Add context keys (``run_id``, ``session_id``, ``provider``...) in place; returns self."""
        for k, v in context.items():
            if v is not None:
                self.context.setdefault(k, v)
        return self

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: code, message, details, provider_error, stacktrace, context, timestamp."""
        from .serialization import format_datetime, to_jsonable

        return {
            "code": _code_str(self.code),
            "message": self.message,
            "details": to_jsonable(self.details),
            "provider_error": to_jsonable(self.provider_error) if self.provider_error is not None else None,
            "stacktrace": self.stacktrace,
            "context": to_jsonable(self.context),
            "timestamp": format_datetime(self.timestamp),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "AsmError":
        """Build (not raise) an AsmError from ``to_dict`` output; raises on malformed input."""
        from .serialization import parse_datetime

        if not isinstance(d, Mapping):
            raise cls("validation_error", "Invalid error map")
        code = d.get("code")
        if code is None:
            raise cls("validation_error", "Missing error code")
        if isinstance(code, ErrorCode):
            code = code.value
        if not isinstance(code, str):
            raise cls("validation_error", "Invalid error code format")
        if code not in _CATEGORY:
            raise cls("validation_error", f"Invalid error code: {code}")
        message = d.get("message")
        if message is None:
            raise cls("validation_error", "Missing error message")
        if not isinstance(message, str):
            raise cls("validation_error", "Invalid error message format")
        ts_raw = d.get("timestamp")
        if ts_raw is None:
            ts = _utcnow()
        else:
            if not isinstance(ts_raw, str):
                raise cls("validation_error", "Invalid timestamp format")
            try:
                ts = parse_datetime(ts_raw)
            except ValueError:
                raise cls("validation_error", "Invalid timestamp format") from None
        return cls(
            code,
            message,
            details=d.get("details") or {},
            provider_error=d.get("provider_error"),
            stacktrace=d.get("stacktrace"),
            context=d.get("context") or {},
            timestamp=ts,
        )


def _rebuild(code, message, details, provider_error, stacktrace, context, timestamp):
    return AsmError(code, message, details=details, provider_error=provider_error,
                    stacktrace=stacktrace, context=context, timestamp=timestamp)


class BatchNormalizationError(AsmError):
    """Raised by ``normalize_batch`` when any raw event fails; carries ``errors`` and ``successful``."""

    def __init__(self, message: str, errors: list, successful: list) -> None:
        super().__init__("validation_error", message)
        self.errors = errors
        self.successful = successful

    def __reduce__(self):
        return (BatchNormalizationError, (self.message, self.errors, self.successful))
