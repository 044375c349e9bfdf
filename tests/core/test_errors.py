"""AsmError, the code taxonomy, categories, retryability and (de)serialization (docs/event-model.md, errors)."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timezone

import pytest

from asm_nb.core import errors
from asm_nb.core.errors import AsmError, BatchNormalizationError, ErrorCategory, ErrorCode

TAXONOMY = [
    ("validation_error", "validation", "Validation error occurred"),
    ("invalid_input", "validation", "Invalid input provided"),
    ("missing_required_field", "validation", "Required field is missing"),
    ("invalid_format", "validation", "Invalid format"),
    ("invalid_status", "state", "Invalid status value"),
    ("invalid_transition", "state", "Invalid state transition"),
    ("invalid_event_type", "state", "Invalid event type"),
    ("invalid_capability_type", "state", "Invalid capability type"),
    ("missing_required_capability", "state", "Required capability is missing"),
    ("stream_closed", "state", "Stream is closed"),
    ("context_mismatch", "state", "Event context does not match stream context"),
    ("invalid_cursor", "state", "Invalid cursor operation"),
    ("session_mismatch", "state", "Session IDs do not match"),
    ("run_mismatch", "state", "Run IDs do not match"),
    ("not_found", "resource", "Resource not found"),
    ("session_not_found", "resource", "Session not found"),
    ("run_not_found", "resource", "Run not found"),
    ("capability_not_found", "resource", "Capability not found"),
    ("already_exists", "resource", "Resource already exists"),
    ("duplicate_capability", "resource", "Capability with this name already exists"),
    ("provider_error", "provider", "Provider error occurred"),
    ("provider_unavailable", "provider", "Provider is unavailable"),
    ("provider_rate_limited", "provider", "Provider rate limit exceeded"),
    ("provider_timeout", "provider", "Provider request timed out"),
    ("provider_authentication_failed", "provider", "Provider authentication failed"),
    ("provider_quota_exceeded", "provider", "Provider quota exceeded"),
    ("storage_error", "storage", "Storage error occurred"),
    ("storage_connection_failed", "storage", "Storage connection failed"),
    ("dependency_not_available", "storage", "Required optional dependency is not available"),
    ("migration_required", "storage", "Required storage migration has not been applied"),
    ("storage_write_failed", "storage", "Storage write operation failed"),
    ("storage_read_failed", "storage", "Storage read operation failed"),
    ("timeout", "runtime", "Operation timed out"),
    ("cancelled", "runtime", "Operation was cancelled"),
    ("policy_violation", "runtime", "Policy violation occurred"),
    ("internal_error", "runtime", "Internal error occurred"),
    ("unknown_error", "runtime", "An unknown error occurred"),
    ("max_sessions_exceeded", "concurrency", "Maximum parallel sessions limit exceeded"),
    ("max_runs_exceeded", "concurrency", "Maximum parallel runs limit exceeded"),
    ("capability_not_supported", "concurrency", "Capability not supported by provider"),
    ("invalid_operation", "concurrency", "Operation not valid for current state"),
    ("tool_error", "tool", "Tool error occurred"),
    ("tool_not_found", "tool", "Tool not found"),
    ("tool_execution_failed", "tool", "Tool execution failed"),
    ("tool_permission_denied", "tool", "Tool permission denied"),
]
RETRYABLE = {"provider_timeout", "provider_rate_limited", "provider_unavailable", "storage_connection_failed",
             "timeout"}
PYTHON_ADDITIONS = [("query_error", "storage"), ("maintenance_error", "storage"),
                    ("persistence_error", "storage"), ("command_not_found", "tool"), ("command_failed", "tool"),
                    ("command_timeout", "tool")]


def test_taxonomy_has_45_codes_in_spec_order_then_the_python_additions():
    assert len(TAXONOMY) == 45
    assert errors.all_codes() == [c for c, _, _ in TAXONOMY] + [c for c, _ in PYTHON_ADDITIONS]
    assert {m.value for m in ErrorCode} == set(errors.all_codes())


@pytest.mark.parametrize("code,cat,message", TAXONOMY)
def test_each_code_has_its_category_default_message_and_retryability(code, cat, message):
    err = AsmError(code)
    assert err.code == code
    assert err.message == message
    assert err.category == cat == errors.category(code)
    assert err.retryable is (code in RETRYABLE)
    assert errors.is_retryable(code) is (code in RETRYABLE)
    assert errors.is_retryable(err) is (code in RETRYABLE)
    assert errors.is_valid_code(code)
    assert errors.is_valid_code(ErrorCode(code))


@pytest.mark.parametrize("code,cat", PYTHON_ADDITIONS)
def test_python_additions_are_categorised_and_not_retryable(code, cat):
    err = AsmError(code)
    assert err.category == cat
    assert not err.retryable
    assert err.message  # has a default message


def test_retryable_codes_are_exactly_five():
    assert {c for c in errors.all_codes() if errors.is_retryable(c)} == RETRYABLE


@pytest.mark.parametrize("fn,cat", [
    (errors.validation_codes, "validation"), (errors.state_codes, "state"), (errors.resource_codes, "resource"),
    (errors.provider_codes, "provider"), (errors.storage_codes, "storage"), (errors.runtime_codes, "runtime"),
    (errors.concurrency_codes, "concurrency"), (errors.tool_codes, "tool"),
])
def test_per_category_lists_follow_the_taxonomy(fn, cat):
    assert fn() == [c for c, k, _ in TAXONOMY if k == cat]


def test_categories_enum():
    assert [c.value for c in ErrorCategory] == ["validation", "state", "resource", "provider", "storage",
                                                "runtime", "concurrency", "tool", "unknown"]
    assert f"{ErrorCategory.TOOL}" == "tool"
    assert f"{ErrorCode.TIMEOUT}" == "timeout"


@pytest.mark.parametrize("value", [None, 42, 1.5, ["timeout"], {"code": "timeout"}, "nope", ""])
def test_is_valid_code_rejects_non_taxonomy_values(value):
    assert errors.is_valid_code(value) is False


def test_unknown_code_raises_naming_the_closest_codes():
    with pytest.raises(errors.ValidationError) as exc:
        AsmError("no_such_code")
    assert exc.value.code == "validation_error" and "'no_such_code'" in exc.value.message
    with pytest.raises(AsmError, match="did you mean 'timeout'"):
        AsmError("timeot")
    for bad in (42, "", ["timeout"]):
        with pytest.raises(errors.ValidationError):
            AsmError(bad)
    assert errors.category("weird_code") == "unknown"
    assert errors.is_retryable(12345) is False


@pytest.mark.parametrize("code, cls", [
    ("invalid_input", "ValidationError"), ("invalid_transition", "StateError"), ("run_not_found", "NotFoundError"),
    ("provider_rate_limited", "ProviderError"), ("storage_connection_failed", "StoreError"),
    ("internal_error", "AsmRuntimeError"), ("timeout", "RunTimeout"), ("cancelled", "CancelledRun"),
    ("policy_violation", "PolicyViolation"), ("max_runs_exceeded", "ConcurrencyError"), ("tool_not_found", "ToolError"),
])
def test_each_code_builds_its_category_subclass_keeping_code_category_retryable(code, cls):
    import pickle

    err = AsmError(code, "m")
    assert type(err).__name__ == cls and isinstance(err, AsmError)
    assert (err.code, err.category, err.retryable) == (code, errors.ErrorCode(code).category.value,
                                                       errors.ErrorCode(code).retryable)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and again.code == code
    direct = getattr(errors, cls)(code, "m")  # the subclass itself, same code
    assert type(direct) is type(err)


def test_subclass_defaults_and_refuses_a_code_of_another_category():
    assert errors.ProviderError().code == "provider_error"
    assert errors.CancelledRun("cancelled").category == "runtime"
    with pytest.raises(errors.ValidationError, match="ProviderError takes a provider code"):
        errors.ProviderError("timeout")


def test_one_table_the_enum_carries_category_message_and_retryable():
    assert errors.all_codes() == [c.value for c in errors.ErrorCode]
    assert errors.ErrorCode.PROVIDER_TIMEOUT.retryable and not errors.ErrorCode.PROVIDER_ERROR.retryable
    assert AsmError(errors.ErrorCode.RUN_NOT_FOUND).message == errors.ErrorCode.RUN_NOT_FOUND.message


def test_constructor_defaults():
    err = AsmError()
    assert err.code == "unknown_error"
    assert err.message == "An unknown error occurred"
    assert err.details == {} and err.context == {}
    assert err.provider_error is None and err.stacktrace is None
    assert err.timestamp.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - err.timestamp).total_seconds()) < 60


def test_enum_code_is_stored_as_its_value():
    err = AsmError(ErrorCode.RUN_NOT_FOUND, "Run not found: run_1")
    assert err.code == "run_not_found" and type(err.code) is str
    assert err.code == ErrorCode.RUN_NOT_FOUND


def test_str_reads_code_then_message_and_names_the_run_when_known():
    assert str(AsmError("timeout", "took too long")) == "[timeout] took too long"
    err = AsmError("provider_error", "exit 2", context={"run_id": "run_3f2a", "provider": "codex"})
    assert str(err) == "run run_3f2a (codex): [provider_error] exit 2"
    assert err.run_id == "run_3f2a" and err.session_id is None
    assert "AsmError('provider_error'" in repr(err)


def test_with_context_adds_missing_keys_only():
    err = AsmError("timeout", context={"run_id": "r1"}).with_context(run_id="r2", session_id="s1", provider=None)
    assert err.context == {"run_id": "r1", "session_id": "s1"}


def test_wrap_keeps_class_and_message():
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        plain = AsmError.wrap("internal_error", exc)
        custom = AsmError.wrap("storage_error", exc, message="store broke", details={"k": 1})
    assert plain.message == "bad value"
    assert plain.details["original_exception"].endswith("ValueError")
    assert "original_message" not in plain.details
    assert "ValueError: bad value" in plain.stacktrace
    assert custom.message == "store broke"
    assert custom.details == {"k": 1, "original_exception": plain.details["original_exception"],
                              "original_message": "bad value"}


def test_from_exception_passes_asm_errors_through():
    original = AsmError("timeout")
    assert AsmError.from_exception(original) is original
    wrapped = AsmError.from_exception(KeyError("usage"))
    assert wrapped.code == "internal_error" and wrapped.details["original_exception"].endswith("KeyError")
    assert AsmError.from_exception(OSError("x"), code="storage_error").code == "storage_error"


def test_errors_pickle():
    err = AsmError("provider_timeout", "slow", details={"a": 1}, provider_error={"kind": "timeout"},
                   stacktrace="tb", context={"run_id": "r"})
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, AsmError)
    assert back.to_dict() == err.to_dict()
    batch = BatchNormalizationError("1 failed", errors=[(0, {}, AsmError("validation_error"))], successful=[])
    back = pickle.loads(pickle.dumps(batch))
    assert isinstance(back, BatchNormalizationError) and back.code == "validation_error"
    assert back.errors[0][2].code == "validation_error" and back.successful == []


def test_to_dict_round_trips_through_json():
    err = AsmError("provider_rate_limited", "slow down", details={"retry_after": 3, 1: "x"},
                   provider_error={"provider": "claude", "kind": "rate_limit"}, stacktrace="tb",
                   context={"operation": "execute"})
    d = err.to_dict()
    assert set(d) == {"code", "message", "details", "provider_error", "stacktrace", "context", "timestamp"}
    assert d["details"] == {"retry_after": 3, "1": "x"}
    assert d["timestamp"].endswith("Z")
    back = AsmError.from_dict(json.loads(json.dumps(d)))
    assert isinstance(back, AsmError)
    assert back.to_dict() == d
    assert back.timestamp == err.timestamp


def test_from_dict_defaults():
    back = AsmError.from_dict({"code": "timeout", "message": "m"})
    assert back.details == {} and back.context == {} and back.provider_error is None
    assert back.timestamp.tzinfo is not None
    assert AsmError.from_dict({"code": ErrorCode.TIMEOUT, "message": "m", "details": None}).details == {}


@pytest.mark.parametrize("payload,message", [
    ("not a dict", "Invalid error map"),
    (None, "Invalid error map"),
    ({"message": "m"}, "Missing error code"),
    ({"code": None, "message": "m"}, "Missing error code"),
    ({"code": "bogus", "message": "m"}, "Invalid error code: bogus"),
    ({"code": 42, "message": "m"}, "Invalid error code format"),
    ({"code": "timeout"}, "Missing error message"),
    ({"code": "timeout", "message": None}, "Missing error message"),
    ({"code": "timeout", "message": 5}, "Invalid error message format"),
    ({"code": "timeout", "message": "m", "timestamp": "yesterday"}, "Invalid timestamp format"),
    ({"code": "timeout", "message": "m", "timestamp": 12}, "Invalid timestamp format"),
    ({"code": "timeout", "message": "m", "timestamp": "2025-01-27T12:00:00"}, "Invalid timestamp format"),
])
def test_from_dict_rejects_malformed_maps(payload, message):
    with pytest.raises(AsmError) as ei:
        AsmError.from_dict(payload)
    assert ei.value.code == "validation_error"
    assert ei.value.message == message
