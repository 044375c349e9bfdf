"""EventRedactor: replaces secrets (API keys, tokens, passwords, connection strings…) in event
payloads before they are stored or displayed.

See docs/event-model.md, redaction. ``redact(event)`` returns a ``RedactionResult``; ``redact_map(d)`` redacts
a plain dict (the notebook display path, which would otherwise bypass the redactor). The 86 default patterns
(checked rule by rule against gitleaks' config/gitleaks.toml, trufflehog's detectors and detect-secrets'
plugins: docs/event-model.md lists which rule each follows) apply in order, each to the output of the previous
one; the whole match is replaced.

**Deviation:** redaction is on by default in asm_nb (config ``redaction_enabled = True``);
the reference defaults to off.

Speed (the pipeline target is ≥ 50 000 events/s): a string shorter than the shortest possible
match is skipped, and every default pattern is gated by literals that any of its matches must
contain (checked with ``in`` on the lower-cased string: well under a microsecond for a typical
delta). A pattern runs only on text that passes its gate; after a replacement the gates are
re-evaluated on the new text, so counts and results are exactly those of running every pattern
in order. (The spec suggests one combined alternation as the prefilter; with 22 alternatives
and case-insensitive branches Python's ``re`` needs ~13 µs for 80 characters, the literal
gates ~0.6 µs.) Each trigger is searched only after its rarest characters are found (one-character
``in`` is a ``memchr``); text is lower-cased ASCII-only for the gates (the gated patterns are
``re.ASCII``); the two rules without a narrowing literal (the bare AWS secret key, the Discord
token) first pass a character-run precheck that every match needs (``_PRECHECKS``). Custom
patterns are never gated. Compiled configurations are cached, keyed on their values.

Imports ``core``, ``config`` and ``telemetry``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from enum import Enum
from collections.abc import Mapping
from typing import Any

from .. import config as _config
from .. import telemetry
from ..core.events import Event, EventType

__all__ = [
    "DEFAULT_PATTERN_SPECS", "SKIP_TYPES", "TARGETED_FIELDS", "MAX_DEPTH", "TOO_DEEP", "RedactionConfig",
    "RedactionResult", "EVENT_REDACTED", "default_patterns", "resolve_config", "redact", "redact_map",
    "redact_payload", "emit_redacted", "scan_text",
]

# Values are walked to any realistic depth (a secret nested 12 levels deep is still found); a value
# nested deeper than this is replaced whole rather than stored unscanned.
MAX_DEPTH = 200
TOO_DEEP = "[REDACTED: nested too deep to scan]"

_SEP = (":", "=")

# The value after a ``key=`` / ``"key": `` label: a quoted string or a bare word, but not a
# placeholder (``...``, ``<your key>``, ``$VAR``, ``${VAR}``, ``{{ var }}``, ``os.environ[...]``)
# nor text already redacted, so hints such as "pass api_key=..." stay readable.
_NOT_PLACEHOLDER = r"(?!\.\.\.|<|\$|\{\{|\[REDACTED|os\.environ|process\.env|None\b|null\b)"
_VALUE = rf"""(?:"{_NOT_PLACEHOLDER}[^"\n]+"|'{_NOT_PLACEHOLDER}[^'\n]+'|{_NOT_PLACEHOLDER}[^\s"',;]+)"""
_LABEL_END = r"""["']?\s*[:=]\s*"""


def _labelled(names: str) -> str:
    """``names`` (an alternation) as a label: optional quote, optional ``x_`` prefix, separator,
    value; case-insensitive."""
    return rf"""(?i)["']?\b(?:[a-z0-9]+[_.-])*(?:{names}){_LABEL_END}{_VALUE}"""


