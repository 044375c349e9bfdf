"""Claude error mapping: an exception raised by the ``anthropic`` SDK or its transport as
``(code, kind, message, details)`` for a normalized ``provider_error`` (docs/providers.md, Claude:
errors). HTTP status first (429 rate limit or spend limit, 401/403, 402, 408/504, 529, 5xx,
4xx), then the in-band error type of a mid-stream ``event: error``, then transport exception names.
Imports the SDK when called, not at import time.
"""

from __future__ import annotations

import json
from typing import Any, Mapping


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def _classify(exc: BaseException) -> tuple[str, str, str, dict[str, Any]]:
    """(code, kind, message, details) for an exception raised by the SDK or its transport."""
    import anthropic

    details: dict[str, Any] = {"exception": type(exc).__name__}
    if isinstance(exc, anthropic.APIStatusError):
        return _classify_status(exc, details)
    names = _names(exc)
    if isinstance(exc, anthropic.APITimeoutError) or "TimeoutException" in names or isinstance(exc, TimeoutError):
        return "provider_timeout", "timeout", f"Request to the Anthropic API timed out: {exc}".rstrip(": "), details
    if isinstance(exc, anthropic.APIConnectionError):
        return "provider_unavailable", "connection_error", f"Connection to the Anthropic API failed: {exc}", details
    if "RemoteProtocolError" in names or "ProtocolError" in names:
        return "provider_error", "protocol_error", f"Stream broken: {exc}", details
    if "TransportError" in names:
        return "provider_unavailable", "connection_error", f"Connection to the Anthropic API failed: {exc}", details
    if isinstance(exc, json.JSONDecodeError):
        return "provider_error", "parse_error", f"Invalid JSON in the event stream: {exc}", details
    if isinstance(exc, anthropic.AnthropicError):
        text = str(exc)
        if "auth" in text.lower() or "api_key" in text.lower() or "api key" in text.lower():
            return "provider_authentication_failed", "authentication", text, details
        return "provider_error", "unknown", text or type(exc).__name__, details
    if isinstance(exc, ValueError):  # e.g. the SDK's pydantic validation of an event
        return "provider_error", "parse_error", f"Could not read a stream event: {exc}", details
    return "provider_error", "unknown", f"{type(exc).__name__}: {exc}", details


def _classify_status(exc: Any, details: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """An ``APIStatusError``: by HTTP status, or by the error body's type for an in-band stream error."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    inner = body.get("error") if isinstance(body, Mapping) else None
    err: Mapping[str, Any] = inner if isinstance(inner, Mapping) else {}
    etype = err.get("type")
    given = err.get("message")
    message = given if isinstance(given, str) and given else str(exc)
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    retry_after = headers.get("retry-after-ms") and f"{headers.get('retry-after-ms')}ms" or headers.get("retry-after")
    raw_details = err.get("details")
    edetails: Mapping[str, Any] = raw_details if isinstance(raw_details, Mapping) else {}
    details.update({"status_code": status, "request_id": getattr(exc, "request_id", None) or headers.get("request-id"),
                    "error_type": etype, "retry_after": retry_after})
    if status == 200 or status is None:  # in-band `event: error` after the stream started
        details["mid_stream"] = True
        code, kind = _by_error_type(etype)
    elif status == 429:
        if edetails.get("error_code") == "enforced_spend_limit_reached" or "SpendLimit" in type(exc).__name__:
            code, kind = "provider_quota_exceeded", "quota"
        else:
            code, kind = "provider_rate_limited", "rate_limit"
    elif status in (401, 403):
        code, kind = "provider_authentication_failed", "authentication"
    elif status == 402:
        code, kind = "provider_quota_exceeded", "quota"
    elif status in (408, 504):
        code, kind = "provider_timeout", "timeout"
    elif status == 529:
        code, kind = "provider_unavailable", "overloaded"
    elif status >= 500:
        code, kind = "provider_unavailable", "server_error"
    elif status in (400, 404, 413, 422):
        code, kind = "provider_error", "invalid_request"
    else:
        code, kind = _by_error_type(etype)
    return code, kind, message, details


def _by_error_type(etype: Any) -> tuple[str, str]:
    return {
        "overloaded_error": ("provider_unavailable", "overloaded"),
        "api_error": ("provider_unavailable", "server_error"),
        "rate_limit_error": ("provider_rate_limited", "rate_limit"),
        "timeout_error": ("provider_timeout", "timeout"),
        "authentication_error": ("provider_authentication_failed", "authentication"),
        "permission_error": ("provider_authentication_failed", "authentication"),
        "billing_error": ("provider_quota_exceeded", "quota"),
        "invalid_request_error": ("provider_error", "invalid_request"),
        "not_found_error": ("provider_error", "invalid_request"),
        "request_too_large": ("provider_error", "invalid_request"),
    }.get(etype if isinstance(etype, str) else "", ("provider_error", "unknown"))
