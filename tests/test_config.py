"""Configuration resolution: context override → global → ``ASM_<KEY>`` env → default (docs/runtime.md,
configuration)."""

from __future__ import annotations

import contextvars
import threading

import pytest

from asm_nb import config
from asm_nb.core import _settings

SPEC_DEFAULTS = {
    "telemetry_enabled": True, "audit_logging_enabled": True, "redaction_enabled": True,
    "redaction_patterns": "default", "redaction_replacement": "[REDACTED]", "redaction_deep_scan": True,
    "redaction_scan_metadata": False, "stream_idle_timeout_ms": 120_000, "task_shutdown_timeout_ms": 5_000,
    "await_run_timeout_ms": 60_000, "drain_timeout_buffer_ms": 1_000, "command_timeout_ms": 30_000,
    "execute_timeout_ms": 60_000, "execute_grace_timeout_ms": 5_000, "circuit_breaker_cooldown_ms": 30_000,
    "sticky_session_ttl_ms": 300_000, "event_stream_poll_interval_ms": 250, "call_timeout_ms": 5_000,
    "event_buffer_size": 1_000, "max_output_bytes": 1_048_576, "max_patch_bytes": 1_048_576,
    "error_text_max_bytes": 16_384, "error_text_max_lines": 200, "max_parallel_sessions": 100,
    "max_parallel_runs": 50, "max_queued_runs": 100, "circuit_breaker_failure_threshold": 5,
    "circuit_breaker_half_open_max_probes": 1, "sqlite_max_bind_params": 32_766,
    "sqlite_busy_retry_attempts": 25, "sqlite_busy_retry_sleep_ms": 10, "max_query_limit": 1_000,
    "default_session_query_limit": 50, "default_run_query_limit": 50, "default_event_query_limit": 100,
    "retention_max_completed_age_days": 90, "retention_hard_delete_after_days": 30, "retention_batch_size": 100,
    "retention_exempt_statuses": ["active", "paused"], "retention_exempt_tags": ["pinned"],
    "retention_prune_event_types_first": ["message_streamed", "token_usage_updated"], "chars_per_token": 4,
    "default_shell": "/bin/sh", "default_success_exit_codes": [0],
    "excluded_workspace_roots": [".git", "deps", "_build", "node_modules"], "default_router_name": "router",
    "pricing_table": None, "claude_default_model": None, "policy_cost_rates": {},
}


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    """Each test starts with no env overrides and restores any global it sets."""
    for key in config.valid_keys():
        monkeypatch.delenv("ASM_" + key.upper(), raising=False)
    saved = dict(config._global)
    yield
    config._global.clear()
    config._global.update(saved)


@pytest.mark.parametrize("key,value", SPEC_DEFAULTS.items())
def test_every_spec_key_has_its_default(key, value):
    assert key in config.valid_keys()
    assert config.default(key) == value
    assert config.get(key) == value


def test_unknown_key_raises_key_error_everywhere():
    for call in (lambda: config.get("nope"), lambda: config.put("nope", 1), lambda: config.delete("nope"),
                 lambda: config.default("nope"), lambda: config.set_global("nope", 1),
                 lambda: config.clear_global("nope")):
        with pytest.raises(KeyError, match="unknown config key: nope"):
            call()
    with pytest.raises(KeyError):
        with config.override(nope=1):
            pass


@pytest.mark.parametrize("key,value", [("event_buffer_size", 7), ("default_shell", "/bin/bash"),
                                       ("retention_exempt_tags", ["keep", "pinned"])])
def test_put_get_delete_cycle(key, value):
    def body():
        assert config.get(key) == SPEC_DEFAULTS[key]
        config.put(key, value)
        assert config.get(key) == value
        assert config.default(key) == SPEC_DEFAULTS[key]
        config.delete(key)
        assert config.get(key) == SPEC_DEFAULTS[key]
        config.delete(key)  # idempotent

    contextvars.copy_context().run(body)


