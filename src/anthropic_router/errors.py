"""The error tree: one exception carrying the HTTP status and Anthropic `error.type`.

Upstream failures are mapped to it once per provider; `app.py` renders it as
`{"type":"error","error":{"type","message"}}`.
"""

from __future__ import annotations

from typing import Any

STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class ApiError(Exception):
    """An error the client sees. `retry_after` (seconds, as text) is passed on as a header."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: str | None = None,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status or STATUS_BY_TYPE.get(error_type, 500)
        self.retry_after = retry_after
        # True when trying again (or another target) may succeed: 408/409/429/5xx, connect errors.
        self.retryable = retryable
        self.details = details

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
        }
        if self.details:
            body["error"]["details"] = self.details
        if request_id:
            body["request_id"] = request_id
        return body


def invalid_request(message: str) -> ApiError:
    return ApiError("invalid_request_error", message)


def not_found(message: str) -> ApiError:
    return ApiError("not_found_error", message)


class ConfigError(ValueError):
    """A setting or routing entry that cannot work (a missing credential or extra): raised at
    start-up, printed by the CLI naming what to fix."""
