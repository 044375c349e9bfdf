"""EventRedactor (docs/event-model.md, redaction): patterns, skip list, targeted fields, walk, configuration."""

from __future__ import annotations

import enum
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asm_nb import config
from asm_nb.core.events import Event, EventType, all_types
from asm_nb.persistence import redaction
from asm_nb.persistence.redaction import (
    SKIP_TYPES, RedactionConfig, RedactionResult, default_patterns, redact, redact_map, resolve_config,
)

ON = {"enabled": True}
AWS = "AKIAIOSFODNN7EXAMPLE"
BEARER = "Bearer " + "abcdefghijklmnopqrstuvwxyz012345"

# (category, text, secret part that must disappear)
SAMPLES = [
    ("aws_access_key", f"key is {AWS} here", AWS),
    ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("gcp_api_key", "gcp AIzaSyD" + "x1Y2z3" * 5 + "ab here", "AIzaSyD" + "x1Y2z3" * 5 + "ab"),
    ("anthropic_key", "sk-ant-api03-abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx"),
    ("openai_key", "token sk-proj-" + "Ab1" * 8, "Ab1" * 8),
    ("openai_legacy_key", "sk-" + "Zz9" * 14, "Zz9" * 14),
    ("github_pat", "ghp_" + "a1B2c3" * 6, "a1B2c3" * 6),
    ("github_oauth", "gho_" + "a1B2c3" * 6, "a1B2c3" * 6),
    ("github_app", "ghs_" + "a1B2c3" * 6, "a1B2c3" * 6),
    ("github_refresh", "ghr_" + "a1B2c3" * 6, "a1B2c3" * 6),
    ("github_fine_pat", "github_pat_11ABCDEFG0123456789_abcdefghij", "11ABCDEFG0123456789_abcdefghij"),
    ("gitlab_token", "glpat-xxxxXXXX1234_-abcdEF", "xxxxXXXX1234_-abcdEF"),
    ("jwt_token", "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
    ("bearer_token", f"Authorization: {BEARER}", "abcdefghijklmnopqrstuvwxyz012345"),
    ("password", "PASSWORD: supersecret123", "supersecret123"),
    ("api_key_generic", "config api_key=abcd1234efgh", "abcd1234efgh"),
    ("secret_key", "SECRET-KEY: s3cr3tvalue", "s3cr3tvalue"),
    ("access_token", "access_token=tok_123456", "tok_123456"),
    ("auth_token", "authToken = xyz987654", "xyz987654"),
    ("connection_string", "postgres://user:pass@localhost:5432/mydb", "user:pass@localhost"),
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", "BEGIN RSA PRIVATE KEY"),
    ("env_secret", "SECRET_KEY_BASE=abcdef0123456789", "abcdef0123456789"),
]


def ev(t="message_received", data=None, metadata=None):
    return Event.new(t, "ses_1", run_id="run_1", data=data or {}, metadata=metadata or {})


def naive_scan(text, patterns, repl_for):
    """The spec's definition: every pattern in order on the current string, counting matches."""
    count = 0
    for category, pat in patterns:
        text, n = pat.subn(lambda m, c=category: repl_for(c), text)
        count += n
    return text, count


# -- defaults ------------------------------------------------------------------------------------

def test_default_patterns_in_order():
    pats = default_patterns()
    cats = [c for c, _ in pats]
    assert len(pats) == len(redaction.DEFAULT_PATTERN_SPECS) >= 60
    assert len(set(cats)) == len(cats)
    generic = cats.index("password")  # provider formats run before the labelled generic forms
    assert all(cats.index(c) < generic for c in ("openai_key", "stripe_key", "slack_token", "private_key",
                                                  "connection_string", "jwt_token", "bearer_token"))
    assert cats[-1] == "aws_secret_key_bare"
    assert all(isinstance(p, re.Pattern) and p.flags & re.ASCII for _, p in pats)
    assert cats[0] == "aws_access_key" and pats[0][1].search("AKIAIOSFODNN7EXAMPLE")


def test_samples_cover_each_pattern():
    for category, text, _ in SAMPLES:
        pat = dict(default_patterns())[category]
        assert pat.search(text), category


@pytest.mark.parametrize("category,text,secret", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_each_sample_loses_its_secret(category, text, secret):
    r = redact(ev(data={"content": text}), ON)
    out = r.event.data["content"]
    assert secret not in out
    assert "[REDACTED]" in out
    assert r.redaction_count >= 1
    assert r.fields_redacted == ["content"]


@pytest.mark.parametrize("category,text,secret", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_each_sample_categorized(category, text, secret):
    r = redact(ev(data={"content": text}), {"enabled": True, "replacement": "categorized"})
    assert f"[REDACTED:{category}]" in r.event.data["content"]


def test_whole_match_is_replaced():
    assert redact(ev(data={"content": "password=hunter2"}), ON).event.data["content"] == "[REDACTED]"
    assert redact(ev(data={"content": BEARER}), ON).event.data["content"] == "[REDACTED]"


def test_private_key_block_is_removed_whole():
    text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\nafter"
    out = redact(ev(data={"content": text}), ON).event.data["content"]
    assert out == "[REDACTED]\nafter"


def test_redis_and_other_urls():
    for url in ("redis://:pw@cache:6379/0", "mongodb://u:p@db/x", "MYSQL://root:r@h/db", "amqp://g:g@mq//"):
        out = redact(ev(data={"content": f"connect {url} now"}), ON).event.data["content"]
        assert out == "connect [REDACTED] now"


def test_mixed_string_counts_three():
    text = f"{AWS} password=hunter2 Authorization: {BEARER}"
    r = redact(ev(data={"content": text}), ON)
    assert r.redaction_count == 3
    assert r.event.data["content"] == "[REDACTED] [REDACTED] Authorization: [REDACTED]"


def test_short_lookalikes_untouched():
    for text in ("ghp_short", "sk-abc", "AKIA123", "Bearer abc", "password", "eyJabc.def.ghi"):
        r = redact(ev(data={"content": text}), ON)
        assert r.event.data["content"] == text and r.redaction_count == 0


def test_shortest_default_match_is_not_skipped():
    compiled = redaction._compiled(RedactionConfig(True))
    assert compiled.min_len == 5
    assert redact(ev(data={"content": "pwd=x"}), ON).event.data["content"] == "[REDACTED]"


# -- walk ----------------------------------------------------------------------------------------

def test_nested_headers_dict():
    r = redact(ev("tool_call_started", {"tool_name": "http", "tool_input": {
        "url": "https://api.example.com", "headers": {"Authorization": BEARER, "X-Api-Key": "apikey: k-123"}}}), ON)
    headers = r.event.data["tool_input"]["headers"]
    assert headers == {"Authorization": "[REDACTED]", "X-Api-Key": "[REDACTED]"}
    assert r.event.data["tool_input"]["url"] == "https://api.example.com"
    assert r.redaction_count == 2 and r.fields_redacted == ["tool_input"]


def test_lists_of_content_blocks():
    blocks = [{"type": "text", "content": "fine"}, {"type": "text", "content": f"use {AWS}"}]
    r = redact(ev(data={"content": "ok text", "blocks": blocks}), ON)
    assert r.event.data["blocks"][0] == {"type": "text", "content": "fine"}
    assert r.event.data["blocks"][1]["content"] == "use [REDACTED]"
    assert isinstance(r.event.data["blocks"], list)
    assert blocks[1]["content"] == f"use {AWS}"  # the input is never mutated


def test_same_string_object_under_two_keys_counts_twice():
    text = f"key {AWS}"
    r = redact(ev("message_streamed", {"delta": text, "content": text, "nested": {"a": text, "b": text}}), ON)
    assert r.event.data["delta"] == r.event.data["content"] == "key [REDACTED]"
    assert r.event.data["nested"] == {"a": "key [REDACTED]", "b": "key [REDACTED]"}
    assert r.redaction_count == 4 and r.fields_redacted == ["delta", "content", "nested"]


def test_tuples_keep_their_type():
    r = redact(ev(data={"t": ("password=x1", 3), "l": ["keep"]}), ON)
    assert r.event.data["t"] == ("[REDACTED]", 3) and isinstance(r.event.data["t"], tuple)


def test_run_failed_provider_error_stderr_and_details_context():
    data = {
        "error_code": "provider_error", "error_message": "CLI failed",
        "provider_error": {"kind": "process_exit", "exit_code": 1,
                           "stderr": "Error: invalid x-api-key sk-ant-api03-abcdefghijklmnopqrstuvwx"},
        "details": {"context": "DATABASE_URL=postgres://user:pass@host/db"},
    }
    r = redact(ev("run_failed", data), ON)
    assert "abcdefghijklmnopqrstuvwx" not in r.event.data["provider_error"]["stderr"]
    assert r.event.data["provider_error"]["exit_code"] == 1
    assert r.event.data["details"]["context"] == "DATABASE_URL=[REDACTED]"
    assert sorted(r.fields_redacted) == ["details", "provider_error"]
    targeted = redact(ev("run_failed", data), {"enabled": True, "deep_scan": False})
    assert "abcdefghijklmnopqrstuvwx" not in targeted.event.data["provider_error"]["stderr"]
    assert targeted.event.data["details"] == data["details"]  # not a targeted field of run_failed


class Color(str, enum.Enum):
    SECRET = "password=hunter2"


def test_non_strings_untouched():
    data = {"n": 42, "b": True, "none": None, "f": 1.5, "enum": EventType.RUN_STARTED, "strenum": Color.SECRET,
            "bytes": AWS.encode(), "content": "plain"}
    r = redact(ev(data=data), ON)
    assert r.event.data == data and r.redaction_count == 0
    assert r.event is not None and r.event.data["strenum"] is Color.SECRET


def test_keys_are_never_scanned():
    r = redact(ev(data={AWS: "value", "password=hunter2": 1}), ON)
    assert r.event.data == {AWS: "value", "password=hunter2": 1}


def _nested(secret_levels):
    root: dict = {}
    node = root
    for i in range(1, 16):
        child: dict = {}
        node[f"level_{i}"] = child
        node = child
        if i in secret_levels:
            node["text"] = f"token {AWS}"
    return root


def _level(tree, n):
    node = tree
    for i in range(1, n + 1):
        node = node[f"level_{i}"]
    return node


def test_levels_5_and_12_are_both_redacted():
    # issue 18: a secret nested deeper than 10 levels used to be stored unscanned
    r = redact(ev("tool_call_completed", {"tool_name": "t", "tool_output": _nested({5, 12})}), ON)
    out = r.event.data["tool_output"]
    assert _level(out, 5)["text"] == "token [REDACTED]"
    assert _level(out, 12)["text"] == "token [REDACTED]"
    assert r.redaction_count == 2


def test_beyond_max_depth_the_value_is_replaced_not_kept():
    deep: dict = {"text": f"token {AWS}"}
    for _ in range(redaction.MAX_DEPTH + 5):
        deep = {"level": deep}
    out = redact(ev("tool_call_completed", {"tool_output": deep}), ON).event.data["tool_output"]
    assert AWS not in repr(out) and redaction.TOO_DEEP in repr(out)


def _in_lists(n):
    value: object = {"s": f"x {AWS}"}
    for _ in range(n):
        value = [value]
    return value


def test_list_items_count_one_extra_level():
    # data["a"] is a list at depth 1 holding items at depth 2: n nested lists put the dict at n + 1
    assert redact(ev(data={"a": _in_lists(5)}), ON).redaction_count == 1  # dict at depth 6
    assert redact(ev(data={"a": _in_lists(9)}), ON).redaction_count == 1  # depth 10
    assert redact(ev(data={"a": _in_lists(10)}), ON).redaction_count == 1  # depth 11: walked too
    deep = redact(ev(data={"a": _in_lists(redaction.MAX_DEPTH + 3)}), ON).event.data["a"]
    assert AWS not in repr(deep)


def test_120_kb_plain_text_unchanged():
    line = "The api design uses tokens; see https://example.com/docs for the password policy and auth flow.\n"
    text = line * (120_000 // len(line) + 1)
    assert len(text) >= 120_000
    r = redact(ev(data={"content": text}), ON)
    assert r.redaction_count == 0 and r.event.data["content"] is text


def test_unicode_text():
    text = "Привет, мир 日本語 🎉 password=пароль123 ✓ done"
    r = redact(ev(data={"content": text}), ON)
    assert r.event.data["content"] == "Привет, мир 日本語 🎉 [REDACTED] ✓ done"
    plain = "Ünïcödé ŧëxŧ ñö šëçrëŧş ħëřë — ĸ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    assert redact(ev(data={"content": plain}), ON).event.data["content"] == plain


def test_fields_redacted_sorted_and_first_change_order():
    r = redact(ev("tool_call_completed", {"tool_name": "bash", "tool_output": f"found {AWS}",
                                          "tool_input": {"command": "export API_KEY=abc123"}}), ON)
    assert sorted(r.fields_redacted) == ["tool_input", "tool_output"]
    assert r.fields_redacted == ["tool_output", "tool_input"]  # dict order of data


def test_fields_redacted_unique_across_data_and_metadata():
    r = redact(ev(data={"b": AWS, "a": AWS}, metadata={"b": AWS, "c": AWS}),
               {"enabled": True, "scan_metadata": True})
    assert r.fields_redacted == ["b", "a", "c"] and r.redaction_count == 4


def test_unchanged_event_is_returned_as_is():
    e = ev(data={"content": "nothing secret"})
    r = redact(e, ON)
    assert isinstance(r, RedactionResult) and r.event is e and r.fields_redacted == []


# -- skip list and targeted fields -----------------------------------------------------------

@pytest.mark.parametrize("t", sorted(SKIP_TYPES, key=lambda t: t.value))
def test_skip_types_are_never_changed(t):
    e = ev(t, {"content": AWS, "error_message": AWS})
    r = redact(e, ON)
    assert r.event is e and r.redaction_count == 0 and r.fields_redacted == []


def test_skip_list_has_13_types_and_others_are_redacted():
    # the reference's 14 minus run_started, which carries shell / CLI command lines
    assert len(SKIP_TYPES) == 13 and EventType.RUN_STARTED not in SKIP_TYPES
    for t in all_types():
        if t not in SKIP_TYPES:
            assert redact(ev(t, {"anything": AWS}), ON).redaction_count == 1, t


def test_run_started_command_lines_are_redacted():
    e = ev("run_started", {"command": "curl -H 'Authorization: Bearer " + "x" * 32 + "'", "cwd": "/tmp"})
    r = redact(e, ON)
    assert "x" * 32 not in r.event.data["command"] and r.fields_redacted == ["command"]


@pytest.mark.parametrize("t,fields", [
    ("run_started", ["command"]),
    ("message_sent", ["content"]), ("message_received", ["content"]), ("message_streamed", ["content", "delta"]),
    ("tool_call_started", ["tool_input"]), ("tool_call_completed", ["tool_input", "tool_output"]),
    ("tool_call_failed", ["tool_input", "tool_output"]), ("error_occurred", ["error_message", "provider_error"]),
    ("run_failed", ["error_message", "provider_error"]), ("session_failed", ["error_message", "provider_error"]),
    ("policy_violation", ["details"]), ("run_completed", []), ("tool_approval_requested", []),
])
def test_targeted_fields_when_deep_scan_off(t, fields):
    keys = ["content", "delta", "tool_input", "tool_output", "error_message", "provider_error", "details", "command",
            "extra"]
    data = {k: {"nested": f"v {AWS}"} if k in ("tool_input", "provider_error") else f"v {AWS}" for k in keys}
    r = redact(ev(t, data), {"enabled": True, "deep_scan": False})
    assert sorted(r.fields_redacted) == sorted(fields)
    assert r.event.data["extra"] == f"v {AWS}"


def test_deep_scan_off_message_received_scans_content_not_extra():
    r = redact(ev(data={"content": f"k {AWS}", "extra": f"k {AWS}"}), {"enabled": True, "deep_scan": False})
    assert r.event.data == {"content": "k [REDACTED]", "extra": f"k {AWS}"} and r.redaction_count == 1


def test_scan_metadata_redacts_bearer_header():
    meta = {"request": {"headers": {"Authorization": BEARER}}}
    r = redact(ev(data={"content": "hi there"}, metadata=meta), {"enabled": True, "scan_metadata": True})
    assert r.event.metadata["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert r.fields_redacted == ["request"] and r.redaction_count == 1
    off = redact(ev(data={"content": "hi there"}, metadata=meta), ON)
    assert off.event.metadata == meta and off.redaction_count == 0


# -- configuration -----------------------------------------------------------------------------

def test_replacement_string_exact():
    r = redact(ev(data={"content": "password=hunter2"}), {"enabled": True, "replacement": "***"})
    assert r.event.data["content"] == "***"


def test_replacement_is_literal_not_a_template():
    r = redact(ev(data={"content": "password=hunter2"}), {"enabled": True, "replacement": r"<\1 \g<0>>"})
    assert r.event.data["content"] == r"<\1 \g<0>>"


def test_categorized_label():
    r = redact(ev(data={"content": AWS}), {"enabled": True, "replacement": "categorized"})
    assert r.event.data["content"] == "[REDACTED:aws_access_key]"


def test_custom_list_appends_to_defaults():
    cfg = {"enabled": True, "patterns": [("internal_id", r"INT-\d{6}")]}
    r = redact(ev(data={"content": f"{AWS} and INT-123456"}), cfg)
    assert r.event.data["content"] == "[REDACTED] and [REDACTED]" and r.redaction_count >= 2
    cat = redact(ev(data={"content": "INT-123456"}), {**cfg, "replacement": "categorized"})
    assert cat.event.data["content"] == "[REDACTED:internal_id]"


def test_bare_and_compiled_custom_patterns_and_dropped_entries():
    cfg = {"enabled": True, "replacement": "categorized",
           "patterns": [r"ZZ-\d+", re.compile(r"(?i)widget-[a-z]+"), 42, None, (1, 2), re.compile(rb"bytes")]}
    r = redact(ev(data={"content": "ZZ-99 WIDGET-abc bytes"}), cfg)
    assert r.event.data["content"] == "[REDACTED:custom] [REDACTED:custom] bytes"


@pytest.mark.parametrize("patterns", [
    {"replace": [("internal_id", r"INT-\d{6}")]},
    ("replace", [("internal_id", r"INT-\d{6}")]),
])
def test_replace_mode_uses_only_given_patterns(patterns):
    r = redact(ev(data={"content": f"{AWS} INT-123456"}), {"enabled": True, "patterns": patterns})
    assert r.event.data["content"] == f"{AWS} [REDACTED]" and r.redaction_count == 1


def test_unknown_patterns_value_means_defaults():
    r = redact(ev(data={"content": AWS}), {"enabled": True, "patterns": "whatever"})
    assert r.redaction_count == 1


def test_custom_pattern_can_lower_the_length_shortcut():
    r = redact(ev(data={"content": "X"}), {"enabled": True, "patterns": [r"X"]})
    assert r.event.data["content"] == "[REDACTED]"


def test_dict_config_defaults_to_disabled():
    e = ev(data={"content": AWS})
    assert redact(e, {}).event is e
    assert redact(e, {"enabled": False}).redaction_count == 0


def test_none_config_reads_global_config():
    e = ev(data={"content": AWS})
    assert redact(e).redaction_count == 1  # asm_nb default: on
    with config.override(redaction_enabled=False):
        assert redact(e).event is e
    with config.override(redaction_replacement="categorized", redaction_deep_scan=False):
        assert redact(e).event.data["content"] == "[REDACTED:aws_access_key]"
        assert redact(ev(data={"other": AWS})).redaction_count == 0
    with config.override(redaction_scan_metadata=True, redaction_patterns={"replace": [r"INT-\d+"]}):
        r = redact(ev(data={"content": AWS}, metadata={"m": "INT-77"}))
        assert r.event.data["content"] == AWS and r.event.metadata["m"] == "[REDACTED]"


def test_resolve_config_forms():
    assert resolve_config({}).enabled is False
    assert resolve_config({}, enabled_default=True) == RedactionConfig(True, "default", "[REDACTED]", True, False)
    cfg = RedactionConfig(True, replacement="x")
    assert resolve_config(cfg) is cfg
    with pytest.raises(TypeError):
        resolve_config(42)


def test_config_get_many_matches_get(monkeypatch):
    keys = redaction._CONFIG_KEYS
    assert config.get_many(*keys) == tuple(config.get(k) for k in keys)
    monkeypatch.setenv("ASM_REDACTION_REPLACEMENT", "###")
    monkeypatch.setenv("ASM_REDACTION_DEEP_SCAN", "false")
    assert config.get_many(*keys) == tuple(config.get(k) for k in keys)
    assert config.get_many("redaction_replacement", "redaction_deep_scan") == ("###", False)
    with config.override(redaction_replacement="ctx"):
        assert config.get_many("redaction_replacement") == ("ctx",)
    with pytest.raises(KeyError):
        config.get_many("nope")


def test_env_setting_reaches_the_redactor(monkeypatch):
    monkeypatch.setenv("ASM_REDACTION_REPLACEMENT", "<gone>")
    assert redact(ev(data={"content": AWS})).event.data["content"] == "<gone>"


def test_redact_emits_telemetry_only_when_something_matched():
    from asm_nb import telemetry

    seen = []
    telemetry.attach("t-redacted", redaction.EVENT_REDACTED, lambda n, m, md, c: seen.append((m, md)))
    try:
        with config.override(telemetry_enabled=True):
            redact(ev(data={"content": "clean text"}), ON)
            redact(ev(data={"content": AWS}), ON)
            redact_map({"content": AWS}, ON)  # plain dicts are not events: no telemetry
        with config.override(telemetry_enabled=False):
            redact(ev(data={"content": AWS}), ON)
    finally:
        telemetry.detach("t-redacted")
    assert seen == [({"redaction_count": 1}, {"session_id": "ses_1", "run_id": "run_1",
                                              "type": EventType.MESSAGE_RECEIVED, "fields_redacted": ["content"]})]


# -- redact_map --------------------------------------------------------------------------------

def test_redact_map_deep_all_keys():
    d = {"type": "message_streamed", "data": {"delta": f"key {AWS}"}, "metadata": {"h": [BEARER]}}
    out = redact_map(d, ON)
    assert out["data"]["delta"] == "key [REDACTED]" and out["metadata"]["h"] == ["[REDACTED]"]
    assert d["data"]["delta"] == f"key {AWS}"


def test_redact_map_disabled_and_non_mappings():
    d = {"x": AWS}
    assert redact_map(d, {}) is d
    assert redact_map(d) == {"x": "[REDACTED]"}  # None → global config (on by default)
    with config.override(redaction_enabled=False):
        assert redact_map(d) is d
    assert redact_map("not a dict", ON) == "not a dict"


# -- equivalence with the plain definition (the literal gates must never change a result) ------

_pattern_texts = st.sampled_from([p for _, p in default_patterns()]).flatmap(lambda p: st.from_regex(p))
_noise = st.lists(st.sampled_from(list("ab :=_-./\né") + ["api", "key", "token", "passw", "://", "_url", "sk-"]),
                  max_size=8).map("".join)
_texts = st.lists(st.one_of(_pattern_texts, _noise), min_size=1, max_size=4).map("".join)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts, replacement=st.sampled_from(["[REDACTED]", "categorized", "pwd=", "api_key: ", "x"]))
def test_scan_equals_running_every_pattern_in_order(text, replacement):
    compiled = redaction._compiled(RedactionConfig(True, replacement=replacement))

    def repl_for(category):
        return f"[REDACTED:{category}]" if replacement == "categorized" else replacement

    assert compiled.scan(text) == naive_scan(text, default_patterns(), repl_for)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_pattern_texts)
def test_every_generated_match_is_redacted(text):
    new, count = redaction._compiled(RedactionConfig(True)).scan(text)
    assert count >= 1 and new != text
