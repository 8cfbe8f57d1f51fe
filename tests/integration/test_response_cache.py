"""The response cache (PROMPT_CACHE_ENABLE) through the real server, driven by the official
SDK and raw HTTP, against the loopback upstream whose request log counts upstream calls."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from anthropic_router.convert.sse import SSEDecoder
from support import openai_chunks as oc
from support import replies
from support.grammar import accumulate, check_grammar
from support.router import RouterProcess
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

CACHE = "x-anthropic-router-cache"
SIG = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxDdp"
ON = {"PROMPT_CACHE_ENABLE": "true"}


@pytest.fixture(scope="module")
def router(upstream: FakeUpstream):
    """One caching router for the module; each test asks its own question (`_body`)."""
    with RouterProcess(upstream.url, ON) as process:
        yield process


def _body(**extra: Any) -> dict[str, Any]:
    question = f"question {uuid.uuid4().hex}"
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": question}],
        **extra,
    }


def _post(router: RouterProcess, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{router.url}/v1/messages", json=body, headers=headers, timeout=30)


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    payloads = decoder.feed(response.content) + decoder.flush()
    return [json.loads(payload) for payload in payloads]


def _without_id(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key != "id"}


def _text_stream(text: str, prompt: int = 9, completion: int = 4) -> replies.Reply:
    return replies.sse(
        [*oc.text_chunks(text, 3), oc.finish_chunk(), oc.usage_chunk(prompt, completion)]
    )


# -- miss, hit, modes -------------------------------------------------------------------


def test_miss_then_hit_makes_one_upstream_call(client: anthropic.Anthropic, upstream) -> None:
    body = _body()
    upstream.enqueue(replies.completion("four", usage=oc.usage_dict(11, 3)))
    first = client.messages.with_raw_response.create(**body)
    second = client.messages.with_raw_response.create(**body)
    assert first.headers[CACHE] == "miss" and second.headers[CACHE] == "hit"
    assert len(upstream.requests) == 1
    one, two = first.parse(), second.parse()
    assert two.content[0].text == "four" and two.usage == one.usage
    assert two.id != one.id and two.id.startswith("msg_")
    assert _without_id(two.model_dump()) == _without_id(one.model_dump())
    assert second.headers["x-anthropic-router-backend"] == "openrouter"
    assert int(second.headers["age"]) >= 0


def test_a_streamed_answer_serves_a_non_stream_request(
    client: anthropic.Anthropic, upstream
) -> None:
    body = _body()
    upstream.enqueue(_text_stream("streamed words here"))
    with client.messages.stream(**body) as stream:
        streamed = stream.get_final_message()
        assert stream.response.headers[CACHE] == "miss"
    answer = client.messages.with_raw_response.create(**body)
    assert answer.headers[CACHE] == "hit" and len(upstream.requests) == 1
    assert _without_id(answer.parse().model_dump()) == _without_id(streamed.model_dump())


def test_a_message_serves_a_stream_request_with_real_block_structure(
    router: RouterProcess, upstream
) -> None:
    body = _body(tools=[{"name": "Bash", "input_schema": {"type": "object"}}])
    reasoning = [{"type": "reasoning.text", "text": "Let me think.", "signature": SIG, "index": 0}]
    upstream.enqueue(
        replies.completion(
            "Running it.",
            tool_calls=[
                oc.tool_call("call_1", "Bash", {"command": "ls", "opts": [1, {"a": None}]})
            ],
            finish_reason="tool_calls",
            extra_message_fields={"reasoning_details": reasoning},
        )
    )
    message = _post(router, body).json()
    assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use"]
    replayed = _post(router, {**body, "stream": True})
    assert replayed.headers[CACHE] == "hit" and len(upstream.requests) == 1
    assert replayed.headers["content-type"].startswith("text/event-stream")
    events = _events(replayed)
    check_grammar(events)
    assert _without_id(accumulate(events)) == _without_id(message)
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ["thinking_delta", "signature_delta", "text_delta", "input_json_delta"]


def test_the_sdk_accumulates_a_replayed_stream_into_the_same_message(
    client: anthropic.Anthropic, upstream
) -> None:
    body = _body()
    upstream.enqueue(_text_stream("replayed for the sdk"))
    with client.messages.stream(**body) as stream:
        original = stream.get_final_message()
    with client.messages.stream(**body) as stream:
        again = stream.get_final_message()
        assert stream.response.headers[CACHE] == "hit"
    assert len(upstream.requests) == 1
    assert _without_id(again.model_dump()) == _without_id(original.model_dump())


@pytest.mark.parametrize(
    "headers",
    [{"cache-control": "no-cache"}, {CACHE: "bypass"}],
    ids=["cache-control no-cache", "x-anthropic-router-cache bypass"],
)
def test_bypass_skips_the_lookup_and_stores_the_fresh_answer(
    router: RouterProcess, upstream, headers: dict[str, str]
) -> None:
    body = _body()
    upstream.enqueue(replies.completion("old"), replies.completion("fresh"))
    assert _post(router, body).headers[CACHE] == "miss"
    bypassed = _post(router, body, **headers)
    assert bypassed.headers[CACHE] == "bypass" and bypassed.json()["content"][0]["text"] == "fresh"
    after = _post(router, body)
    assert after.headers[CACHE] == "hit" and after.json()["content"][0]["text"] == "fresh"
    assert len(upstream.requests) == 2


def test_no_store_skips_the_lookup_and_the_store(router: RouterProcess, upstream) -> None:
    body = _body()
    upstream.enqueue(replies.completion("one"), replies.completion("two"), replies.completion("3"))
    assert _post(router, body).headers[CACHE] == "miss"
    skipped = _post(router, body, **{"cache-control": "no-store"})
    assert skipped.headers[CACHE] == "bypass" and skipped.json()["content"][0]["text"] == "two"
    assert _post(router, body).json()["content"][0]["text"] == "one"  # "two" was not stored
    other = _body()
    assert _post(router, other, **{CACHE: "no-store"}).headers[CACHE] == "bypass"
    assert _post(router, other).headers[CACHE] == "miss"
    assert len(upstream.requests) == 4


def test_server_tools_are_never_answered_from_the_cache(router: RouterProcess, upstream) -> None:
    body = _body(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}])
    first, second = _post(router, body), _post(router, body)
    assert first.status_code == second.status_code == 200
    assert first.headers[CACHE] == second.headers[CACHE] == "bypass"
    assert len(upstream.requests) == 2


def test_metadata_and_stream_do_not_split_the_key(router: RouterProcess, upstream) -> None:
    body = _body()
    upstream.enqueue(replies.completion("shared"))
    _post(router, {**body, "metadata": {"user_id": "session-1"}})
    again = _post(router, {**body, "metadata": {"user_id": "session-2"}, "stream": False})
    assert again.headers[CACHE] == "hit" and len(upstream.requests) == 1


# -- what is never stored ---------------------------------------------------------------


def test_an_upstream_error_is_never_stored(router: RouterProcess, upstream) -> None:
    body = _body()
    upstream.enqueue(replies.error(400, "bad thing"), replies.completion("fine"))
    assert _post(router, body).status_code == 400
    retried = _post(router, body)
    assert retried.status_code == 200 and retried.headers[CACHE] == "miss"
    assert len(upstream.requests) == 2


STREAM_FAILURES = {
    "cut": replies.truncated_sse(oc.text_chunks("cut short", 3)),
    "error chunk": replies.sse(
        [*oc.text_chunks("half", 2), {"error": {"message": "overloaded", "code": 529}}]
    ),
    "ended without finish or [DONE]": replies.sse(oc.text_chunks("no end", 2), done=False),
}


@pytest.mark.parametrize("failure", STREAM_FAILURES.values(), ids=STREAM_FAILURES.keys())
def test_a_failed_stream_is_never_stored(router: RouterProcess, upstream, failure) -> None:
    body = _body(stream=True)
    upstream.enqueue(failure, _text_stream("whole this time"))
    events = _events(_post(router, body))
    assert events[-1]["type"] == "error"
    retried = _post(router, body)
    assert retried.headers[CACHE] == "miss" and len(upstream.requests) == 2
    assert accumulate(_events(retried))["content"][0]["text"] == "whole this time"
    assert _post(router, {**body, "stream": False}).headers[CACHE] == "hit"


def test_a_client_that_leaves_mid_stream_leaves_nothing_stored(
    router: RouterProcess, upstream
) -> None:
    body = _body(stream=True)
    slow = replies.sse(
        [
            *oc.text_chunks("a slow answer that takes a while", 6),
            oc.finish_chunk(),
            oc.usage_chunk(),
        ],
        delay=0.3,
    )
    upstream.enqueue(slow)
    with httpx.stream("POST", f"{router.url}/v1/messages", json=body, timeout=30) as response:
        assert response.headers[CACHE] == "miss"
        next(response.iter_bytes())  # message_start arrived; then the client goes away
    deadline = time.monotonic() + 10
    while not upstream.requests[0].disconnected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.requests[0].disconnected
    upstream.enqueue(_text_stream("complete"))
    again = _post(router, body)
    assert again.headers[CACHE] == "miss" and len(upstream.requests) == 2
    assert accumulate(_events(again))["content"][0]["text"] == "complete"


# -- single flight ----------------------------------------------------------------------


async def _concurrently(router: RouterProcess, body: dict[str, Any], n: int) -> list[Any]:
    """n identical requests at once: (cache header, Message) each, or the exception."""
    async with anthropic.AsyncAnthropic(
        base_url=router.url, api_key="test-client-key", max_retries=0, timeout=30
    ) as sdk:

        async def one() -> tuple[str, Any]:
            raw = await sdk.messages.with_raw_response.create(**body)
            return raw.headers[CACHE], await raw.parse()

        return await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)


@pytest.mark.anyio
async def test_twenty_identical_concurrent_requests_make_one_upstream_call(
    router: RouterProcess, upstream
) -> None:
    body = _body()
    upstream.enqueue(replies.delayed(2.0, replies.completion("only once")))  # all 20 arrive
    answers = await _concurrently(router, body, 20)
    assert len(upstream.requests) == 1
    assert sorted(header for header, _ in answers) == ["hit"] * 19 + ["miss"]
    assert {message.content[0].text for _, message in answers} == {"only once"}
    assert len({message.id for _, message in answers}) == 20


@pytest.mark.anyio
async def test_concurrent_streams_wait_for_the_leader_and_replay_its_answer(
    router: RouterProcess, upstream
) -> None:
    body = _body(stream=True)
    upstream.enqueue(
        replies.sse(
            [*oc.text_chunks("led once", 2), oc.finish_chunk(), oc.usage_chunk()], delay=0.2
        )
    )
    async with httpx.AsyncClient(timeout=30) as http:
        posts = [http.post(f"{router.url}/v1/messages", json=body) for _ in range(5)]
        answers = await asyncio.gather(*posts)
    assert len(upstream.requests) == 1
    for answer in answers:
        events = _events(answer)
        check_grammar(events)
        assert accumulate(events)["content"][0]["text"] == "led once"


@pytest.mark.anyio
async def test_when_the_leader_fails_the_waiters_go_on_themselves(
    router: RouterProcess, upstream
) -> None:
    body = _body()
    upstream.enqueue(replies.delayed(1.5, replies.error(400, "leader failed")))
    upstream.enqueue(replies.delayed(0.3, replies.completion("second leader")))
    answers = await _concurrently(router, body, 5)
    failed = [a for a in answers if isinstance(a, anthropic.BadRequestError)]
    served = [a for a in answers if not isinstance(a, Exception)]
    assert len(failed) == 1 and len(served) == 4
    assert {message.content[0].text for _, message in served} == {"second leader"}
    assert len(upstream.requests) == 2


# -- TTL, the default, the record and metrics -------------------------------------------


def test_an_entry_expires_after_its_ttl(router_factory, upstream) -> None:
    # Long enough for the hit to land inside it on a loaded machine; the test waits it out.
    short = router_factory(env={**ON, "PROMPT_CACHE_TTL": "3"})
    body = _body()
    assert _post(short, body).headers[CACHE] == "miss"
    assert _post(short, body).headers[CACHE] == "hit"
    time.sleep(3.2)
    assert _post(short, body).headers[CACHE] == "miss"
    assert len(upstream.requests) == 2


def test_the_cache_is_off_by_default(router_factory, upstream) -> None:
    plain = router_factory()
    body = _body()
    first, second = _post(plain, body), _post(plain, body)
    assert CACHE not in first.headers and CACHE not in second.headers
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(
    "env", [{"PROMPT_CACHING_ENABLE": "true"}, {**ON, "PROMPT_CACHING_ENABLE": "false"}]
)
def test_either_seed_name_turns_it_on_and_either_false_turns_it_off(
    router_factory, upstream, env
) -> None:
    started = router_factory(env=env)
    response = _post(started, _body())
    assert (CACHE in response.headers) == (env.get("PROMPT_CACHING_ENABLE") == "true")


def _records(logs: str) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return {line["request_id"]: line for line in lines if line.get("event") == "exchange"}


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_record_and_metrics_mark_hits_and_count_tokens_once(router_factory, upstream):
    observed = router_factory(env=ON)
    body = _body()
    upstream.enqueue(replies.completion("counted", usage=oc.usage_dict(40, 6)))
    miss, hit = _post(observed, body), _post(observed, body)
    bypass = _post(observed, body, **{"cache-control": "no-store"})
    observed.wait_for_log(bypass.headers["request-id"])
    records = _records(observed.logs())
    assert records[miss.headers["request-id"]]["cache"] == "miss"
    hit_record = records[hit.headers["request-id"]]
    assert hit_record["cache"] == "hit" and "cache" in hit_record["ms"]
    assert hit_record["usage"] == records[miss.headers["request-id"]]["usage"]
    assert hit_record["upstream_model"] == "anthropic/claude-sonnet-4.5"
    assert records[bypass.headers["request-id"]]["cache"] == "bypass"
    samples = _samples(httpx.get(f"{observed.url}/metrics").text)
    name = "anthropic_router_response_cache_requests_total"
    for result in ("hit", "miss", "bypass"):
        assert samples[(name, (("result", result),))] == 1
    tokens = samples[
        (
            "anthropic_router_tokens_total",
            (("kind", "input"), ("upstream_model", "anthropic/claude-sonnet-4.5")),
        )
    ]
    default_input = oc.usage_dict()["prompt_tokens"]
    assert tokens == 40 + default_input  # the miss and the no-store call; not the hit
    assert samples[("anthropic_router_response_cache_bytes", ())] > 0
    assert samples[("anthropic_router_response_cache_stored_bytes_total", ())] > 0
