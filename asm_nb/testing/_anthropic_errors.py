"""Recorded Anthropic API error responses (``HTTP_ERRORS``: status, headers and JSON body, the same
content as tests/fixtures/providers/anthropic/http_errors.json) and ``http_error`` that serves one,
or one built from a status / error type / message. Standard library only.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from ._anthropic_sse import JSONResponse


def _recorded_error(status: int, request_id: str, error_type: str, message: str, *, retry: bool,
                    retry_after: str | None = None, ratelimit: Mapping[str, str] | None = None,
                    details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One recorded API error response: ``{"status", "headers", "body"}``."""
    headers = {"content-type": "application/json", "request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    headers["x-should-retry"] = "true" if retry else "false"
    headers.update(ratelimit or {})
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        error["details"] = dict(details)
    return {"status": status, "headers": headers, "body": {"type": "error", "error": error, "request_id": request_id}}


# Recorded API error responses (same content as fixtures/providers/anthropic/http_errors.json).
# ``x-should-retry`` is explicit so SDK retry behaviour is deterministic.
HTTP_ERRORS: dict[str, dict[str, Any]] = {
    "overloaded_529": _recorded_error(529, "req_011Cf6ynFvWiA22xme6yzKBp", "overloaded_error", "Overloaded", retry=True),
    "rate_limit_429": _recorded_error(
        429, "req_011CEXZdzUJseJKDsHgK3dFB", "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
        "headers for current usage. Please reduce the prompt length or the maximum tokens requested, "
        "or try again later.", retry=True,
        retry_after="3",
        ratelimit={"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                   "anthropic-ratelimit-requests-reset": "2025-11-24T07:00:03Z",
                   "anthropic-ratelimit-output-tokens-limit": "8000",
                   "anthropic-ratelimit-output-tokens-remaining": "0",
                   "anthropic-ratelimit-output-tokens-reset": "2025-11-24T07:00:03Z"}),
    "invalid_request_400": _recorded_error(400, "req_011Cqnudn1KA83EmdJ7NWVed", "invalid_request_error",
                                           "messages.1.content.0.tool_use.id: Field required", retry=False),
    "authentication_401": _recorded_error(401, "req_011CNFYhhJVrnNRPYMyoAhIk", "authentication_error",
                                          "invalid x-api-key", retry=False),
    "not_found_404": _recorded_error(404, "req_011CUfULlbxVUEcfSPwD6MuU", "not_found_error",
                                     "model: claude-sonnet-9", retry=False),
    "request_too_large_413": _recorded_error(413, "req_011C9eDOBuYJ1mJSbctN61KW", "request_too_large",
                                             "Request exceeds the maximum allowed number of bytes.", retry=False),
    "api_error_500": _recorded_error(500, "req_011COyxFa8hiGou62VpMGi70", "api_error", "Internal server error",
                                     retry=True),
    "spend_limit_429": _recorded_error(
        429, "req_011CcJNCiAdgKQH7ozix6ETH", "rate_limit_error",
        "You have reached your specified API usage limits. You will regain access on 2025-12-01 at 00:00 UTC.",
        retry=False, details={"error_code": "enforced_spend_limit_reached"}),
}

_STATUS_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                       403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                       429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error"}


def http_error(name: str | None = None, *, status: int | None = None, error_type: str | None = None,
               message: str | None = None, headers: Mapping[str, str] | None = None,
               retry_after_ms: int | None = None, should_retry: bool | None = None) -> JSONResponse:
    """An API error response: a recorded one by ``name`` (keys of ``HTTP_ERRORS``), or built from
    ``status`` / ``error_type`` / ``message``. ``retry_after_ms`` sets ``retry-after-ms`` (and drops
    ``retry-after``) so SDK retries stay fast; ``should_retry`` sets ``x-should-retry``."""
    if name is not None:
        if name not in HTTP_ERRORS:
            raise KeyError(f"unknown recorded error {name!r}; known: {sorted(HTTP_ERRORS)}")
        tpl = copy.deepcopy(HTTP_ERRORS[name])
        st, hdrs, body = tpl["status"], tpl["headers"], tpl["body"]
        if error_type:
            body["error"]["type"] = error_type
        if message:
            body["error"]["message"] = message
    else:
        st = int(status or 500)
        rid = f"req_fake_{st}"
        hdrs = {"content-type": "application/json", "request-id": rid}
        body = {"type": "error", "error": {"type": error_type or _STATUS_ERROR_TYPES.get(st, "api_error"),
                                           "message": message or f"Fake error {st}"}, "request_id": rid}
    if retry_after_ms is not None:
        hdrs.pop("retry-after", None)
        hdrs["retry-after-ms"] = str(int(retry_after_ms))
    if should_retry is not None:
        hdrs["x-should-retry"] = "true" if should_retry else "false"
    hdrs.update(dict(headers or {}))
    return JSONResponse(body=body, status=st, headers=hdrs)
