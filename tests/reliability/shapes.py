"""What a client can read: Anthropic error bodies, Messages and SSE event streams, checked
strictly enough that a 500 traceback page, a half-written stream or a mangled event fails."""

from __future__ import annotations

import json
from typing import Any

from support.grammar import DELTAS_BY_BLOCK, ERROR_TYPES, STOP_REASONS, check_grammar

JSON = dict[str, Any]

BLOCK_TYPES = set(DELTAS_BY_BLOCK)
USAGE_KEYS = ("input_tokens", "output_tokens")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_error_body(body: Any) -> JSON:
    """`{"type":"error","error":{"type":str,"message":str}}` (plus an optional request_id)."""
    assert isinstance(body, dict), body
    assert body.get("type") == "error", body
    error = body.get("error")
    assert isinstance(error, dict), body
    assert error.get("type") in ERROR_TYPES, body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert set(body) <= {"type", "error", "request_id"}, body
    return error


def check_error_response(
    response: Any, status: int | None = None, error_type: str | None = None
) -> JSON:
    """An httpx response carrying an Anthropic error; returns the `error` object."""
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    error = check_error_body(response.json())
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text)
    if error_type is not None:
        assert error["type"] == error_type, response.text
    return error


def check_message(message: Any) -> JSON:
    """A non-streaming Anthropic Message."""
    assert isinstance(message, dict), message
    assert message.get("type") == "message" and message.get("role") == "assistant", message
    assert isinstance(message.get("id"), str) and message["id"].startswith("msg_"), message
    assert isinstance(message.get("model"), str), message
    assert message.get("stop_reason") in STOP_REASONS, message
    assert message.get("stop_sequence") is None or isinstance(message["stop_sequence"], str)
    usage = message.get("usage")
    assert isinstance(usage, dict) and all(_count(usage.get(k)) for k in USAGE_KEYS), message
    assert isinstance(message.get("content"), list), message
    for block in message["content"]:
        assert isinstance(block, dict) and block.get("type") in BLOCK_TYPES, block
        if block["type"] == "text":
            assert isinstance(block.get("text"), str), block
        elif block["type"] == "tool_use":
            assert isinstance(block.get("id"), str) and isinstance(block.get("name"), str)
            assert isinstance(block.get("input"), dict), block
    return message


def parse_sse(text: str) -> list[JSON]:
    """The events of an Anthropic SSE body; every frame must have `event:` and JSON `data:`
    naming the same type, and the body must end at a frame boundary."""
    assert text.endswith("\n\n"), f"stream does not end at a frame boundary: {text[-200:]!r}"
    events = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        lines = frame.split("\n")
        assert lines[0].startswith("event: "), frame
        assert len(lines) == 2 and lines[1].startswith("data: "), frame
        event = json.loads(lines[1][len("data: ") :])
        assert isinstance(event, dict) and event.get("type") == lines[0][len("event: ") :], frame
        events.append(event)
    return events


def check_stream(events: list[JSON]) -> JSON | None:
    """The full Anthropic stream grammar (`support.grammar.check_grammar`); returns the error
    object when the stream ended with an `error` event."""
    check_grammar(events)
    last = events[-1]
    return check_error_body(last) if last["type"] == "error" else None


def stream_text(events: list[JSON]) -> str:
    """The concatenated text deltas of a stream."""
    return "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )


def exchanges(logs: str) -> list[JSON]:
    """The router's JSON `exchange` log records."""
    records = []
    for line in logs.splitlines():
        if '"event":"exchange"' in line:
            records.append(json.loads(line))
    return records


def log_errors(logs: str) -> list[str]:
    """Router log lines that report a failure of the router itself: records at level error or
    above, records carrying an exception, and any non-JSON line with a traceback. (Matching
    the word "Traceback" alone is not enough: fuzzed client strings can contain it, and the
    exchange record repeats client strings such as model names.)"""
    found = []
    for line in logs.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                found.append(line)
            continue
        if not isinstance(record, dict):
            continue
        if record.get("level") in ("error", "critical") or "exc" in record or "stack" in record:
            found.append(line)
    return found