# (category, pattern source, gate). A gate is (triggers, all_of, any_of) of lower-case literals:
# every match of the pattern, lower-cased, contains one trigger, every ``all_of`` string and
# (when given) one ``any_of`` string. tests/persistence/test_redaction.py checks this on
# generated matches; a pattern is only run on text that passes its gate.
#
# Sources: the rule sets of gitleaks (config/gitleaks.toml), trufflehog detectors and
# detect-secrets plugins; specific provider formats first, then labelled generic forms.
_DEFAULTS: tuple[tuple[str, str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]], ...] = (
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|A3T[A-Z0-9])[0-9A-Z]{16}\b",
     (("akia", "asia", "abia", "acca", "agpa", "aida", "aroa", "aipa", "anpa", "anva", "a3t"), (), ())),
    ("aws_secret_key", r"(?i)aws[_-]?secret[_-]?access[_-]?key\s*[:=]\s*\S+",
     (("secret",), ("aws", "access", "key"), _SEP)),
    ("gcp_api_key", r"AIza[0-9A-Za-z_-]{35}", (("aiza",), (), ())),
    ("anthropic_key", r"sk-ant-[a-z]{2,8}\d{0,2}-[A-Za-z0-9_-]{20,}", (("sk-ant-",), (), ())),
    ("openai_key", r"sk-(?:proj|svcacct|service|admin|None)-[A-Za-z0-9_-]{20,}",
     (("sk-proj-", "sk-svcacct-", "sk-service-", "sk-admin-", "sk-none-"), (), ())),
    ("openrouter_key", r"\bsk-or-v1-[0-9a-f]{64}\b", (("sk-or-v1-",), (), ())),
    ("langfuse_secret_key", r"\bsk-lf-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
     (("sk-lf-",), (), ())),
    ("openai_legacy_key", r"sk-[a-zA-Z0-9]{32,}", (("sk-",), (), ())),
    ("github_pat", r"ghp_[a-zA-Z0-9]{36}", (("ghp_",), (), ())),
    ("github_oauth", r"gho_[a-zA-Z0-9]{36}", (("gho_",), (), ())),
    ("github_app", r"gh[su]_[a-zA-Z0-9]{36}", (("ghs_", "ghu_"), (), ())),
    ("github_refresh", r"ghr_[a-zA-Z0-9]{36}", (("ghr_",), (), ())),
    ("github_fine_pat", r"github_pat_[a-zA-Z0-9_]{22,}", (("github_pat_",), (), ())),
    ("gitlab_token", r"\b(?:gl(?:pat|dt|ft|rt|cbt|ptt|oas|soat|imt|agent|ffct)-[0-9A-Za-z_-]{20,}(?:\.[0-9a-z]{9})?"
                     r"|GR1348941[0-9A-Za-z_-]{20,50}|_gitlab_session=[0-9a-z]{32})",
     (("glpat-", "gldt-", "glft-", "glrt-", "glcbt-", "glptt-", "gloas-", "glsoat-", "glimt-", "glagent-",
       "glffct-", "gr1348941", "_gitlab_session="), (), ())),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test|prod)_[0-9A-Za-z]{10,99}\b",
     (("sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_"), (), ())),
    ("stripe_webhook_secret", r"\bwhsec_[0-9A-Za-z]{24,}", (("whsec_",), (), ())),
    ("slack_token", r"\bxox[abposre]-[0-9A-Za-z-]{10,}", (("xox",), (), ())),
    ("slack_app_token", r"(?i)\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+", (("xapp-",), (), ())),
    ("slack_webhook", r"(?i)\bhooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}",
     (("hooks.slack.com/",), (), ())),
    ("discord_webhook", r"(?i)\bdiscord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{20,}",
     (("/api/webhooks/",), (), ())),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", (("npm_",), (), ())),
    ("pypi_token", r"\bpypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,}",
     (("pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"), (), ())),
    ("rubygems_token", r"\brubygems_[a-f0-9]{48}\b", (("rubygems_",), (), ())),
    ("dockerhub_token", r"\bdckr_(?:pat_[A-Za-z0-9_-]{27}|oat_[A-Za-z0-9_-]{32})(?![A-Za-z0-9_-])",
     (("dckr_pat_", "dckr_oat_"), (), ())),
    ("huggingface_token", r"\b(?:hf_|api_org_)[A-Za-z0-9]{30,}\b", (("hf_", "api_org_"), (), ())),
    ("google_oauth", r"\b(?:GOCSPX-[A-Za-z0-9_-]{28}|ya29\.[0-9A-Za-z_-]{20,})", (("gocspx-", "ya29."), (), ())),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}", (("sg.",), (), ())),
    ("brevo_key", r"\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}\b", (("xkeysib-",), (), ())),
    ("twilio_key", r"\bSK[0-9a-fA-F]{32}\b", (("sk",), (), ())),
    ("mailgun_key", r"\bkey-[0-9a-f]{32}\b", (("key-",), (), ())),
    ("mailchimp_key", r"\b[0-9a-f]{32}-us[0-9]{1,2}\b", (("-us",), (), ())),
    ("azure_client_secret", r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}", (("q~",), (), ())),
    ("azure_storage_key", r"(?i)\b(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/=]{20,}",
     (("accountkey=", "sharedaccesskey="), (), ())),
    ("azure_sas_signature", r"(?i)[?&]sig=[A-Za-z0-9%+/=]{20,}", (("sig=",), (), ())),
    ("aws_bedrock_key", r"\b(?:ABSK[A-Za-z0-9+/]{109,269}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t"
                        r"[A-Za-z0-9+/=%&?._-]*)", (("absk", "bedrock-api-key-"), (), ())),
    ("alibaba_key_id", r"\bLTAI[A-Za-z0-9]{20}\b", (("ltai",), (), ())),
    ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b", (("doo_v1_", "dop_v1_", "dor_v1_"), (), ())),
    ("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b", (("shpat_", "shpca_", "shppa_", "shpss_"), (), ())),
    ("databricks_token", r"\bdapi[a-f0-9]{32}(?:-\d)?\b", (("dapi",), (), ())),
    ("vault_token", r"\bhv[sb]\.[A-Za-z0-9_-]{90,}", (("hvs.", "hvb."), (), ())),
    ("pulumi_token", r"\bpul-[a-f0-9]{40}\b", (("pul-",), (), ())),
    ("doppler_token", r"\bdp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9]{40,}",
     (("dp.pt.", "dp.st.", "dp.ct.", "dp.sa.", "dp.scim.", "dp.audit."), (), ())),
    ("linear_key", r"\blin_api_[A-Za-z0-9]{40}\b", (("lin_api_",), (), ())),
    ("notion_token", r"\bntn_[0-9]{11}[A-Za-z0-9]{35}\b", (("ntn_",), (), ())),
    ("terraform_token", r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}", ((".atlasv1.",), (), ())),
    ("heroku_key", r"\bHRKU-AA[0-9A-Za-z_-]{58}", (("hrku-aa",), (), ())),
    ("flyio_token", r"\b(?:fo1_[A-Za-z0-9_-]{43}|fm1[ar]_[A-Za-z0-9+/]{100,}={0,3}|fm2_[A-Za-z0-9+/]{100,}={0,3})",
     (("fo1_", "fm1a_", "fm1r_", "fm2_"), (), ())),
    ("planetscale_token", r"\bpscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,64}",
     (("pscale_tkn_", "pscale_oauth_", "pscale_pw_"), (), ())),
    ("prefect_key", r"\bpnu_[A-Za-z0-9]{36}\b", (("pnu_",), (), ())),
    ("dynatrace_token", r"\bdt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}", (("dt0c01.",), (), ())),
    ("sourcegraph_token", r"\bsgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}\b", (("sgp_",), (), ())),
    ("onepassword_token", r"\b(?:ops_eyJ[A-Za-z0-9+/]{250,}={0,3}|A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})"
                          r"-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5})\b", (("ops_eyj", "a3-"), (), ())),
    ("artifactory_token", r"\b(?:AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})\b", (("akcp", "cmvmd"), (), ())),
    ("postman_key", r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b", (("pmak-",), (), ())),
    ("age_secret_key", r"AGE-SECRET-KEY-1[0-9A-Z]{58}", (("age-secret-key-1",), (), ())),
    ("telegram_bot_token", r"\b\d{8,10}:A[A-Za-z0-9_-]{34}\b", ((":a",), (), ())),
    ("square_token", r"\b(?:sq0(?:atp|csp)-[0-9A-Za-z_-]{22,}|EAAA[A-Za-z0-9_-]{22,60}\b)",
     (("sq0atp-", "sq0csp-", "eaaa"), (), ())),
    ("facebook_token", r"\bEAA[MC][A-Za-z0-9]{100,}", (("eaam", "eaac"), (), ())),
    ("discord_bot_token", r"(?<![A-Za-z0-9_-])[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}"
                          r"(?![A-Za-z0-9_-])", ((".",), (), ())),
    ("perplexity_key", r"\bpplx-[A-Za-z0-9]{48}\b", (("pplx-",), (), ())),
    ("groq_key", r"\bgsk_[A-Za-z0-9]{52}\b", (("gsk_",), (), ())),
    ("xai_key", r"\bxai-[A-Za-z0-9_]{80}\b", (("xai-",), (), ())),
    ("replicate_token", r"\br8_[A-Za-z0-9_-]{37}(?![A-Za-z0-9_-])", (("r8_",), (), ())),
    ("nvidia_key", r"\bnvapi-[A-Za-z0-9_-]{64}(?![A-Za-z0-9_-])", (("nvapi-",), (), ())),
    ("pinecone_key", r"\bpcsk_[A-Za-z0-9]{5,6}_[A-Za-z0-9]{63}\b", (("pcsk_",), (), ())),
    ("langsmith_key", r"\blsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}\b", (("lsv2_pt_", "lsv2_sk_"), (), ())),
    ("elevenlabs_key", r"\bsk_[a-f0-9]{48}\b", (("sk_",), (), ())),
    ("sentry_token", r"\bsntry[us]_[A-Za-z0-9+/=_]{40,}", (("sntryu_", "sntrys_"), (), ())),
    ("newrelic_key", r"\bNR(?:AK|II|JS)-[A-Za-z0-9-]{19,32}\b", (("nrak-", "nrii-", "nrjs-"), (), ())),
    ("grafana_token", r"\b(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,3}"
                      r"|eyJrIjoi[A-Za-z0-9]{70,400}={0,3})", (("glsa_", "glc_", "eyjrijoi"), (), ())),
    # Atlassian API tokens (ATATT3…, ~190 characters ending in "=" and an 8-character checksum)
    # and organization admin keys (ATCTT3xFfG…)
    ("atlassian_token", r"\bAT[AC]TT3[A-Za-z0-9+/_=-]{20,}", (("atatt3", "atctt3"), (), ())),
    ("jwt_token", r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.(?:[A-Za-z0-9_-]{10,})?", (("eyj",), (".",), ())),
    ("bearer_token", r"(?i)(bearer)\s+[a-zA-Z0-9._~+/=-]{20,}", (("bearer",), (), ())),
    ("basic_auth", r"""(?i)authorization["']?\s*[:=]\s*["']?basic\s+[A-Za-z0-9+/]{8,}={0,2}""",
     (("basic",), ("authorization",), _SEP)),
    ("private_key",
     r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
     r"(?:[\s\S]*?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
     (("-----begin",), ("private key",), ())),
    ("connection_string",
     r"(?i)(postgres|postgresql|mysql|mariadb|redis|rediss|mongodb|mongodb\+srv|amqp|amqps|mssql|sqlserver)"
     r"://[^\s]+", (("://",), (), ())),
    ("url_credentials", r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:@/]+:[^\s@/]+@", (("://",), ("@",), ())),
    ("password", _labelled(r"password|passwd|passphrase|pwd(?=" + _LABEL_END + r"[^/\s])"),
     (("passw", "pwd", "passphrase"), (), _SEP)),
    ("api_key_generic", _labelled(r"api[_-]?key|apikey|api[_-]?secret|api[_-]?token"), (("api",), (), _SEP)),
    ("secret_key", _labelled(r"secret[_-]?key|secretkey|secret[_-]?access[_-]?key|private[_-]?key|signing[_-]?key"
                             r"|encryption[_-]?key|webhook[_-]?secret"),
     (("secret", "private", "signing", "encryption"), (), _SEP)),
    ("keyword_secret", _labelled(r"auth[_-]?key|service[_-]?key|account[_-]?key|client[_-]?key|db[_-]?key"
                                 r"|database[_-]?key|priv[_-]?key|db[_-]?pass(?:word)?|database[_-]?pass(?:word)?"
                                 r"|key[_-]?pass(?:word)?|creds|contrase(?:ña|na)"),
     (("key", "pass", "creds", "contrase"), (), _SEP)),
    ("client_secret", _labelled(r"client[_-]?secret|app[_-]?secret|consumer[_-]?secret|secret"),
     (("secret",), (), _SEP)),
    ("access_token", _labelled(r"access[_-]?token|accesstoken|refresh[_-]?token|id[_-]?token|session[_-]?token"
                               r"|bot[_-]?token|oauth[_-]?token"),
     (("token",), (), _SEP)),
    ("auth_token", _labelled(r"auth[_-]?token|authtoken|credentials?"), (("auth", "credential"), (), _SEP)),
    ("env_secret", r"\b(?:[A-Z][A-Z0-9]*_)*(?:DATABASE_URL|REDIS_URL|SECRET_KEY_BASE|ENCRYPTION_KEY|PRIVATE_KEY"
                   r"|TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY)\s*=\s*" + _VALUE,
     (("_url", "_key", "token", "secret", "password", "secret_key_base"), ("=",), ())),
    # last: a bare 40-character AWS secret access key (mixed case and a digit, so lower-case hex
    # ids such as git SHAs never match)
    ("aws_secret_key_bare",
     r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[0-9])"
     r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", ((), (), ())),
)

DEFAULT_PATTERN_SPECS: tuple[tuple[str, str], ...] = tuple((c, p) for c, p, _ in _DEFAULTS)
_DEFAULT_COMPILED: tuple[tuple[str, re.Pattern], ...] = tuple((c, re.compile(p, re.ASCII)) for c, p, _ in _DEFAULTS)
# (pattern source, flags) -> gate, so a default pattern given again (replace mode, or as a
# string compiled here with re.ASCII) keeps its gate.
_GATES: dict[tuple[str, int], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    (pat.pattern, pat.flags): gate for (_, pat), (_, _, gate) in zip(_DEFAULT_COMPILED, _DEFAULTS)
}


# Character-run prechecks for the two default rules whose literal gate does not narrow them:
# ``aws_secret_key_bare`` has no literal at all and ``discord_bot_token``'s is ".". Each is a
# necessary condition of a match: the text, UTF-8 encoded and mapped through ``table`` (the
# rule's ASCII character class -> "a", kept punctuation as itself, everything else -> " "),
# contains ``needle``. A 40-character run of [A-Za-z0-9/+] for the bare AWS key (its match is
# exactly such a run); 24 characters of [A-Za-z0-9_-] then "." for the Discord token (``[MNO]``
# + 23-25 of the class + "."). The patterns are compiled with ``re.ASCII``, so no non-ASCII
# character is in either class, and a multi-byte character's bytes all map to " ". One C-level
# ``translate`` + ``in`` (a few µs for 1 KB) instead of a regex that tries every position.
# tests/persistence/test_redaction_prechecks.py checks on generated matches and every secret
# format that a precheck never rejects a text its pattern matches.


def _run_table(cls: str, keep: str = "") -> bytes:
    return bytes(0x61 if chr(i) in cls else (i if chr(i) in keep else 0x20) for i in range(256))


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_PRECHECKS: dict[str, tuple[bytes, bytes]] = {
    "aws_secret_key_bare": (_run_table(_ALNUM + "/+"), b"a" * 40),
    "discord_bot_token": (_run_table(_ALNUM + "_-", keep="."), b"a" * 24 + b"."),
}
# (pattern source, flags) -> precheck, as ``_GATES``
_PRE_BY_PATTERN: dict[tuple[str, int], tuple[bytes, bytes]] = {
    (pat.pattern, pat.flags): _PRECHECKS[c] for c, pat in _DEFAULT_COMPILED if c in _PRECHECKS
}


def _ascii_lower(s: str) -> str:
    """``s`` with only ASCII letters lower-cased. The gates are ASCII literals of patterns
    compiled with ``re.ASCII``, whose case-insensitive parts match ASCII letters only, so this is
    exactly as strong a gate as ``str.lower`` (which also folds e.g. the Kelvin sign to "k") and
    several times faster on non-ASCII text."""
    if s.isascii():
        return s.lower()
    return s.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def default_patterns() -> list[tuple[str, re.Pattern]]:
    """The default ``(category, compiled pattern)`` pairs, in application order."""
    return list(_DEFAULT_COMPILED)


_T = EventType
# Deviation from the reference's 14-type skip list: ``run_started`` is scanned, because the shell
# and CLI adapters put the command line there (``echo $TOKEN``-style secrets must not be stored).
SKIP_TYPES: frozenset[EventType] = frozenset({
    _T.SESSION_CREATED, _T.SESSION_STARTED, _T.SESSION_PAUSED, _T.SESSION_RESUMED, _T.SESSION_COMPLETED,
    _T.SESSION_CANCELLED, _T.RUN_CANCELLED, _T.RUN_TIMEOUT, _T.TOKEN_USAGE_UPDATED,
    _T.TURN_COMPLETED, _T.WORKSPACE_SNAPSHOT_TAKEN, _T.WORKSPACE_DIFF_COMPUTED, _T.ERROR_RECOVERED,
})

TARGETED_FIELDS: dict[EventType, frozenset[str]] = {
    _T.RUN_STARTED: frozenset({"command", "prompt"}),
    _T.MESSAGE_SENT: frozenset({"content"}),
    _T.MESSAGE_RECEIVED: frozenset({"content"}),
    _T.MESSAGE_STREAMED: frozenset({"content", "delta"}),
    _T.TOOL_CALL_STARTED: frozenset({"tool_input"}),
    _T.TOOL_CALL_COMPLETED: frozenset({"tool_input", "tool_output"}),
    _T.TOOL_CALL_FAILED: frozenset({"tool_input", "tool_output"}),
    _T.ERROR_OCCURRED: frozenset({"error_message", "provider_error"}),
    _T.RUN_FAILED: frozenset({"error_message", "provider_error"}),
    _T.SESSION_FAILED: frozenset({"error_message", "provider_error"}),
    _T.POLICY_VIOLATION: frozenset({"details"}),
}
_NOTHING: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class RedactionConfig:
    """The five redactor settings (docs/event-model.md, redaction). Field defaults are the redactor defaults."""

    enabled: bool = False
    patterns: Any = "default"
    replacement: str = "[REDACTED]"
    deep_scan: bool = True
    scan_metadata: bool = False

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any], *, enabled_default: bool = False) -> "RedactionConfig":
        """Keys ``enabled, patterns, replacement, deep_scan, scan_metadata``; omitted keys take the
        redactor defaults (not the global config — reference behaviour)."""
        return cls(
            enabled=bool(d.get("enabled", enabled_default)),
            patterns=d.get("patterns", "default"),
            replacement=d.get("replacement", "[REDACTED]"),
            deep_scan=bool(d.get("deep_scan", True)),
            scan_metadata=bool(d.get("scan_metadata", False)),
        )

    @classmethod
    def from_config(cls) -> "RedactionConfig":
        """The ``redaction_*`` keys of ``asm_nb.config`` in the current context."""
        values = _config_values()
        if values is _DEFAULT_VALUES:
            return _DEFAULT_CFG
        if not values[0]:
            return _DISABLED
        try:
            cfg = _resolved.get(values)
        except TypeError:  # unhashable pattern list: build it every time
            return cls(True, values[1], values[2], bool(values[3]), bool(values[4]))
        if cfg is None:
            cfg = cls(True, values[1], values[2], bool(values[3]), bool(values[4]))
            if len(_resolved) >= _CACHE_MAX:
                _resolved.clear()
            _resolved[values] = cfg
        return cfg


