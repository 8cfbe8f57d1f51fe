"""Anthropic in, Anthropic out: for upstreams that speak the Messages API themselves
(Databricks' native Claude route). Nothing is translated; the request loses only the
OpenRouter/OpenAI extension fields, and the response gets the client's model name back.

`AnthropicRelay` has the `StreamTranslator` interface so the app's one stream pipeline
(timeouts, pings, error events, usage) serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from anthropic_router.convert.options import OPENAI_FIELDS, OPENROUTER_FIELDS, RequestOptions
from anthropic_router.convert.report import Report
from anthropic_router.errors import ApiError

JSON = dict[str, Any]

_EXTENSIONS = (OPENROUTER_FIELDS | OPENAI_FIELDS) - {"metadata"}


def to_anthropic_request(request: JSON, options: RequestOptions) -> tuple[JSON, Report]:
    """The client's request with the upstream model; our extension fields are dropped
    (an Anthropic upstream rejects unknown fields) and reported."""
    report = Report()
    body: JSON = {}
    for name, value in request.items():
        if name in _EXTENSIONS:
            report.drop(f"field:{name}")
        else:
            body[name] = value
    body["model"] = options.upstream_model
    return body, report


def passthrough_message(message: Any, model: str) -> JSON:
    """The upstream's Message with the client's model name; a wrong shape is a 502."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise ApiError("api_error", "upstream answered with an unexpected shape", status=502)
    shaped: JSON = {"type": "message", "role": "assistant", "stop_sequence": None, **message}
    shaped["model"] = model
    return shaped


@dataclass
class AnthropicRelay:
    """Relays an Anthropic event stream, renaming the model in `message_start` and noting
    usage and stop reason; a stream that ends without `message_stop` ends in an error event."""

    model: str
    done: bool = False
    failed: ApiError | None = None
    stop_reason: str | None = None
    dropped: list[str] = field(default_factory=list)
    anthropic_usage: JSON = field(default_factory=dict)

    def start(self) -> list[JSON]:
        return []  # the upstream sends its own message_start

    def feed_data(self, payload: bytes) -> list[JSON]:
        if self.done:
            return []
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ValueError("an event is not JSON") from exc
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ValueError("an event has no type")
        return [self._note(event)]

    def _note(self, event: JSON) -> JSON:
        kind = event["type"]
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = {**event["message"], "model": self.model}
            self.anthropic_usage.update(message.get("usage") or {})
            return {**event, "message": message}
        if kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.anthropic_usage.update(event.get("usage") or {})
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            error = event.get("error") or {}
            self.failed = ApiError(
                str(error.get("type") or "api_error"), str(error.get("message") or "")
            )
            self.done = True
        return event

    def end_of_input(self) -> list[JSON]:
        if self.done:
            return []
        return self.fail(ApiError("api_error", "upstream stream ended before message_stop"))

    def fail(self, error: ApiError) -> list[JSON]:
        if self.done:
            return []
        self.failed = error
        self.done = True
        return [{"type": "error", "error": {"type": error.error_type, "message": error.message}}]
