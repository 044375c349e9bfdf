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


_C = ErrorCategory


class ErrorCode(str, Enum):
    """The 45 taxonomy codes (docs/event-model.md, errors) plus the Python additions: the one table of
    codes. Each member carries its ``category`` and default ``message``; ``AsmError`` accepts
    only these codes."""

    category: ErrorCategory
    message: str
    retryable: bool

    def __new__(cls, value: str, category: ErrorCategory, message: str, retryable: bool = False) -> "ErrorCode":
        member = str.__new__(cls, value)
        member._value_ = value
        member.category = category
        member.message = message
        member.retryable = retryable
        return member

    def __str__(self) -> str:  # f"{ErrorCode.TIMEOUT}" → "timeout"
        return self.value

    # validation
    VALIDATION_ERROR = ("validation_error", _C.VALIDATION, "Validation error occurred")
    INVALID_INPUT = ("invalid_input", _C.VALIDATION, "Invalid input provided")
    MISSING_REQUIRED_FIELD = ("missing_required_field", _C.VALIDATION, "Required field is missing")
    INVALID_FORMAT = ("invalid_format", _C.VALIDATION, "Invalid format")
    # state
    INVALID_STATUS = ("invalid_status", _C.STATE, "Invalid status value")
    INVALID_TRANSITION = ("invalid_transition", _C.STATE, "Invalid state transition")
    INVALID_EVENT_TYPE = ("invalid_event_type", _C.STATE, "Invalid event type")
    INVALID_CAPABILITY_TYPE = ("invalid_capability_type", _C.STATE, "Invalid capability type")
    MISSING_REQUIRED_CAPABILITY = ("missing_required_capability", _C.STATE, "Required capability is missing")
    STREAM_CLOSED = ("stream_closed", _C.STATE, "Stream is closed")
    CONTEXT_MISMATCH = ("context_mismatch", _C.STATE, "Event context does not match stream context")
    INVALID_CURSOR = ("invalid_cursor", _C.STATE, "Invalid cursor operation")
    SESSION_MISMATCH = ("session_mismatch", _C.STATE, "Session IDs do not match")
    RUN_MISMATCH = ("run_mismatch", _C.STATE, "Run IDs do not match")
    # resource
    NOT_FOUND = ("not_found", _C.RESOURCE, "Resource not found")
    SESSION_NOT_FOUND = ("session_not_found", _C.RESOURCE, "Session not found")
    RUN_NOT_FOUND = ("run_not_found", _C.RESOURCE, "Run not found")
    CAPABILITY_NOT_FOUND = ("capability_not_found", _C.RESOURCE, "Capability not found")
    ALREADY_EXISTS = ("already_exists", _C.RESOURCE, "Resource already exists")
    DUPLICATE_CAPABILITY = ("duplicate_capability", _C.RESOURCE, "Capability with this name already exists")
    # provider
    PROVIDER_ERROR = ("provider_error", _C.PROVIDER, "Provider error occurred")
    PROVIDER_UNAVAILABLE = ("provider_unavailable", _C.PROVIDER, "Provider is unavailable", True)
    PROVIDER_RATE_LIMITED = ("provider_rate_limited", _C.PROVIDER, "Provider rate limit exceeded", True)
    PROVIDER_TIMEOUT = ("provider_timeout", _C.PROVIDER, "Provider request timed out", True)
    PROVIDER_AUTHENTICATION_FAILED = ("provider_authentication_failed", _C.PROVIDER, "Provider authentication failed")
    PROVIDER_QUOTA_EXCEEDED = ("provider_quota_exceeded", _C.PROVIDER, "Provider quota exceeded")
    # storage
    STORAGE_ERROR = ("storage_error", _C.STORAGE, "Storage error occurred")
    STORAGE_CONNECTION_FAILED = ("storage_connection_failed", _C.STORAGE, "Storage connection failed", True)
    DEPENDENCY_NOT_AVAILABLE = ("dependency_not_available", _C.STORAGE, "Required optional dependency is not available")
    MIGRATION_REQUIRED = ("migration_required", _C.STORAGE, "Required storage migration has not been applied")
    STORAGE_WRITE_FAILED = ("storage_write_failed", _C.STORAGE, "Storage write operation failed")
    STORAGE_READ_FAILED = ("storage_read_failed", _C.STORAGE, "Storage read operation failed")
    # runtime
    TIMEOUT = ("timeout", _C.RUNTIME, "Operation timed out", True)
    CANCELLED = ("cancelled", _C.RUNTIME, "Operation was cancelled")
    POLICY_VIOLATION = ("policy_violation", _C.RUNTIME, "Policy violation occurred")
    INTERNAL_ERROR = ("internal_error", _C.RUNTIME, "Internal error occurred")
    UNKNOWN_ERROR = ("unknown_error", _C.RUNTIME, "An unknown error occurred")
    # concurrency
    MAX_SESSIONS_EXCEEDED = ("max_sessions_exceeded", _C.CONCURRENCY, "Maximum parallel sessions limit exceeded")
    MAX_RUNS_EXCEEDED = ("max_runs_exceeded", _C.CONCURRENCY, "Maximum parallel runs limit exceeded")
    CAPABILITY_NOT_SUPPORTED = ("capability_not_supported", _C.CONCURRENCY, "Capability not supported by provider")
    INVALID_OPERATION = ("invalid_operation", _C.CONCURRENCY, "Operation not valid for current state")
    # tool
    TOOL_ERROR = ("tool_error", _C.TOOL, "Tool error occurred")
    TOOL_NOT_FOUND = ("tool_not_found", _C.TOOL, "Tool not found")
    TOOL_EXECUTION_FAILED = ("tool_execution_failed", _C.TOOL, "Tool execution failed")
    TOOL_PERMISSION_DENIED = ("tool_permission_denied", _C.TOOL, "Tool permission denied")
    # Python additions (codes the reference raises outside its taxonomy)
    QUERY_ERROR = ("query_error", _C.STORAGE, "Query failed")
    MAINTENANCE_ERROR = ("maintenance_error", _C.STORAGE, "Maintenance operation failed")
    PERSISTENCE_ERROR = ("persistence_error", _C.STORAGE, "Persistence operation failed")
    COMMAND_NOT_FOUND = ("command_not_found", _C.TOOL, "Command not found")
    # the shell adapter's run_failed codes (a command that exits non-zero or times out)
    COMMAND_FAILED = ("command_failed", _C.TOOL, "Command exited with a non-zero code")
    COMMAND_TIMEOUT = ("command_timeout", _C.TOOL, "Command timed out")


