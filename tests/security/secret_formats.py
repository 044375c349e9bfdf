"""Real-world secret formats for the redaction tests: (name, text as it leaks, the secret part).

Shapes follow the rule sets of gitleaks (config/gitleaks.toml), trufflehog detectors and
detect-secrets plugins. Values are generated (deterministic, fake) in each format's alphabet and
length; ``text`` puts the secret where people leak it (a header, an env line, JSON, a log line).
"""

from __future__ import annotations

import random
import string

_rng = random.Random(18)
_A = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"
_UP = string.ascii_uppercase + string.digits


def r(n: int, alphabet: str = _A) -> str:
    """``n`` random characters; alphanumeric results always hold an upper, a lower and a digit."""
    while True:
        s = "".join(_rng.choice(alphabet) for _ in range(n))
        if alphabet is not _A or (any(c.isupper() for c in s) and any(c.islower() for c in s)
                                  and any(c.isdigit() for c in s)):
            return s


_oa = r(58, _A + "_-") + "T3BlbkFJ" + r(58, _A + "_-")
_pem_body = "\n".join(r(64, _A + "+/") for _ in range(5))
_ssh_body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" + "\n".join(
    r(70, _A + "+/") for _ in range(3))
_jwt = "eyJhbGciOiJIUzI1NiJ9." + r(40, _A + "_-") + "." + r(43, _A + "_-")
_aws_secret = r(20) + "/" + r(9) + "+" + r(9)

