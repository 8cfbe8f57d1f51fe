"""Mappings shared by the non-streaming and streaming response converters."""

from __future__ import annotations

from typing import Any

import orjson

from anthropic_router.errors import ApiError

JSON = dict[str, Any]

STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    # Anthropic-native values that some routes leak through unchanged.
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "tool_use": "tool_use",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "pause_turn": "pause_turn",
    "model_context_window_exceeded": "model_context_window_exceeded",
}


def stop_reason_for(finish_reason: str | None, *, made_tool_calls: bool) -> str:
    reason = STOP_REASONS.get(finish_reason or "stop", "end_turn")
    # Several providers say "stop" after emitting tool calls; the client must see tool_use.
    if made_tool_calls and reason == "end_turn":
        return "tool_use"
    return reason


def matched_stop_sequence(choice: JSON, stop_sequences: list[str]) -> str | None:
    """vLLM and some OpenRouter routes name the stop string that ended generation."""
    for key in ("stop_reason", "native_stop_sequence", "matched_stop"):
        value = choice.get(key)
        if isinstance(value, str) and value in stop_sequences:
            return value
    return None


def anthropic_usage(usage: JSON | None) -> JSON:
    """OpenAI `prompt_tokens` include cache reads and writes; Anthropic `input_tokens` do not."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    cache_read = _int(details.get("cached_tokens")) or _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(details.get("cache_write_tokens")) or _int(
        usage.get("cache_creation_input_tokens")
    )
    prompt = _int(usage.get("prompt_tokens"))
    return {
        "input_tokens": max(prompt - cache_read - cache_write, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
    }


def has_usage(usage: Any) -> bool:
    """Whether an OpenAI `usage` object counts anything: servers that ignore
    `stream_options` send none, or zeros, or `null`."""
    if not isinstance(usage, dict):
        return False
    return _int(usage.get("prompt_tokens")) > 0 or _int(usage.get("completion_tokens")) > 0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_arguments(arguments: str) -> JSON:
    """Tool input must be an object even when the model wrote broken JSON."""
    text = arguments.strip()
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"raw_input": arguments}
    return value if isinstance(value, dict) else {"value": value}


def upstream_error(error: Any) -> ApiError:
    """An error object found inside a 200 response or a stream chunk."""
    if not isinstance(error, dict):
        return ApiError("api_error", f"upstream error: {error}")
    message = str(error.get("message") or "upstream error")
    code = _status_code(error.get("code"))
    metadata = error.get("metadata")
    error_type = metadata.get("error_type") if isinstance(metadata, dict) else None
    if error_type in ("rate_limit_exceeded",) or code == 429:
        return ApiError("rate_limit_error", message, retryable=True)
    if error_type in ("provider_overloaded",) or code in (503, 529):
        return ApiError("overloaded_error", message, retryable=True)
    if error_type == "timeout" or code in (408, 504):
        return ApiError("timeout_error", message, retryable=True)
    if error_type == "context_length_exceeded":
        return ApiError("invalid_request_error", f"prompt is too long: {message}")
    if code in _CLIENT_ERROR_TYPES:
        return ApiError(_CLIENT_ERROR_TYPES[code], f"upstream error: {message}")
    return ApiError("api_error", f"upstream error: {message}")


# Error codes inside a 200 body or a stream chunk, as protocol.md 5.10 maps HTTP statuses.
_CLIENT_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
}


def _status_code(code: Any) -> int | None:
    """OpenRouter sends `code` as a number; LiteLLM and some streams as a string ("429")."""
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def reasoning_parts(source: JSON) -> list[JSON]:
    """Thinking blocks from a message or delta: `reasoning_details` if present (it carries
    signatures), else `reasoning` / `reasoning_content` (never both: they repeat each other)."""
    details = source.get("reasoning_details")
    if isinstance(details, list) and details:
        return [block for block in map(_detail_block, details) if block]
    text = source.get("reasoning") or source.get("reasoning_content")
    if isinstance(text, str) and text:
        return [{"type": "thinking", "thinking": text, "signature": ""}]
    return []


def _detail_block(detail: Any) -> JSON | None:
    if not isinstance(detail, dict):
        return None
    kind = detail.get("type")
    if kind == "reasoning.encrypted":
        return {"type": "redacted_thinking", "data": detail.get("data") or ""}
    text = detail.get("text") if kind == "reasoning.text" else detail.get("summary")
    if kind not in ("reasoning.text", "reasoning.summary"):
        return None
    block: JSON = {
        "type": "thinking",
        "thinking": text or "",
        "signature": detail.get("signature") or "",
    }
    if "index" in detail:
        block["index"] = detail["index"]
    return block


def content_list_parts(items: list[Any]) -> list[JSON]:
    """Blocks from a content *list* (Databricks Claude), in order: a `text` item gives a text
    block (its `citations` are dropped), each `summary[]` entry of a `reasoning` item a
    thinking block; empty entries and items of other types are skipped."""
    parts: list[JSON] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text":
            text = item.get("text")
            if isinstance(text, str) and text:
                parts.append({"type": "text", "text": text})
        elif kind == "reasoning":
            parts.extend(_summary_parts(item.get("summary")))
    return parts


def _summary_parts(summary: Any) -> list[JSON]:
    """A `summary_text` entry may carry text, a signature, or both: Databricks sends the
    signature of a streamed thinking block alone in a last entry with empty text."""
    if not isinstance(summary, list):
        return []
    parts: list[JSON] = []
    for entry in summary:
        if not isinstance(entry, dict) or entry.get("type", "summary_text") != "summary_text":
            continue
        text = entry.get("text")
        signature = entry.get("signature")
        part: JSON = {
            "type": "thinking",
            "thinking": text if isinstance(text, str) else "",
            "signature": signature if isinstance(signature, str) else "",
        }
        if part["thinking"] or part["signature"]:
            parts.append(part)
    return parts
