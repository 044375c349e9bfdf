"""The redactor's default rules: 86 ``(category, pattern, gate)`` entries (specific provider
formats first, then labelled generic forms; docs/event-model.md lists which gitleaks,
trufflehog or detect-secrets rule each follows), the literal gates every match of a rule
contains, and the character-run prechecks of the two rules whose gate does not narrow them.

Split out of ``persistence/redaction.py``, which re-exports ``DEFAULT_PATTERN_SPECS``,
``default_patterns`` and the tables the tests check (``_GATES``, ``_PRECHECKS``).
"""

from __future__ import annotations

import re

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


def default_patterns() -> list[tuple[str, re.Pattern]]:
    """The default ``(category, compiled pattern)`` pairs, in application order."""
    return list(_DEFAULT_COMPILED)