FORMATS: list[tuple[str, str, str]] = [
    ("openai_project_key", f"OPENAI_KEY is sk-proj-{_oa} ok", f"{_oa}"),
    ("openai_service_account", f"key sk-svcacct-{(s := r(58, _A + '_-') + 'T3BlbkFJ' + r(58, _A + '_-'))}", s),
    ("openai_legacy", "sk-" + (s := r(20) + "T3BlbkFJ" + r(20)), s),
    ("anthropic_api_key", f"x-api-key: sk-ant-api03-{(s := r(93, _A + '_-'))}AA", s),
    ("anthropic_admin_key", f"sk-ant-admin01-{(s := r(93, _A + '_-'))}AA", s),
    ("aws_access_key_id", f"AKIA{(s := r(16, _UP))}", s),
    ("aws_sts_key_id", f"ASIA{(s := r(16, _UP))}", s),
    ("aws_secret_labelled", f"aws_secret_access_key = {_aws_secret}", _aws_secret),
    ("aws_secret_bare", f"secret is {(s := r(40, _A + '/+'))} (copy it)", s),
    ("github_pat_classic", f"ghp_{(s := r(36))}", s),
    ("github_oauth", f"gho_{(s := r(36))}", s),
    ("github_user_to_server", f"ghu_{(s := r(36))}", s),
    ("github_server_to_server", f"token ghs_{(s := r(36))}", s),
    ("github_refresh", f"ghr_{(s := r(36))}", s),
    ("github_fine_grained", f"github_pat_{(s := r(22) + '_' + r(59))}", s),
    ("gitlab_pat", f"glpat-{(s := r(20, _A + '_-'))}", s),
    ("gitlab_deploy_token", f"gldt-{(s := r(20))}", s),
    ("gitlab_runner_token", f"glrt-{(s := r(20))}", s),
    ("slack_bot_token", f"xoxb-{(s := '1234567890123-1234567890123-' + r(24))}", s),
    ("slack_user_token", f"xoxp-{(s := '1234567890-1234567890-1234567890-' + r(32, _HEX))}", s),
    ("slack_app_token", f"xapp-1-{(s := 'A0123456789-1234567890123-' + r(64, _HEX))}", s),
    ("slack_webhook", f"POST https://hooks.slack.com/services/{(s := 'T0000AAAA/B0000BBBB/' + r(24))}", s),
    ("stripe_live_secret", f"sk_live_{(s := r(24))}", s),
    ("stripe_restricted", f"rk_live_{(s := r(24))}", s),
    ("stripe_webhook_secret", f"whsec_{(s := r(32))}", s),
    ("npm_token", f"//registry.npmjs.org/:_authToken=npm_{(s := r(36))}", s),
    ("pypi_token", f"password = pypi-AgEIcHlwaS5vcmc{(s := r(70, _A + '_-'))}", s),
    ("huggingface_token", f"HF_TOKEN hf_{(s := r(34, string.ascii_letters))}", s),
    ("huggingface_org_token", f"api_org_{(s := r(34, string.ascii_letters))}", s),
    ("google_api_key", f"AIza{(s := r(35, _A + '_-'))}", s),
    ("google_oauth_client_secret", f"GOCSPX-{(s := r(28, _A + '_-'))}", s),
    ("google_oauth_access_token", f"ya29.{(s := r(60, _A + '_-'))}", s),
    ("azure_ad_client_secret", f"client secret: {(s := 'abc8Q~' + r(34))}", s),
    ("azure_storage_account_key", f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={(s := r(86, _A + '+/'))}==", s),
    ("azure_sas_token", f"https://x.blob.core.windows.net/c?sv=2022-11-02&sig={(s := r(43, _A + '%'))}", s),
    ("twilio_api_key", f"SK{(s := r(32, _HEX))}", s),
    ("sendgrid_key", f"SG.{(s := r(22, _A + '_-') + '.' + r(43, _A + '_-'))}", s),
    ("mailgun_key", f"key-{(s := r(32, _HEX))}", s),
    ("mailchimp_key", f"{(s := r(32, _HEX))}-us14", s),
    ("digitalocean_pat", f"dop_v1_{(s := r(64, _HEX))}", s),
    ("shopify_token", f"shpat_{(s := r(32, _HEX))}", s),
    ("databricks_token", f"dapi{(s := r(32, _HEX))}", s),
    ("vault_token", f"VAULT hvs.{(s := r(95, _A + '_-'))}", s),
    ("pulumi_token", f"pul-{(s := r(40, _HEX))}", s),
    ("doppler_token", f"dp.pt.{(s := r(43))}", s),
    ("linear_key", f"lin_api_{(s := r(40))}", s),
    ("postman_key", f"PMAK-{(s := r(24, _HEX) + '-' + r(34, _HEX))}", s),
    ("age_secret_key", f"AGE-SECRET-KEY-1{(s := r(58, _UP))}", s),
    ("telegram_bot_token", f"bot {(s := '123456789:AA' + r(33, _A + '_-'))}", s),
    ("square_token", f"sq0atp-{(s := r(22, _A + '_-'))}", s),
    ("perplexity_key", f"pplx-{(s := r(48))}", s),
    ("groq_key", f"gsk_{(s := r(52))}", s),
    ("sentry_user_token", f"sntryu_{(s := r(64, _HEX))}", s),
    ("newrelic_user_key", f"NRAK-{(s := r(27, _UP))}", s),
    ("grafana_service_account", f"glsa_{(s := r(32) + '_' + r(8, _HEX))}", s),
    # ATATT3 + ~180 characters + "=" + an 8-character checksum (trufflehog jiratoken v2, gitleaks)
    ("atlassian_api_token", f"ATATT3xFfGF0{(s := r(170, _A + '_-'))}={r(8)}", s),
    ("atlassian_admin_key", f"ATCTT3xFfGN0{(s := r(170, _A + '_-'))}={r(8)}", s),
    ("discord_webhook", f"https://discord.com/api/webhooks/123456789012345678/{(s := r(68, _A + '_-'))}", s),
    ("replicate_token", f"REPLICATE_API_TOKEN r8_{(s := r(18) + '-' + r(10) + '_' + r(7))}", s),
    ("xai_key", f"xai-{(s := r(40) + '_' + r(39))}", s),
    ("openai_service_key_old", f"sk-service-{(s := r(58, _A + '_-') + 'T3BlbkFJ' + r(58, _A + '_-'))}", s),
    ("openrouter_key", f"OPENROUTER_API_KEY sk-or-v1-{(s := r(64, _HEX))}", s),
    ("langfuse_secret_key", f"sk-lf-{(s := r(8, _HEX) + '-' + r(4, _HEX) + '-' + r(4, _HEX) + '-' + r(4, _HEX) + '-' + r(12, _HEX))}", s),
    ("nvidia_nim_key", f"nvapi-{(s := r(64, _A + '_-'))}", s),
    ("pinecone_key", f"pcsk_{(s := r(6) + '_' + r(63))}", s),
    ("langsmith_key", f"LANGSMITH_API_KEY lsv2_pt_{(s := r(32, _HEX) + '_' + r(10, _HEX))}", s),
    ("elevenlabs_key", f"xi-api-key sk_{(s := r(48, _HEX))}", s),
    ("aws_bedrock_long_term_key", f"AWS_BEARER_TOKEN_BEDROCK ABSK{(s := r(132, _A + '+/'))}", s),
    ("aws_bedrock_short_term_key",
     f"bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t{(s := '/?Action=CallWithBearerToken&X-Amz-Signature=' + r(64, _HEX))}", s),
    ("alibaba_access_key_id", f"LTAI{(s := r(20))}", s),
    ("dockerhub_pat", f"docker login -p dckr_pat_{(s := r(27, _A + '_-'))}", s),
    ("rubygems_key", f"rubygems_{(s := r(48, _HEX))}", s),
    ("pypi_test_token", f"pypi-AgENdGVzdC5weXBpLm9yZw{(s := r(70, _A + '_-'))}", s),
    ("brevo_key", f"xkeysib-{(s := r(64, _HEX) + '-' + r(16))}", s),
    ("notion_token", f"ntn_{(s := r(11, '0123456789') + r(35))}", s),
    ("terraform_cloud_token", f"{(s := r(14) + '.atlasv1.' + r(67, _A + '_-'))}", s),
    ("heroku_key_v2", f"HRKU-AA{(s := r(58, _A + '_-'))}", s),
    ("flyio_token", f"FLY_API_TOKEN=fm2_{(s := r(120, _A + '+/'))}", s),
    ("planetscale_password", f"pscale_pw_{(s := r(43, _A + '_'))}", s),
    ("prefect_key", f"pnu_{(s := r(36))}", s),
    ("dynatrace_token", f"dt0c01.{(s := r(24, _UP) + '.' + r(64, _UP))}", s),
    ("sourcegraph_token", f"sgp_{(s := r(16, _HEX) + '_' + r(40, _HEX))}", s),
    ("onepassword_service_account", f"OP_SERVICE_ACCOUNT_TOKEN=ops_eyJ{(s := r(300, _A + '+/'))}", s),
    ("onepassword_secret_key", f"A3-{(s := r(6, _UP) + '-' + r(11, _UP) + '-' + r(5, _UP) + '-' + r(5, _UP) + '-' + r(5, _UP))}", s),
    ("artifactory_api_key", f"AKCp{(s := r(69))}", s),
    ("artifactory_reference_token", f"cmVmd{(s := r(59))}", s),
    ("square_access_token", f"EAAA{(s := r(60, _A + '_-'))}", s),
    ("facebook_page_token", f"EAAC{(s := r(120))}", s),
    ("discord_bot_token", f"Bot {(s := 'M' + r(25, _A + '_-') + '.' + r(6, _A + '_-') + '.' + r(27, _A + '_-'))}", s),
    ("grafana_api_key", f"eyJrIjoi{(s := r(72))}=", s),
    ("gitlab_runner_registration", f"GR1348941{(s := r(20, _A + '_-'))}", s),
    ("gitlab_session_cookie", f"Cookie: _gitlab_session={(s := r(32, _HEX))}", s),
    ("unsigned_jwt", f"token {(s := 'eyJhbGciOiJub25lIn0.' + 'eyJ' + r(40, _A + '_-'))}.", s),
    ("keyword_db_password", f"db_password: {(s := r(16))}", s),
    ("keyword_auth_key", f'"auth_key": "{(s := r(24))}"', s),
    ("keyword_creds", f"creds={(s := r(20))}", s),
    ("auth_token_kv", f"auth_token: {(s := r(28))}", s),
    ("jwt", f"token: {_jwt}", _jwt.split(".")[1]),
    ("bearer_header", f"Authorization: Bearer {(s := r(40, _A + '._-'))}", s),
    ("basic_auth_header", f"Authorization: Basic {(s := r(24, _A + '+/'))}=", s),
    ("rsa_private_key", f"-----BEGIN RSA PRIVATE KEY-----\n{_pem_body}\n-----END RSA PRIVATE KEY-----",
     _pem_body.splitlines()[2]),
    ("pkcs8_private_key", f"-----BEGIN PRIVATE KEY-----\n{_pem_body}\n-----END PRIVATE KEY-----",
     _pem_body.splitlines()[-1]),
    ("openssh_private_key", f"-----BEGIN OPENSSH PRIVATE KEY-----\n{_ssh_body}\n-----END OPENSSH PRIVATE KEY-----",
     _ssh_body.splitlines()[1]),
    ("truncated_private_key", f"cat id_ec\n-----BEGIN EC PRIVATE KEY-----\n{_pem_body[:150]}", _pem_body[70:130]),
    ("postgres_url", f"DATABASE_URL=postgres://app:{(s := r(16))}@db:5432/app", s),
    ("mongodb_srv_url", f"mongodb+srv://u:{(s := r(16))}@cluster0.x.mongodb.net/db", s),
    ("https_url_credentials", f"git clone https://bob:{(s := r(20))}@git.example.com/r.git", s),
    ("client_secret_kv", f"client_secret={(s := r(32))}", s),
    ("json_password", f'{{"user": "bob", "password": "{(s := r(12))}"}}', s),
    ("json_api_key", f'{{"api_key": "{(s := r(32))}"}}', s),
    ("yaml_secret_key", f"secret_key: {(s := r(24))}", s),
    ("env_token", f"export GITHUB_TOKEN={(s := r(24))}", s),
    ("env_password", f"DB_PASSWORD='{(s := r(14))}'", s),
    ("access_token_kv", f"access_token={(s := r(30))}&expires=3600", s),
    ("refresh_token_json", f'"refresh_token": "{(s := r(30))}"', s),
    ("x_api_key_header", f"X-Api-Key: {(s := r(32))}", s),
]

# Ordinary text that must come through unchanged (false positives).
BENIGN: list[str] = [
    "No Anthropic API key: set ANTHROPIC_API_KEY (or pass api_key=...). To try asm_nb use provider='replay'.",
    "set OPENAI_API_KEY=<your key> in the environment",
    "export TOKEN=$MY_TOKEN",
    "api_key = os.environ['ANTHROPIC_API_KEY']",
    "commit 3f2a9c1d4b5e6f708192a3b4c5d6e7f809a1b2c3 fixed the bug",
    "run_0123456789abcdef0123456789abcdef and ses_fedcba9876543210fedcba9876543210",
    "id 123e4567-e89b-12d3-a456-426614174000",
    "The basic configuration of the task passes; asking for a password prompt",
    "sk-abc is too short, ghp_short too, AKIA123 as well",
    "token usage: input_tokens=120 output_tokens=80",
    "PWD=/home/user/project",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "The quick brown fox jumps over the lazy dog 1234567890 times.",
    "cwd=/tmp/work max_turns=3 permission_mode=plan",
]