_DISABLED = RedactionConfig(enabled=False)
_CONFIG_KEYS = ("redaction_enabled", "redaction_patterns", "redaction_replacement", "redaction_deep_scan",
                "redaction_scan_metadata")
_resolved: dict[tuple, RedactionConfig] = {}  # config values -> config (saves re-building it per event)
_CACHE_MAX = 128


def _config_probe() -> Any:
    """A function returning ``_DEFAULT_VALUES`` when no ``redaction_*`` key is set anywhere (no
    context override, global setting or ``ASM_REDACTION_*`` variable), else
    ``config.get_many`` of the five keys.

    The pipeline reads the configuration per event; this answers the common case with a few
    ``in`` checks instead of resolving each key (a fifth of the cost). It relies on how
    ``asm_nb.config`` keeps its settings (a context variable holding a dict that is replaced,
    never mutated, on change; a ``_global`` dict; ``os.environ``); if that is not what it finds,
    it always resolves through ``get_many``.
    """
    import os

    get_many = _config.get_many
    overrides = getattr(_config, "_overrides", None)
    settings = getattr(_config, "_global", None)
    encode = getattr(os.environ, "encodekey", None)
    if overrides is None or not (hasattr(overrides, "get") and type(settings) is dict and callable(encode)):
        return lambda: get_many(*_CONFIG_KEYS)  # pragma: no cover
    ov_get = overrides.get
    k0, k1, k2, k3, k4 = _CONFIG_KEYS
    e0, e1, e2, e3, e4 = (encode("ASM_" + k.upper()) for k in _CONFIG_KEYS)

    def values() -> tuple:
        ov = ov_get()
        env = getattr(os.environ, "_data", None)  # looked up each time: os.environ may be replaced
        if (ov and (k0 in ov or k1 in ov or k2 in ov or k3 in ov or k4 in ov)) \
                or (settings and (k0 in settings or k1 in settings or k2 in settings or k3 in settings
                                  or k4 in settings)) \
                or type(env) is not dict or e0 in env or e1 in env or e2 in env or e3 in env or e4 in env:
            return get_many(*_CONFIG_KEYS)
        return _DEFAULT_VALUES

    return values


