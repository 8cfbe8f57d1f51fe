"""The router in front of a real local OpenAI-compatible server: llama-cpp-python's server
with a tiny random-weight model (tests/support/llama_server.py), driven with the official
SDK. The model writes gibberish: these tests assert on the protocol, never on words.

What this server needs from the router (convert/profiles.py, "llama-cpp-python"): `""` as
the content of a tool-call turn (null is a 500 there), text-only content as a string, no
"required" tool_choice, tool requests with tool_choice auto sent unstreamed (it cannot stream
them) and replayed as SSE, and usage estimated for streams (it never sends any).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from reliability.shapes import check_message, check_stream, exchanges, parse_sse
from support.llama_server import MODEL_ALIAS, LlamaServer
from support.router import RouterProcess

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
MODEL = "claude-sonnet-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
        "required": ["city"],
    },
}
FORCED = {"type": "tool", "name": "get_weather"}
CLIENT_KEY = "test-client-key"  # pragma: allowlist secret  (no PROXY_API_KEY: any key passes)


@pytest.fixture(scope="module")
def local_router() -> Iterator[RouterProcess]:
    with LlamaServer() as llama, llama.router() as router:
        yield router


@pytest.fixture
def sdk(local_router: RouterProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=local_router.url, api_key=CLIENT_KEY, max_retries=0, timeout=120
    ) as client:
        yield client


def raw_stream(router: RouterProcess, body: JSON) -> list[JSON]:
    """The router's SSE for `body`, parsed frame by frame and checked against the grammar;
    the exchange record of the request is then in `router.last_request_id`."""
    with httpx.Client(timeout=120) as http:
        response = http.post(
            f"{router.url}/v1/messages",
            json={**body, "stream": True},
            headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert check_stream(events) is None, events[-1]
    LAST_REQUEST[router.url] = response.headers["request-id"]
    return events


LAST_REQUEST: dict[str, str] = {}


def final_usage(events: list[JSON]) -> JSON:
    [delta] = [e for e in events if e["type"] == "message_delta"]
    usage: JSON = delta["usage"]
    return usage


def assert_counted(usage: Any) -> None:
    data = usage if isinstance(usage, dict) else usage.model_dump()
    assert data["input_tokens"] > 0 and data["output_tokens"] > 0, data


def last_exchange(router: RouterProcess) -> JSON:
    """The exchange record of the last `raw_stream` (logged when the stream has ended)."""
    request_id = LAST_REQUEST[router.url]
    router.wait_for_log(f'"request_id":"{request_id}"')
    [record] = [r for r in exchanges(router.logs()) if r["request_id"] == request_id]
    return record


def test_ready_names_the_detected_profile(local_router: RouterProcess) -> None:
    ready = httpx.get(f"{local_router.url}/ready").json()
    assert ready["status"] == "ok"
    assert ready["local_servers"][0] == {
        "route": "claude-haiku-4-5",
        "model": MODEL_ALIAS,
        "server": "llama-cpp-python",
        "reason": "detected: /v1/models says owned_by='me'",
    }


def test_text(sdk: anthropic.Anthropic) -> None:
    message = sdk.messages.create(
        model=MODEL, max_tokens=12, messages=[{"role": "user", "content": "Say hello."}]
    )
    check_message(message.model_dump())
    assert message.content[0].type == "text" and message.stop_reason in ("end_turn", "max_tokens")
    assert_counted(message.usage)


def test_text_parts_go_as_one_string(sdk: anthropic.Anthropic, local_router: RouterProcess) -> None:
    # Sent as a list, llama-cpp-python's template would print the list's Python repr, which
    # the prompt token count would show: ~20 more tokens than the text itself.
    parts = [{"type": "text", "text": "first part"}, {"type": "text", "text": "second part"}]
    as_parts = sdk.messages.create(
        model=MODEL, max_tokens=4, messages=[{"role": "user", "content": parts}]
    )
    as_string = sdk.messages.create(
        model=MODEL,
        max_tokens=4,
        messages=[{"role": "user", "content": "first part\n\nsecond part"}],
    )
    assert as_parts.usage.input_tokens == as_string.usage.input_tokens


def test_max_tokens(sdk: anthropic.Anthropic) -> None:
    # The tiny model almost never ends on its first token (support/tiny_gguf.py).
    message = sdk.messages.create(
        model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "Write an essay."}]
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 1


def test_stream_has_estimated_usage(local_router: RouterProcess, sdk: anthropic.Anthropic) -> None:
    events = raw_stream(
        local_router,
        {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert events[0]["type"] == "message_start"
    assert_counted(final_usage(events))
    record = last_exchange(local_router)
    assert record["usage_estimated"] is True and record["usage"]["input_tokens"] > 0

    with sdk.messages.stream(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert_counted(final.usage)


def test_streamed_and_unstreamed_usage_are_alike(sdk: anthropic.Anthropic) -> None:
    # The estimate uses the router's offline tokenizer, not the model's: same order of size.
    messages = [{"role": "user", "content": "Tell me about the sea and the mountains."}]
    real = sdk.messages.create(model=MODEL, max_tokens=8, messages=messages)
    with sdk.messages.stream(model=MODEL, max_tokens=8, messages=messages) as stream:
        estimated = stream.get_final_message()
    assert estimated.usage.input_tokens > 0 and real.usage.input_tokens > 0
    ratio = estimated.usage.input_tokens / real.usage.input_tokens
    assert 0.2 < ratio < 5, (estimated.usage, real.usage)


def test_metrics_count_estimated_tokens(
    local_router: RouterProcess, sdk: anthropic.Anthropic
) -> None:
    with sdk.messages.stream(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        stream.get_final_message()
    metrics = httpx.get(f"{local_router.url}/metrics").text
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("anthropic_router_estimated_tokens_total{")
        and 'kind="input"' in line
        and MODEL_ALIAS in line
    )
    assert float(line.rsplit(" ", 1)[1]) > 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_forced_tool_call(
    local_router: RouterProcess, sdk: anthropic.Anthropic, stream: bool
) -> None:
    body: JSON = {
        "model": MODEL,
        "max_tokens": 60,
        "tools": [WEATHER],
        "tool_choice": FORCED,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    if stream:
        events = raw_stream(local_router, body)
        starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
        assert [b["type"] for b in starts] == ["tool_use"] and starts[0]["name"] == "get_weather"
        assert final_usage(events)["output_tokens"] > 0
        assert events[-2]["delta"]["stop_reason"] == "tool_use"
    else:
        message = sdk.messages.create(**body)
        [block] = message.content
        assert block.type == "tool_use" and block.name == "get_weather"
        assert block.input["city"] in ("Paris", "Rome")
        assert message.stop_reason == "tool_use"
        assert_counted(message.usage)


def test_tool_choice_any_with_one_tool_is_forced(sdk: anthropic.Anthropic) -> None:
    # llama-cpp-python fails "required"; with one tool the router names it instead.
    message = sdk.messages.create(
        model=MODEL,
        max_tokens=60,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather?"}],
    )
    assert [b.type for b in message.content] == ["tool_use"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_tool_round_trip(
    local_router: RouterProcess, sdk: anthropic.Anthropic, stream: bool
) -> None:
    """tool_use -> tool_result -> the next answer, with the tools still offered (tool_choice
    auto): the second turn is where `content: null` used to fail, and where llama-cpp-python
    cannot stream (the router asks unstreamed and replays)."""
    question = {"role": "user", "content": "Weather in Paris?"}
    first = sdk.messages.create(
        model=MODEL, max_tokens=60, tools=[WEATHER], tool_choice=FORCED, messages=[question]
    )
    [call] = first.content
    assert call.type == "tool_use"
    history = [
        question,
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 C"}],
        },
    ]
    body: JSON = {"model": MODEL, "max_tokens": 20, "tools": [WEATHER], "messages": history}
    if stream:
        events = raw_stream(local_router, body)
        assert_counted(final_usage(events))
        kinds = {e["content_block"]["type"] for e in events if e["type"] == "content_block_start"}
        assert kinds <= {"text", "tool_use"}
        record = last_exchange(local_router)
        assert record["status"] == 200 and "error_type" not in record
        # Replayed from llama-cpp-python's JSON answer: real usage, not an estimate.
        assert "usage_estimated" not in record
    else:
        answer = sdk.messages.create(**body)
        check_message(answer.model_dump())
        assert answer.stop_reason in ("end_turn", "max_tokens", "tool_use")
        assert_counted(answer.usage)


def test_no_router_errors_in_the_logs(
    local_router: RouterProcess, sdk: anthropic.Anthropic
) -> None:
    sdk.messages.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    for record in exchanges(local_router.logs()):
        assert record["status"] == 200, json.dumps(record)