def test_global_beats_default_and_override_beats_global():
    config.set_global("max_parallel_runs", 9)
    assert config.get("max_parallel_runs") == 9
    with config.override(max_parallel_runs=3):
        assert config.get("max_parallel_runs") == 3
        assert config.default("max_parallel_runs") == 50
    assert config.get("max_parallel_runs") == 9
    config.clear_global("max_parallel_runs")
    assert config.get("max_parallel_runs") == 50


def test_override_restores_previous_value_and_nests():
    with config.override(chars_per_token=2):
        with config.override(chars_per_token=3, event_buffer_size=5):
            assert (config.get("chars_per_token"), config.get("event_buffer_size")) == (3, 5)
        assert (config.get("chars_per_token"), config.get("event_buffer_size")) == (2, 1000)
    assert config.get("chars_per_token") == 4


def test_overrides_are_isolated_between_threads():
    ready, release = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def other_thread():
        seen["before"] = config.get("telemetry_enabled")
        config.put("telemetry_enabled", "other")
        ready.set()
        assert release.wait(5)
        seen["after"] = config.get("telemetry_enabled")

    with config.override(telemetry_enabled=False):
        t = threading.Thread(target=other_thread)
        t.start()
        assert ready.wait(5)
        assert config.get("telemetry_enabled") is False  # the other thread's put does not leak here
        release.set()
        t.join(5)
    assert seen == {"before": True, "after": "other"}
    assert config.get("telemetry_enabled") is True


def test_copied_context_carries_overrides_into_another_thread():
    out = []
    with config.override(command_timeout_ms=1):
        ctx = contextvars.copy_context()
    t = threading.Thread(target=lambda: out.append(ctx.run(config.get, "command_timeout_ms")))
    t.start()
    t.join(5)
    assert out == [1]
    assert config.get("command_timeout_ms") == 30_000


def test_global_setting_is_visible_from_other_threads():
    config.set_global("default_shell", "/bin/zsh")
    out = []
    t = threading.Thread(target=lambda: out.append(config.get("default_shell")))
    t.start()
    t.join(5)
    assert out == ["/bin/zsh"]


@pytest.mark.parametrize("raw,expected", [("5", 5), ("false", False), ('["a", "b"]', ["a", "b"]),
                                          ("/bin/dash", "/bin/dash"), ('{"x": 1}', {"x": 1})])
def test_env_variables_load_json_or_raw_string(monkeypatch, raw, expected):
    monkeypatch.setenv("ASM_DEFAULT_SHELL", raw)
    assert config.get("default_shell") == expected


def test_env_is_below_global_and_override(monkeypatch):
    monkeypatch.setenv("ASM_MAX_QUERY_LIMIT", "7")
    assert config.get("max_query_limit") == 7
    assert config.default("max_query_limit") == 1000
    config.set_global("max_query_limit", 8)
    assert config.get("max_query_limit") == 8
    with config.override(max_query_limit=9):
        assert config.get("max_query_limit") == 9


def test_mutable_defaults_cannot_be_corrupted_by_callers():
    config.get("retention_exempt_tags").append("oops")
    config.default("retention_exempt_tags").append("oops")
    config.get("policy_cost_rates")["x"] = 1
    assert config.get("retention_exempt_tags") == ["pinned"]
    assert config.get("policy_cost_rates") == {}


def test_snapshot_lists_every_key_with_effective_values():
    with config.override(chars_per_token=2):
        snap = config.snapshot()
    assert set(snap) == set(config.valid_keys())
    assert snap["chars_per_token"] == 2


def test_core_reads_its_settings_through_config():
    assert _settings.setting("event_buffer_size") == 1000
    with config.override(event_buffer_size=3, chars_per_token=2):
        assert _settings.setting("event_buffer_size") == 3
        assert _settings.setting("chars_per_token") == 2


def test_core_settings_fall_back_to_builtin_defaults_without_a_source():
    previous = _settings._source
    try:
        _settings.install(None)
        assert _settings.setting("event_buffer_size") == 1000
        _settings.install(lambda key: (_ for _ in ()).throw(KeyError(key)))
        assert _settings.setting("chars_per_token") == 4
    finally:
        _settings.install(previous)