_DEFAULT_VALUES: tuple = tuple(_config.DEFAULTS[k] for k in _CONFIG_KEYS)
_DEFAULT_CFG = (RedactionConfig(True, _DEFAULT_VALUES[1], _DEFAULT_VALUES[2], bool(_DEFAULT_VALUES[3]),
                                bool(_DEFAULT_VALUES[4])) if _DEFAULT_VALUES[0] else _DISABLED)
_config_values = _config_probe()


def resolve_config(cfg: Any = None, *, enabled_default: bool = False) -> RedactionConfig:
    """``None`` → the global config; a dict → as given (``enabled`` defaults to ``enabled_default``:
    False for direct calls, True for a pipeline context override); a ``RedactionConfig`` as is."""
    if cfg is None:
        return RedactionConfig.from_config()
    if isinstance(cfg, RedactionConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return RedactionConfig.from_mapping(cfg, enabled_default=enabled_default)
    raise TypeError(f"redaction config must be a dict, RedactionConfig or None, got: {cfg!r}")


# ---------------------------------------------------------------------------------------------
# Compiled redactor


def _min_width(pat: re.Pattern) -> int:
    try:
        return int(re._parser.parse(pat.pattern, pat.flags).getwidth()[0])  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an unknown width only disables the length shortcut
        return 0


def _compile_entry(entry: Any) -> tuple[str, re.Pattern] | None:
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
        category, pat = entry
    else:
        category, pat = "custom", entry
    if isinstance(pat, re.Pattern):
        return (category, pat) if isinstance(pat.pattern, str) else None
    if isinstance(pat, str):
        try:
            return category, re.compile(pat, re.ASCII)
        except re.error:
            return None
    return None


def _pattern_list(patterns: Any) -> list[tuple[str, re.Pattern]]:
    replace: Any = None
    if isinstance(patterns, Mapping) and "replace" in patterns:
        replace = patterns["replace"]
    elif isinstance(patterns, tuple) and len(patterns) == 2 and patterns[0] == "replace":
        replace = patterns[1]
    if replace is not None:
        entries = replace if isinstance(replace, (list, tuple)) else []
        return [c for c in map(_compile_entry, entries) if c is not None]
    if isinstance(patterns, list):
        return list(_DEFAULT_COMPILED) + [c for c in map(_compile_entry, patterns) if c is not None]
    return list(_DEFAULT_COMPILED)


_GUARD_CHARS = ("_", "-", ":", "=")


class _Compiled:
    """Patterns with their replacement strings and gates, ready to scan strings.

    Triggers are grouped under guards so ordinary prose costs a few ``in`` checks: a trigger
    that contains ``_``, ``-``, ``:`` or ``=`` is only looked for when that character occurs,
    and one whose patterns all need one of the same ``any_of`` literals only when one occurs.
    """

    __slots__ = ("rules", "groups", "always", "min_len", "key_repl", "_candidates")

    def __init__(self, patterns: Any, replacement: Any) -> None:
        categorized = replacement == "categorized"
        plain = replacement if isinstance(replacement, str) else "[REDACTED]"
        rules = []
        trigger_bits: dict[str, int] = {}
        trigger_any: dict[str, set[tuple[str, ...]]] = {}
        always = 0
        for i, (category, pat) in enumerate(_pattern_list(patterns)):
            repl = f"[REDACTED:{category}]" if categorized else plain
            gate = _GATES.get((pat.pattern, pat.flags))
            # re.sub would expand backslash escapes in a template; the replacement is literal.
            rules.append((pat, repl.replace("\\", "\\\\"), gate[1] if gate else (), gate[2] if gate else (),
                          _min_width(pat), _PRE_BY_PATTERN.get((pat.pattern, pat.flags))))
            if gate is None or not gate[0]:  # no literal: run on every string long enough
                always |= 1 << i
            else:
                for kw in gate[0]:
                    trigger_bits[kw] = trigger_bits.get(kw, 0) | (1 << i)
                    trigger_any.setdefault(kw, set()).add(gate[2])
        groups: dict[tuple[str, ...], list[tuple[str, int]]] = {}
        for kw, mask in trigger_bits.items():
            own = next((c for c in _GUARD_CHARS if c in kw), None)
            anys = trigger_any[kw]
            if own in (":", "="):
                guard: tuple[str, ...] = (":", "=")
            elif own is not None:
                guard = (own,)
            elif len(anys) == 1 and () not in anys:
                guard = next(iter(anys))
            else:
                guard = ()
            groups.setdefault(guard, []).append((kw, mask))
        self.key_repl = "[REDACTED:secret_field]" if categorized else plain
        self.groups = tuple((g, tuple(items)) for g, items in groups.items())
        self.rules = tuple(rules)
        self.always = always
        self.min_len = min((r[4] for r in rules), default=0)
        self._candidates = _unrolled_candidates(self.groups, always)

    def _candidates_loop(self, low: str) -> int:
        """The rule bits whose gates ``low`` passes (the reference form of ``_candidates``)."""
        bits = self.always
        for guard, triggers in self.groups:
            if guard:
                for g in guard:
                    if g in low:
                        break
                else:
                    continue
            for kw, mask in triggers:
                if kw in low:
                    bits |= mask
        return bits

    def scan(self, s: str) -> tuple[str, int]:
        """``(new string, number of matches)``; ``s`` itself when nothing matched."""
        if len(s) < self.min_len or not self.rules:
            return s, 0
        low = _ascii_lower(s)
        bits = self._candidates(low)
        if not bits:
            return s, 0
        count = 0
        n_chars = len(s)
        rules = self.rules
        i = -1
        raw: bytes | None = None  # ``s`` UTF-8 encoded, for the prechecks
        while True:  # the set bits of ``bits`` above ``i``, in order (62 rules, a few candidates)
            rest = bits >> (i + 1)
            if not rest:
                break
            i += (rest & -rest).bit_length()
            pat, repl, all_of, any_of, min_width, pre = rules[i]
            if n_chars < min_width:
                continue
            if pre is not None:
                if raw is None:
                    raw = s.encode("utf-8", "surrogatepass")
                if pre[1] not in raw.translate(pre[0]):
                    continue
            gated_out = False
            for k in all_of:
                if k not in low:
                    gated_out = True
                    break
            if gated_out:
                continue
            if any_of:
                for k in any_of:
                    if k in low:
                        break
                else:
                    continue
            new, n = pat.subn(repl, s)
            if n:
                count += n
                s = new
                # a replacement can remove or (with a custom replacement) add gate literals
                low = _ascii_lower(s)
                bits = self._candidates(low)
                n_chars = len(s)
                raw = None
        return s, count


# Characters from common to rare in prompts, prose and code (an unknown character counts as
# rarest). Only speed depends on this order, never a result.
_CHAR_RANK = {c: i for i, c in enumerate(" etaoinsrhldcum.fpgwyb/_-vk01:=23456789xjqz~+")}


def _rarest_char(kw: str, known: tuple[str, ...]) -> str:
    """The character of ``kw`` least likely to occur in text (not one of ``known``, which the
    group guard already found)."""
    chars = [c for c in kw if c not in known] or list(kw)
    return max(chars, key=lambda c: _CHAR_RANK.get(c, len(_CHAR_RANK)))


def _unrolled_candidates(groups: tuple, always: int) -> Any:
    """``_candidates_loop`` as straight-line code (one ``in`` test per line, no loop or tuple
    unpacking: about twice as fast on the every-string path). Literals are embedded with
    ``repr``; the masks are ints.

    Within a group, triggers are nested under their rarest character, and each is searched only
    after its next two rarest characters are found: a trigger occurs only if each of its
    characters does, and a one-character ``in`` is a ``memchr`` (~0.04 µs on 1 KB) where a
    failing multi-character search costs 0.5-1.5 µs, so ordinary text skips most triggers for
    the price of a few character checks (the result is the loop's, tested)."""
    lines = ["def candidates(low):", f"    bits = {always!r}"]
    for guard, triggers in groups:
        indent = "    "
        if guard:
            lines.append("    if " + " or ".join(f"{g!r} in low" for g in guard) + ":")
            indent = "        "
        by_char: dict[str, list[tuple[str, int]]] = {}
        for kw, mask in triggers:
            by_char.setdefault(_rarest_char(kw, guard), []).append((kw, mask))
        for ch, items in by_char.items():
            lines.append(f"{indent}if {ch!r} in low:")
            for kw, mask in items:
                others = sorted({c for c in kw if c != ch and c not in guard},
                                key=lambda c: -_CHAR_RANK.get(c, len(_CHAR_RANK)))[:2]
                cond = " and ".join([f"{c!r} in low" for c in others] + [f"{kw!r} in low"])
                lines.append(f"{indent}    if {cond}:")
                lines.append(f"{indent}        bits |= {mask!r}")
        if guard and not triggers:  # pragma: no cover - groups always hold triggers
            lines.append(f"{indent}pass")
    lines.append("    return bits")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<redaction candidates>", "exec"), namespace)  # noqa: S102
    return namespace["candidates"]


_cache: dict[Any, _Compiled] = {}
_cache_lock = threading.Lock()


def _freeze(value: Any) -> Any:
    if type(value) is str:
        return value
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    hash(value)
    return value


def _compiled(cfg: RedactionConfig) -> _Compiled:
    global _default_compiled
    if cfg is _DEFAULT_CFG:
        c = _default_compiled
        if c is not None:
            return c
    patterns, replacement = cfg.patterns, cfg.replacement
    if type(patterns) is str and type(replacement) is str:  # the common case: no freezing needed
        c = _cache.get((patterns, replacement))
        if c is not None:
            return c
    try:
        key = (_freeze(patterns), replacement)
    except TypeError:  # unhashable pattern entries: compile without caching
        return _Compiled(cfg.patterns, cfg.replacement)
    c = _cache.get(key)
    if c is None:
        c = _Compiled(cfg.patterns, cfg.replacement)
        with _cache_lock:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[key] = c
    if cfg is _DEFAULT_CFG:
        _default_compiled = c
    return c


_default_compiled: _Compiled | None = None  # the compiled form of ``_DEFAULT_CFG``, once used


# ---------------------------------------------------------------------------------------------
# Walk


_INERT = frozenset({int, float, bool, type(None), bytes, bytearray})

# A string stored under a key that names a secret (``{"password": ...}``, an ``env`` dict's
# ``GITHUB_TOKEN``, an ``Authorization`` header) is replaced whole, whatever it looks like.
_SECRET_KEY = re.compile(r"(?i)(?:[a-z0-9]+[_.-])*(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey"
                         r"|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|credentials?"
                         r"|authorization|auth|cookie)")
_secret_keys: dict[Any, bool] = {}


def _is_secret_key(k: Any) -> bool:
    hit = _secret_keys.get(k)
    if hit is None:
        hit = type(k) is str and _SECRET_KEY.fullmatch(k) is not None
        if len(_secret_keys) < 4096:
            _secret_keys[k] = hit
    return hit


class _Walker:
    """One walk (docs/event-model.md, redaction). Plain strings are handled inline in the loops: a typical event
    is a handful of short strings, and a method call per value would cost as much as the scan."""

    __slots__ = ("scan", "min_len", "count")

    def __init__(self, compiled: _Compiled) -> None:
        self.scan = compiled.scan
        self.min_len = compiled.min_len
        self.count = 0

    def value(self, v: Any, depth: int) -> Any:
        """Redact one active value that sits at ``depth``; returns ``v`` itself when unchanged."""
        t = type(v)
        if t is str or (isinstance(v, str) and not isinstance(v, Enum)):
            if len(v) < self.min_len:
                return v
            new, n = self.scan(v)
            if n:
                self.count += n
                return new
            return v
        if t in _INERT:
            return v
        if isinstance(v, dict):
            return self.mapping(v, depth)
        if isinstance(v, (list, tuple)):
            if depth > MAX_DEPTH:
                self.count += 1
                return TOO_DEEP
            items = None
            for i, item in enumerate(v):
                new = self.value(item, depth + 1)
                if new is not item and new != item:
                    if items is None:
                        items = list(v)
                    items[i] = new
            if items is None:
                return v
            return tuple(items) if isinstance(v, tuple) else items
        return v

    def mapping(self, m: dict, depth: int) -> dict:
        if depth > MAX_DEPTH:
            self.count += 1
            return TOO_DEEP  # type: ignore[return-value]
        out = None
        min_len = self.min_len
        last_in: Any = None
        last_out: tuple[str, int] = ("", 0)
        for k, v in m.items():
            t = type(v)
            if t is str:
                if v and _is_secret_key(k):
                    new = self.scan.__self__.key_repl  # type: ignore[attr-defined]
                    if v == new:
                        continue
                    self.count += 1
                else:
                    if len(v) < min_len:
                        continue
                    if v is last_in:  # adapters often put the same text under two keys (delta, content)
                        new, n = last_out
                    else:
                        new, n = last_out = self.scan(v)
                        last_in = v
                    if not n:
                        continue
                    self.count += n
            elif t in _INERT:
                continue
            else:
                new = self.value(v, depth + 1)
                if new is v:
                    continue
            if new != v:
                if out is None:
                    out = dict(m)
                out[k] = new
        return m if out is None else out

    def top(self, m: Mapping, allowed: frozenset[str] | None, changed: list[str]) -> Any:
        """Depth 0: ``allowed`` None = every key (deep scan), else only those top-level keys."""
        out, n = _walk_top(self.scan, self.min_len, m, allowed, changed, self)
        self.count += n
        return out


def _walk_top(scan: Any, min_len: int, m: Mapping, allowed: frozenset[str] | None, changed: list[str],
              walker: _Walker | None) -> tuple[Any, int]:
    """``_Walker.top`` as a function: ``(mapping, matches)``. Plain top-level strings (the usual
    payload) need no walker object; one is made for the first nested value when ``walker`` is None.
    Matches counted by ``walker`` itself are not included in the returned number."""
    out = None
    count = 0
    own = None
    last_in: Any = None
    last_out: tuple[str, int] = ("", 0)
    for k, v in m.items():
        if allowed is not None and k not in allowed:
            continue
        t = type(v)
        if t is str:
            if v and _is_secret_key(k):
                new = scan.__self__.key_repl
                if v == new:
                    continue
                count += 1
            else:
                if len(v) < min_len:
                    continue
                if v is last_in:  # adapters often put the same text under two keys (delta, content)
                    new, n = last_out
                else:
                    new, n = last_out = scan(v)
                    last_in = v
                if not n:
                    continue
                count += n
        elif t in _INERT:
            continue
        else:
            if walker is None:
                walker = own = _Walker.__new__(_Walker)
                walker.scan, walker.min_len, walker.count = scan, min_len, 0
            new = walker.value(v, 1)
            if new is v:
                continue
        if new != v:
            if out is None:
                out = dict(m)
            out[k] = new
            if k not in changed:
                changed.append(k)
    if own is not None:
        count += own.count
    return (m if out is None else out), count


# ---------------------------------------------------------------------------------------------
# API


@dataclass(frozen=True)
class RedactionResult:
    """``event`` (a copy when anything changed), ``redaction_count`` (matches in data + metadata)
    and ``fields_redacted`` (changed top-level keys of data, then metadata, first-change order)."""

    event: Event
    redaction_count: int = 0
    fields_redacted: list[str] = field(default_factory=list)


def redact_payload(etype: EventType, data: Any, metadata: Any,
                   cfg: RedactionConfig) -> tuple[Any, Any, int, list[str]]:
    """Redact an event's ``data`` and ``metadata`` for ``etype`` under an enabled ``cfg``:
    ``(data, metadata, count, fields_redacted)``; unchanged inputs come back as the same objects."""
    if not cfg.enabled or etype in SKIP_TYPES:
        return data, metadata, 0, []
    allowed = None if cfg.deep_scan else TARGETED_FIELDS.get(etype, _NOTHING)
    compiled = _compiled(cfg)
    changed: list[str] = []
    count = 0
    if (type(data) is dict or isinstance(data, Mapping)) and (allowed is None or allowed):
        data, count = _walk_top(compiled.scan, compiled.min_len, data, allowed, changed, None)
    if cfg.scan_metadata and (type(metadata) is dict or isinstance(metadata, Mapping)):
        metadata, n = _walk_top(compiled.scan, compiled.min_len, metadata, None, changed, None)
        count += n
    return data, metadata, count, changed


EVENT_REDACTED = telemetry.TELEMETRY_PREFIX + ("persistence", "event_redacted")


def emit_redacted(session_id: Any, run_id: Any, etype: EventType, count: int, fields: list[str]) -> None:
    """Telemetry ``persistence.event_redacted`` ``{redaction_count}`` / ``{session_id, run_id,
    type, fields_redacted}``; nothing when ``count`` is 0 or telemetry is off."""
    if count and telemetry.has_handlers(EVENT_REDACTED) and telemetry.enabled():
        telemetry.execute(EVENT_REDACTED, {"redaction_count": count},
                          {"session_id": session_id, "run_id": run_id, "type": etype, "fields_redacted": fields})


def redact(event: Event, config: Any = None) -> RedactionResult:
    """Redact one event. ``config``: None → the global config (``redaction_*`` keys); a dict →
    used as given with ``enabled`` defaulting to **False** (reference: an empty config disables).

    >>> from asm_nb.core.events import Event
    >>> ev = Event.new("message_received", "ses_1", data={"content": "password=hunter2"})
    >>> r = redact(ev, {"enabled": True})
    >>> r.event.data["content"], r.redaction_count, r.fields_redacted
    ('[REDACTED]', 1, ['content'])
    """
    cfg = resolve_config(config, enabled_default=False)
    data, metadata, count, changed = redact_payload(event.type, event.data, event.metadata, cfg)
    emit_redacted(event.session_id, event.run_id, event.type, count, changed)
    if data is event.data and metadata is event.metadata:
        return RedactionResult(event, count, changed)
    return RedactionResult(event.replace(data=data, metadata=metadata), count, changed)


def redact_map(d: Any, config: Any = None) -> Any:
    """Redact every string in a plain mapping (deep, all keys); returns the mapping (a copy when
    anything changed). Disabled → ``d`` unchanged. Used by display paths before showing events.

    >>> redact_map({"headers": {"Authorization": "Bearer " + "a" * 24}}, {"enabled": True})
    {'headers': {'Authorization': '[REDACTED]'}}
    """
    cfg = resolve_config(config, enabled_default=False)
    if not cfg.enabled or not isinstance(d, Mapping):
        return d
    return _Walker(_compiled(cfg)).top(d, None, [])


def scan_text(text: str, config: Any = None) -> tuple[str, int]:
    """Redact one string: ``(new text, number of matches)`` (disabled → unchanged, 0)."""
    cfg = resolve_config(config, enabled_default=False)
    if not cfg.enabled or not isinstance(text, str):
        return text, 0
    return _compiled(cfg).scan(text)
