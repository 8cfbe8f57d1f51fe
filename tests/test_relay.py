"""The exchange seam used directly, with no ASGI and no HTTP server of ours: the same
`UpstreamRelay.run(call)` that the handler, batches, the cache and the tool loop call,
against a real loopback upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from anthropic_router.config import Settings
from anthropic_router.errors import ApiError
from anthropic_router.relay import Call, UpstreamRelay
from anthropic_router.routing import Router
from support.calls import messages_call
from support.grammar import accumulate, check_grammar
from support.openai_chunks import text_chunks, usage_chunk
from support.upstream import FakeUpstream, completion, error, sse

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def _settings(upstream: FakeUpstream, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,
        openrouter_api_key="test-upstream-key-0000",
        openrouter_base_url=f"{upstream.url}/api/v1",
        **extra,
    )


async def _run(settings: Settings, stream: bool, **body: Any) -> tuple[Any, Call]:
    router = Router(settings)
    for provider in router.providers():
        provider.open()
    try:
        call = messages_call(router, stream, **body)
        reply = await UpstreamRelay(settings).run(call)
        if reply.events is None:
            return reply, call
        events = [event async for batch in reply.events for event in batch]
        return (reply, events), call
    finally:
        for provider in router.providers():
            await provider.aclose()


async def test_a_message_comes_back_with_served_headers_and_the_record_filled(
    upstream: FakeUpstream,
) -> None:
    upstream.enqueue(completion("Hello there", usage={"prompt_tokens": 7, "completion_tokens": 3}))
    reply, call = await _run(_settings(upstream), stream=False)
    assert reply.events is None
    assert reply.message["content"] == [{"type": "text", "text": "Hello there"}]
    assert reply.message["model"] == "claude-sonnet-4-5"
    headers = dict(reply.headers)
    assert headers[b"x-anthropic-router-backend"] == b"openrouter"
    assert call.record.usage is not None and call.record.usage["input_tokens"] == 7
    assert call.record.stop_reason == "end_turn"


async def test_events_come_in_batches_that_form_a_valid_stream(upstream: FakeUpstream) -> None:
    upstream.enqueue(sse([*text_chunks("one two three"), usage_chunk(5, 3)]))
    (reply, events), call = await _run(_settings(upstream), stream=True)
    assert reply.message is None
    check_grammar(events)
    assert accumulate(events)["content"] == [{"type": "text", "text": "one two three"}]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "one two three"
    assert call.record.stop_reason == "end_turn"


async def test_a_client_error_is_raised_not_answered(upstream: FakeUpstream) -> None:
    upstream.enqueue(error(400, "bad thing"))
    with pytest.raises(ApiError) as raised:
        await _run(_settings(upstream), stream=False)
    assert raised.value.status == 400
    assert raised.value.error_type == "invalid_request_error"


async def test_message_start_carries_an_input_token_estimate(upstream: FakeUpstream) -> None:
    """Clients read input tokens from `message_start`; the real count follows in
    `message_delta`."""
    upstream.enqueue(sse([*text_chunks("ok"), usage_chunk(40, 1)]))
    long_text = "word " * 400
    (_, events), _ = await _run(
        _settings(upstream), stream=True, messages=[{"role": "user", "content": long_text}]
    )
    estimate = events[0]["message"]["usage"]["input_tokens"]
    assert 300 < estimate < 1000
    delta = next(event for event in events if event["type"] == "message_delta")
    assert delta["usage"]["input_tokens"] == 40
