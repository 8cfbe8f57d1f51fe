"""The response cache seen by the official TypeScript SDK (its SSE parser is stricter than
the Python SDK's): a replayed stream, and a stream replayed from a non-stream answer, are
accumulated by `messages.stream()` + `finalMessage()` into the original Message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import openai_chunks as oc
from support import replies
from support.router import RouterProcess
from support.upstream import FakeUpstream

from .clients import CLIENT_KEY, run_node_script
from .conftest import exchanges

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ts_sdk")]

SCRIPT = Path(__file__).with_name("sdk_check.mjs")
WEATHER = {"city": "Paris", "unit": "c"}


@pytest.fixture
def cached(upstream: FakeUpstream) -> Iterator[RouterProcess]:
    """A router of its own with the response cache on (fresh cache per test)."""
    with RouterProcess(upstream.url, {"PROMPT_CACHE_ENABLE": "true"}) as process:
        yield process


def _run(router: RouterProcess, scenario: str) -> dict:
    env = {"ROUTER_URL": router.url, "ROUTER_KEY": CLIENT_KEY}
    result: dict = run_node_script(SCRIPT, [scenario], env=env).json()
    return result


def _without_id(message: dict) -> dict:
    """The Message without its id (fresh per hit) and the SDK's own `parsed_output`."""
    return {key: value for key, value in message.items() if key not in ("id", "parsed_output")}


def test_a_replayed_tool_use_stream_accumulates_to_the_same_message(
    cached: RouterProcess, upstream: FakeUpstream
) -> None:
    upstream.enqueue(
        replies.sse(
            [
                *oc.text_chunks("Checking.", 2),
                *oc.tool_call_chunks(0, "call_weather_1", "get_weather", json.dumps(WEATHER), 5),
                oc.finish_chunk("tool_calls"),
                oc.usage_chunk(40, 9),
            ]
        )
    )
    first = _run(cached, "stream-tool")
    second = _run(cached, "stream-tool")
    assert len(upstream.requests) == 1
    assert second["message"]["content"][1]["input"] == WEATHER
    assert _without_id(second["message"]) == _without_id(first["message"])
    assert second["message"]["id"] != first["message"]["id"]
    assert second["jsonDeltas"]  # the SDK saw input_json deltas in the replay too
    assert [record["cache"] for record in exchanges(cached)] == ["miss", "hit"]


def test_a_non_stream_answer_replays_as_a_stream_the_sdk_accepts(
    cached: RouterProcess, upstream: FakeUpstream
) -> None:
    body = {
        "model": "claude-opus-5-5",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    upstream.enqueue(replies.completion("Hello, replayed", usage=oc.usage_dict(25, 6)))
    sent_as = {"x-api-key": CLIENT_KEY}  # the SDK's key: answers are kept per client key
    original = httpx.post(f"{cached.url}/v1/messages", json=body, headers=sent_as, timeout=30)
    original = original.json()
    out = _run(cached, "stream-text")  # the same request, streamed by the SDK
    assert len(upstream.requests) == 1
    assert _without_id(out["message"]) == _without_id(original)
    assert "".join(out["deltas"]) == "Hello, replayed"
    assert out["events"][0] == "message_start" and out["events"][-1] == "message_stop"
