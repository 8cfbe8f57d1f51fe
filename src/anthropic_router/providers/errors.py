"""Upstream HTTP failures -> the Anthropic error tree, in one place for every provider."""

from __future__ import annotations

import re
from typing import Any

import orjson

from anthropic_router.errors import ApiError

_CONTEXT_HINTS = (
    "context length", "context_length", "maximum context", "context window",
    "prompt is too long", "too many tokens", "input is too long", "reduce the length",
)  # fmt: skip
_NUMBERS = re.compile(r"\d[\d,]*")

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def stream_timeout(request_deadline: bool) -> ApiError:
    """A stream read that outlasted its bound: the whole request's, or the idle one."""
    if request_deadline:
        return ApiError("timeout_error", "the stream exceeded REQUEST_TIMEOUT")
    return ApiError("timeout_error", "upstream stream went silent (STREAM_IDLE_TIMEOUT)")


def error_from_response(status: int, body: bytes, headers: Any) -> ApiError:
    """Map an upstream error response. Messages are the upstream's, prefixed for clarity;
    the upstream's key or URL never appears in them."""
    message, code = _message_and_code(body)
    if status in (400, 413, 422) and _is_context_overflow(message, code):
        return ApiError("invalid_request_error", _prompt_too_long(message))
    error_type = _TYPE_BY_STATUS.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    if status == 409:
        # Anthropic has no 409; an upstream conflict is transient, and a 5xx `api_error` is
        # what every Anthropic client retries (the SDKs retry 409 and >= 500 alike).
        error_type = "api_error"
    client_status = {408: 504, 422: 400, 503: 529}.get(status, status)
    if error_type == "api_error":
        client_status = 500 if status in (500, 501) else 502
    return ApiError(
        error_type,
        f"upstream returned {status}: {message}",
        status=client_status,
        retry_after=headers.get("retry-after") if headers is not None else None,
        retryable=status in RETRYABLE_STATUSES,
    )


def _message_and_code(body: bytes) -> tuple[str, str]:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            metadata = error.get("metadata") or {}
            code = str(metadata.get("error_type") or error.get("code") or error.get("type") or "")
            raw = metadata.get("raw")
            message = str(error.get("message") or "")
            if isinstance(raw, str) and raw and raw not in message:
                message = f"{message} ({raw[:500]})"
            return message or "no message", code
        if isinstance(error, str):
            return error, ""
        if "message" in data:  # Databricks: {"error_code": ..., "message": ...}
            return str(data["message"]), str(data.get("error_code", ""))
    text = body[:300].decode("utf-8", "replace").strip()
    if text.startswith("<"):
        return "the upstream answered with an HTML page instead of JSON", ""
    return text or "empty response body", ""


def _is_context_overflow(message: str, code: str) -> bool:
    if "context_length" in code:
        return True
    lowered = message.lower()
    return any(hint in lowered for hint in _CONTEXT_HINTS)


def _prompt_too_long(message: str) -> str:
    """Claude Code recognises `prompt is too long: N tokens > M maximum` and compacts."""
    numbers = [int(n.replace(",", "")) for n in _NUMBERS.findall(message)]
    numbers = [n for n in numbers if n >= 100]
    if len(numbers) >= 2:
        limit, actual = min(numbers[:2]), max(numbers[:2])
        return f"prompt is too long: {actual} tokens > {limit} maximum ({message})"
    return f"prompt is too long: {message}"