_TABLE: list[tuple[str, ErrorCategory, str]] = [(c.value, c.category, c.message) for c in ErrorCode]
_CODES: dict[str, ErrorCode] = {c.value: c for c in ErrorCode}
_CATEGORY = {code: cat for code, cat, _ in _TABLE}
_MESSAGE = {code: msg for code, _, msg in _TABLE}
_TAXONOMY = [code for code, _, _ in _TABLE[:45]]
_RETRYABLE = frozenset(c.value for c in ErrorCode if c.retryable)


def _code_str(code: object) -> str:
    if isinstance(code, Enum):
        return str(code.value)
    return code if isinstance(code, str) else repr(code)


def is_valid_code(code: object) -> bool:
    """True for taxonomy codes (enum members or their string values); False otherwise."""
    if isinstance(code, ErrorCode):
        return True
    return isinstance(code, str) and code in _CATEGORY


def all_codes() -> list[str]:
    """The 45 taxonomy codes in spec order, followed by the Python additions."""
    return [code for code, _, _ in _TABLE]


def category(code: object) -> str:
    """The category of a code as a string; unknown codes are ``"unknown"``."""
    cat = _CATEGORY.get(_code_str(code))
    return cat.value if cat else ErrorCategory.UNKNOWN.value


def is_retryable(code_or_error: object) -> bool:
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


