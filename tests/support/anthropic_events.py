"""The vocabulary of expected Anthropic stream events, shared by the stream-script tables
(`tests/convert/test_stream.py`, `tests/convert/test_databricks_content.py`)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

ZERO = {
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
TEXT = {"type": "text", "text": ""}
THINKING = {"type": "thinking", "thinking": "", "signature": ""}


def opening(model: str) -> list[JSON]:
    """`message_start` (zero usage) and the `ping` the translator sends first."""
    message = {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": ZERO,
    }
    return [{"type": "message_start", "message": message}, {"type": "ping"}]


def start(index: int, block: JSON) -> JSON:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, body: JSON) -> JSON:
    return {"type": "content_block_delta", "index": index, "delta": body}


def text_d(index: int, text: str) -> JSON:
    return delta(index, {"type": "text_delta", "text": text})


def think_d(index: int, text: str) -> JSON:
    return delta(index, {"type": "thinking_delta", "thinking": text})


def sig_d(index: int, signature: str) -> JSON:
    return delta(index, {"type": "signature_delta", "signature": signature})


def json_d(index: int, fragment: str) -> JSON:
    return delta(index, {"type": "input_json_delta", "partial_json": fragment})


def stop(index: int) -> JSON:
    return {"type": "content_block_stop", "index": index}


def tool(id: str, name: str) -> JSON:
    return {"type": "tool_use", "id": id, "name": name, "input": {}}


def end(reason: str, usage: JSON | None = None, stop_sequence: str | None = None) -> list[JSON]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": stop_sequence},
            "usage": usage or ZERO,
        },
        {"type": "message_stop"},
    ]


def error(error_type: str, message: str) -> JSON:
    return {"type": "error", "error": {"type": error_type, "message": message}}
