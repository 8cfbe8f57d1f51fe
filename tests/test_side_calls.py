"""The local answers to Claude Code's `max_tokens: 1` side calls (`side_calls.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from anthropic_router.config import Settings
from anthropic_router.convert.stream import message_events
from anthropic_router.observability import Exchange, new_request_id
from anthropic_router.relay import Call, Reply, UpstreamRelay
from anthropic_router.routing import Router
from anthropic_router.side_calls import SideCallRelay, is_side_call, local_message
from anthropic_router.tokens import count_tokens
from anthropic_router.wire.anthropic import parse_messages_request
from support.router import UPSTREAM_API_KEY
from support.upstream import FakeUpstream

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


# The wrapper on the exchange seam, with the real UpstreamRelay inside and a loopback upstream.


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


async def _run(fake: FakeUpstream, body: dict[str, Any], stream: bool) -> tuple[Reply, Call]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        openrouter_api_key=UPSTREAM_API_KEY,
        openrouter_base_url=f"{fake.url}/api/v1",
    )
    router = Router(settings)
    for provider in router.providers():
        provider.open()
    try:
        request = parse_messages_request(body)
        record = Exchange(new_request_id(), "POST", "/v1/messages")
        call = Call(request, router.route(request), record, stream=stream)
        return await SideCallRelay(UpstreamRelay(settings)).run(call), call
    finally:
        for provider in router.providers():
            await provider.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_the_wrapper_answers_side_calls_without_the_upstream(
    fake: FakeUpstream, stream: bool
) -> None:
    reply, call = await _run(fake, VALIDATION, stream)
    assert fake.requests == []
    if stream:
        assert reply.events is not None
        events = [event async for batch in reply.events for event in batch]
        message = events[0]["message"]
        assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    else:
        assert reply.message is not None
        message = reply.message
    expected = count_tokens(dict(VALIDATION), "openai/gpt-5")
    assert message["usage"]["input_tokens"] == expected
    assert dict(reply.headers)[b"x-anthropic-router-backend"] == b"local"
    assert call.record.backend == "local" and call.record.usage is not None
    assert call.record.usage["input_tokens"] == expected


@pytest.mark.anyio
async def test_the_wrapper_passes_other_calls_through(fake: FakeUpstream) -> None:
    reply, call = await _run(fake, {**VALIDATION, "max_tokens": 64}, stream=False)
    assert len(fake.requests) == 1 and reply.message is not None
    assert call.record.backend == "openrouter"