def _check_code(code: object) -> str:
    """The code's string value; anything that is not an ``ErrorCode`` → ``validation_error``
    naming the closest valid codes."""
    if code is None:
        return ErrorCode.UNKNOWN_ERROR.value
    if isinstance(code, ErrorCode):
        return code.value
    if isinstance(code, str) and code in _CODES:
        return code
    import difflib

    close = difflib.get_close_matches(str(code), list(_CODES), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
        "; valid codes are the members of asm_nb.core.errors.ErrorCode"
    raise ValidationError(ErrorCode.VALIDATION_ERROR, f"unknown error code {code!r}{hint}",
                          details={"code": repr(code), "suggestions": close})


class AsmError(Exception):
    """The one exception family asm_nb raises: ``code``, ``message``, ``category``, ``retryable``.

    ``code`` must be an ``ErrorCode`` (or its string value); anything else raises
    ``ValidationError``. ``AsmError(code, ...)`` builds the subclass for the code's category
    (``ValidationError``, ``ProviderError``, ``StoreError``, ...; ``PolicyViolation``,
    ``CancelledRun`` and ``RunTimeout`` for those codes), so ``except asm_nb.ProviderError``
    catches every provider failure. ``str(err)`` reads ``"[code] message"``. Users catch
    ``asm_nb.AsmError``; nothing lets a bare third-party exception cross a port.

    >>> AsmError("run_not_found", "Run not found: run_1").retryable
    False
    >>> type(AsmError("provider_timeout")).__name__
    'ProviderError'
    """

    def __new__(cls, code: Any = "unknown_error", *args: Any, **kwargs: Any) -> "AsmError":
        target: type[AsmError] = cls
        if cls is AsmError:
            value = _check_code(code)
            target = _CLASS_FOR_CODE.get(value) or _CLASS_FOR_CATEGORY.get(_CATEGORY[value], AsmError)
        return Exception.__new__(target)

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
        code_value = _check_code(code)
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

    def __reduce__(self) -> tuple[Any, ...]:  # errors cross process pools and kernels
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
    def from_dict(cls, d: object) -> "AsmError":
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


# --------------------------------------------------------------------------------------------
# One subclass per category, so callers can catch a family; each keeps code/category/retryable.
# ``AsmError(code)`` returns the right one; constructing a subclass directly with a code of
# another category is refused.


class _CategoryError(AsmError):
    _category: ErrorCategory | None = None
    _default_code: ErrorCode = ErrorCode.UNKNOWN_ERROR

    def __init__(self, code: Any = None, message: str | None = None, **kw: Any) -> None:
        if code is None:
            code = self._default_code
        super().__init__(code, message, **kw)
        want = self._category
        if want is not None and _CATEGORY[self.code] is not want:
            raise ValidationError(ErrorCode.VALIDATION_ERROR,
                                  f"{type(self).__name__} takes a {want.value} code, got {self.code!r}")


class ValidationError(_CategoryError):
    """Raised for a caller mistake: a bad option, value or input (category ``validation``)."""

    _category = ErrorCategory.VALIDATION
    _default_code = ErrorCode.VALIDATION_ERROR


class StateError(_CategoryError):
    """Raised when an object is in the wrong state for the operation (category ``state``)."""

    _category = ErrorCategory.STATE
    _default_code = ErrorCode.INVALID_TRANSITION


class NotFoundError(_CategoryError):
    """Raised when a session, run, capability or other resource does not exist or already
    exists (category ``resource``)."""

    _category = ErrorCategory.RESOURCE
    _default_code = ErrorCode.NOT_FOUND


class ProviderError(_CategoryError):
    """Raised when a provider (API or CLI) fails; ``provider_error`` holds its normalized
    payload (category ``provider``)."""

    _category = ErrorCategory.PROVIDER
    _default_code = ErrorCode.PROVIDER_ERROR


class StoreError(_CategoryError):
    """Raised when a store or an optional storage dependency fails (category ``storage``)."""

    _category = ErrorCategory.STORAGE
    _default_code = ErrorCode.STORAGE_ERROR


class AsmRuntimeError(_CategoryError):
    """Raised for runtime failures other than a timeout, a cancel or a policy stop (category
    ``runtime``)."""

    _category = ErrorCategory.RUNTIME
    _default_code = ErrorCode.UNKNOWN_ERROR  # what AsmError() is


class RunTimeout(AsmRuntimeError):
    """Raised when a run or operation exceeds its timeout (code ``timeout``)."""

    _default_code = ErrorCode.TIMEOUT


class CancelledRun(AsmRuntimeError):
    """Raised when a run is cancelled (code ``cancelled``)."""

    _default_code = ErrorCode.CANCELLED


class PolicyViolation(AsmRuntimeError):
    """Raised when a policy stops a run (code ``policy_violation``; ``details`` say which limit)."""

    _default_code = ErrorCode.POLICY_VIOLATION


class ConcurrencyError(_CategoryError):
    """Raised when a concurrency limit or an unsupported operation refuses work (category
    ``concurrency``)."""

    _category = ErrorCategory.CONCURRENCY
    _default_code = ErrorCode.INVALID_OPERATION


class ToolError(_CategoryError):
    """Raised when a tool is missing, denied or fails (category ``tool``)."""

    _category = ErrorCategory.TOOL
    _default_code = ErrorCode.TOOL_ERROR


_CATEGORY_CLASSES = (ValidationError, StateError, NotFoundError, ProviderError, StoreError, AsmRuntimeError,
                     ConcurrencyError, ToolError)
_CLASS_FOR_CATEGORY: dict[ErrorCategory, type[AsmError]] = {c._category: c for c in _CATEGORY_CLASSES
                                                             if c._category is not None}
_CLASS_FOR_CODE: dict[str, type[AsmError]] = {
    ErrorCode.TIMEOUT.value: RunTimeout,
    ErrorCode.CANCELLED.value: CancelledRun,
    ErrorCode.POLICY_VIOLATION.value: PolicyViolation,
}


class BatchNormalizationError(ValidationError):
    """Raised by ``normalize_batch`` when any raw event fails; carries ``errors`` and ``successful``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "BatchNormalizationError":
        return Exception.__new__(cls)

    def __init__(self, message: str, errors: list, successful: list) -> None:
        super().__init__("validation_error", message)
        self.errors = errors
        self.successful = successful

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchNormalizationError, (self.message, self.errors, self.successful))
