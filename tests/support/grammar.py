"""The Anthropic stream grammar as the SDK accumulator relies on it (protocol.md 2.4, edge
cases 18, 23, 25, 26), checked over a list of event dicts, plus that accumulator itself."""

from __future__ import annotations

import re
from typing import Any

import orjson

JSON = dict[str, Any]

DELTAS_BY_BLOCK: dict[str, set[str]] = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
    "redacted_thinking": set(),
    # Server tools: uses stream their input like tool_use; results arrive whole.
    "server_tool_use": {"input_json_delta"},
    "mcp_tool_use": {"input_json_delta"},
    "web_search_tool_result": set(),
    "web_fetch_tool_result": set(),
    "mcp_tool_result": set(),
}
STOP_REASONS = {
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
}
ERROR_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
}
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_grammar(events: list[JSON], *, complete: bool = True) -> None:
    """message_start first (with a usage object), then blocks with dense indices from 0, one
    open at a time, deltas only for the open block and of its kind; then message_delta +
    message_stop, or an `error` after the open block was closed; nothing after either."""
    assert events, "no events"
    first = events[0]
    assert first["type"] == "message_start", first
    message = first["message"]
    assert message["type"] == "message" and message["role"] == "assistant", message
    assert message["content"] == [] and message["stop_reason"] is None, message
    assert isinstance(message["usage"], dict), message
    assert all(_is_count(message["usage"].get(key)) for key in USAGE_KEYS), message["usage"]
    next_index = 0
    open_block: tuple[int, str] | None = None
    state = "blocks"  # -> "delta" after message_delta -> "ended"
    for position, event in enumerate(events[1:], start=1):
        kind = event["type"]
        where = f"event {position}: {event}"
        assert state != "ended", f"{where} follows the end of the stream"
        if kind == "ping":
            continue
        if kind == "content_block_start":
            assert state == "blocks", where
            assert open_block is None, f"{where} while block {open_block} is open"
            assert event["index"] == next_index, f"{where}: expected index {next_index}"
            block = event["content_block"]
            _check_start_block(block, where)
            open_block = (next_index, block["type"])
            next_index += 1
        elif kind == "content_block_delta":
            assert open_block is not None, f"{where}: no open block"
            assert event["index"] == open_block[0], f"{where}: open block is {open_block}"
            assert event["delta"]["type"] in DELTAS_BY_BLOCK[open_block[1]], where
        elif kind == "content_block_stop":
            assert open_block is not None and event["index"] == open_block[0], where
            open_block = None
        elif kind == "message_delta":
            assert state == "blocks" and open_block is None, where
            assert event["delta"]["stop_reason"] in STOP_REASONS, where
            stop_sequence = event["delta"]["stop_sequence"]
            assert stop_sequence is None or isinstance(stop_sequence, str), where
            assert _is_count(event["usage"]["output_tokens"]), where
            state = "delta"
        elif kind == "message_stop":
            assert state == "delta", f"{where} without message_delta"
            state = "ended"
        elif kind == "error":
            assert open_block is None, f"{where} with block {open_block} still open"
            assert state == "blocks", where
            assert event["error"]["type"] in ERROR_TYPES, where
            assert isinstance(event["error"]["message"], str), where
            state = "ended"
        else:
            raise AssertionError(f"{where}: unknown event type")
    if complete:
        assert state == "ended", "the stream did not end with message_stop or error"


def _check_start_block(block: JSON, where: str) -> None:
    kind = block["type"]
    assert kind in DELTAS_BY_BLOCK, where
    if kind == "text":
        assert block == {"type": "text", "text": ""}, where
    elif kind == "thinking":
        assert block == {"type": "thinking", "thinking": "", "signature": ""}, where
    elif kind == "tool_use":
        assert set(block) == {"type", "id", "name", "input"} and block["input"] == {}, where
        assert TOOL_ID.match(block["id"]), where
        assert isinstance(block["name"], str), where
    elif kind in ("server_tool_use", "mcp_tool_use"):
        assert block["input"] == {} and TOOL_ID.match(block["id"]), where
        assert isinstance(block["name"], str), where
    elif kind.endswith("_tool_result"):
        assert TOOL_ID.match(block["tool_use_id"]) and "content" in block, where
    else:
        assert isinstance(block["data"], str), where


def accumulate(events: list[JSON]) -> JSON:
    """What the Anthropic SDK's accumulator builds from the events (tool input parsed)."""
    message: JSON = dict(events[0]["message"])
    message["content"] = []
    partial: dict[int, str] = {}
    for event in events[1:]:
        kind = event["type"]
        if kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block = message["content"][event["index"]]
            delta = event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
            elif delta["type"] == "citations_delta":
                block.setdefault("citations", []).append(delta["citation"])
        elif kind == "content_block_stop":
            text = partial.pop(event["index"], "")
            block = message["content"][event["index"]]
            if block["type"] in ("tool_use", "server_tool_use", "mcp_tool_use"):
                block["input"] = orjson.loads(text) if text else {}
        elif kind == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
            message["stop_sequence"] = event["delta"]["stop_sequence"]
            message["usage"] = {**message["usage"], **event["usage"]}
    return message
