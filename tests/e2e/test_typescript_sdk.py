"""The official TypeScript SDK (pinned in tests/e2e/package.json) against the real router: its
stream accumulator (`messages.stream()` + `finalMessage()`) and its tool-use helper
(`beta.messages.toolRunner()`). Its SSE parser is stricter than the Python SDK's. The scenarios
live in sdk_check.mjs; each test scripts the upstream, runs one and checks both ends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support import openai_chunks as oc
from support import replies
from support.router import RouterProcess
from support.upstream import FakeUpstream, Recorded

from .clients import CLIENT_KEY, run_node_script

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ts_sdk")]

SCRIPT = Path(__file__).with_name("sdk_check.mjs")
CHAT_PATH = "/api/v1/chat/completions"
WEATHER = {"city": "Paris", "unit": "c"}


def run_sdk(router: RouterProcess, scenario: str) -> Any:
    run = run_node_script(
        SCRIPT, [scenario], env={"ROUTER_URL": router.url, "ROUTER_KEY": CLIENT_KEY}
    )
    return run.json()


def chat_requests(upstream: FakeUpstream) -> list[Recorded]:
    return [r for r in upstream.requests if r.path == CHAT_PATH]


def weather_call_stream() -> replies.Reply:
    return replies.sse(
        [
            *oc.text_chunks("Checking.", 2),
            *oc.tool_call_chunks(0, "call_weather_1", "get_weather", json.dumps(WEATHER), 5),
            oc.finish_chunk("tool_calls"),
            oc.usage_chunk(40, 9),
        ]
    )


def test_stream_accumulator_and_final_message(router: RouterProcess, upstream: FakeUpstream):
    upstream.enqueue(
        replies.sse(
            [
                ": OPENROUTER PROCESSING\n\n",
                *oc.text_chunks("Hello from the TypeScript check", 5),
                oc.finish_chunk("stop"),
                oc.usage_chunk(25, 6),
            ]
        )
    )
    out = run_sdk(router, "stream-text")
    message = out["message"]
    assert "".join(out["deltas"]) == "Hello from the TypeScript check" and len(out["deltas"]) > 1
    assert message["content"] == [{"type": "text", "text": "Hello from the TypeScript check"}]
    assert message["stop_reason"] == "end_turn" and message["model"] == "claude-opus-5-5"
    assert message["usage"]["input_tokens"] == 25 and message["usage"]["output_tokens"] == 6
    events = out["events"]
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]
    assert events.count("content_block_start") == events.count("content_block_stop") == 1
    [sent] = chat_requests(upstream)
    assert sent.json["stream"] is True and sent.json["model"] == "anthropic/claude-sonnet-4.5"
    assert sent.json["messages"] == [{"role": "user", "content": "Say hello"}]


def test_stream_tool_input_accumulates(router: RouterProcess, upstream: FakeUpstream):
    """TOOL_CALL_REPAIR (the default) holds a call's arguments until its block closes and
    sends them as one delta; the fragments themselves are checked below with repair off."""
    upstream.enqueue(weather_call_stream())
    out = run_sdk(router, "stream-tool")
    check_weather_stream(out, upstream)
    assert out["jsonDeltas"] == [json.dumps(WEATHER)]


def test_stream_tool_input_fragments_accumulate(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"TOOL_CALL_REPAIR": "false"})
    upstream.enqueue(weather_call_stream())
    out = run_sdk(router, "stream-tool")
    check_weather_stream(out, upstream)
    assert len(out["jsonDeltas"]) > 1  # the fragments arrived as several input_json deltas


def check_weather_stream(out: dict[str, Any], upstream: FakeUpstream) -> None:
    message = out["message"]
    assert message["stop_reason"] == "tool_use"
    text, tool_use = message["content"]
    assert text["text"] == "Checking."
    assert (tool_use["type"], tool_use["id"], tool_use["name"]) == (
        "tool_use",
        "call_weather_1",
        "get_weather",
    )
    assert tool_use["input"] == WEATHER
    [sent] = chat_requests(upstream)
    [function] = [tool["function"] for tool in sent.json["tools"]]
    assert function["name"] == "get_weather"
    assert function["parameters"]["required"] == ["city"]


def assert_tool_loop_output(out: dict[str, Any]) -> None:
    assert out["calls"] == [WEATHER]  # the helper ran the tool once with the parsed input
    assert [turn["stop_reason"] for turn in out["turns"]] == ["tool_use", "end_turn"]
    assert out["final"]["content"][0]["text"] == "It is sunny in Paris."


def assert_follow_up_has_full_history(follow_up: Recorded) -> None:
    messages = follow_up.json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[0]["content"] == "What is the weather in Paris?"
    [call] = messages[1]["tool_calls"]
    assert call["id"] == "call_weather_1" and json.loads(call["function"]["arguments"]) == WEATHER
    assert messages[2]["tool_call_id"] == "call_weather_1"
    assert messages[2]["content"] == "Sunny, 21 degrees in Paris"
    assert [t["function"]["name"] for t in follow_up.json["tools"]] == ["get_weather"]


def test_tool_runner_helper(router: RouterProcess, upstream: FakeUpstream):
    upstream.enqueue(
        weather_call_stream(),
        replies.sse([*oc.text_chunks("It is sunny in Paris."), oc.finish_chunk()]),
    )
    out = run_sdk(router, "tool-runner")
    assert_tool_loop_output(out)
    first, follow_up = chat_requests(upstream)
    assert first.json["messages"] == [{"role": "user", "content": "What is the weather in Paris?"}]
    assert_follow_up_has_full_history(follow_up)


def test_tool_runner_helper_default_thread(router: RouterProcess, upstream: FakeUpstream):
    upstream.enqueue(
        weather_call_stream(),
        replies.sse([*oc.text_chunks("It is sunny in Paris."), oc.finish_chunk()]),
    )
    out = run_sdk(router, "tool-runner-threaded")
    assert_tool_loop_output(out)
    _, follow_up = chat_requests(upstream)
    assert_follow_up_has_full_history(follow_up)
