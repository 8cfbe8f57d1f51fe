"""The local answers to Claude Code's `max_tokens: 1` side calls (`side_calls.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.stream import message_events
from anthropic_router.side_calls import is_side_call, local_message

VALIDATION = {  # what Claude Code 2.1.332 sends after `/model openai/gpt-5`
    "model": "openai/gpt-5",
    "max_tokens": 1,
    "system": [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."}
    ],
    "messages": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}],
        }
    ],
}
QUOTA = {
    "model": "claude-haiku-4-5",
    "max_tokens": 1,
    "messages": [{"role": "user", "content": "quota"}],
}
COUNT = {
    "model": "claude-opus-4-8",
    "max_tokens": 1,
    "messages": [{"role": "user", "content": "count"}],
}


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (VALIDATION, True),
        (QUOTA, True),
        (COUNT, True),
        ({**COUNT, "stream": True}, True),
        ({**COUNT, "max_tokens": 2}, False),
        ({**COUNT, "max_tokens": 32000}, False),
        ({**COUNT, "max_tokens": True}, False),  # a bool is not a count
        ({**COUNT, "max_tokens": "1"}, False),
        ({"model": "m", "messages": []}, False),
    ],
)
def test_which_requests_are_side_calls(request_body: dict[str, Any], expected: bool) -> None:
    assert is_side_call(request_body) is expected


def test_local_answer_is_a_complete_message() -> None:
    message = local_message(VALIDATION, 17, "msg_local_1")
    assert message == {
        "id": "msg_local_1",
        "type": "message",
        "role": "assistant",
        "model": "openai/gpt-5",  # the client's name, as every answer
        "content": [],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 17,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def test_local_answer_as_a_stream() -> None:
    events = message_events(local_message(QUOTA, 9, "msg_local_2"))
    assert [e["type"] for e in events] == ["message_start", "message_delta", "message_stop"]
    assert events[0]["message"]["usage"]["input_tokens"] == 9
    assert events[1]["delta"]["stop_reason"] == "max_tokens"
