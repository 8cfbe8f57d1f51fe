"""The fake upstream itself, driven by plain urllib and aiohttp clients over loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest

from support.openai_chunks import DEFAULT_TEXT, split_text
from support.upstream import (
    FakeUpstream,
    chunk,
    close_connection,
    completion,
    completion_dict,
    error,
    finish_chunk,
    hang,
    json_reply,
    pause,
    raw,
    reasoning_chunks,
    sse,
    text_chunks,
    tool_call,
    tool_call_chunks,
    truncated_sse,
    usage_chunk,
)

CHAT = "/api/v1/chat/completions"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST `body` as JSON (GET when None); returns status, lower-case headers and body."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"content-type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=all_headers)
    try:
        with DIRECT.open(request, timeout=5) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as failure:
        return failure.code, _lower(failure.headers.items()), failure.read()


def _lower(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def data_events(body: bytes) -> list[str]:
    """The payloads of the `data:` lines of an SSE body."""
    return [line[6:] for line in body.decode().split("\n") if line.startswith("data: ")]


def streamed_text(events: list[str]) -> str:
    chunks = [json.loads(event) for event in events if event != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# Default replies.


@pytest.mark.parametrize("path", [CHAT, "/serving-endpoints/claude/invocations"])
def test_default_completion_echoes_model(upstream: FakeUpstream, path: str) -> None:
    status, headers, body = call(upstream.url + path, {"model": "x/y", "messages": []})
    reply = json.loads(body)
    assert (status, headers["content-type"]) == (200, "application/json")
    assert reply["object"] == "chat.completion"
    assert reply["model"] == "x/y"
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": DEFAULT_TEXT}
    assert reply["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_default_stream_is_sse_with_finish_usage_and_done(upstream: FakeUpstream) -> None:
    status, headers, body = call(upstream.url + CHAT, {"model": "m", "stream": True})
    events = data_events(body)
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    assert headers["transfer-encoding"] == "chunked"
    assert streamed_text(events) == DEFAULT_TEXT
    assert events[-1] == "[DONE]"
    finish, usage = json.loads(events[-3]), json.loads(events[-2])
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 17


def test_default_models_list(upstream: FakeUpstream) -> None:
    status, _, body = call(upstream.url + "/api/v1/models")
    models = json.loads(body)["data"]
    assert status == 200 and len(models) == 3
    assert models[0]["id"] == "openai/gpt-4o-mini"
    assert all({"id", "name", "context_length", "created"} <= model.keys() for model in models)


def test_unknown_path_is_404_error_envelope(upstream: FakeUpstream) -> None:
    status, _, body = call(upstream.url + "/nowhere")
    assert status == 404
    assert json.loads(body)["error"]["code"] == 404


# Script and records.


def test_scripted_replies_are_used_in_order_then_defaults(upstream: FakeUpstream) -> None:
    upstream.enqueue(error(429, "slow down", headers={"Retry-After": "3"}), completion("second"))
    assert upstream.pending == 2
    first = call(upstream.url + CHAT, {"n": 1})
    second = call(upstream.url + CHAT, {"n": 2})
    third = call(upstream.url + CHAT, {"n": 3})
    assert first[0] == 429 and first[1]["retry-after"] == "3"
    assert json.loads(first[2]) == {
        "error": {"message": "slow down", "type": "invalid_request_error", "code": 429}
    }
    assert json.loads(second[2])["choices"][0]["message"]["content"] == "second"
    assert json.loads(third[2])["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert [r.json["n"] for r in upstream.requests] == [1, 2, 3]
    assert upstream.pending == 0


def test_enqueue_with_path_only_serves_matching_requests(upstream: FakeUpstream) -> None:
    upstream.enqueue(completion("for chat"), path="/chat/completions")
    _, _, models = call(upstream.url + "/api/v1/models")
    _, _, chat = call(upstream.url + CHAT, {})
    assert "data" in json.loads(models)
    assert json.loads(chat)["choices"][0]["message"]["content"] == "for chat"


def test_request_is_recorded(upstream: FakeUpstream) -> None:
    call(upstream.url + CHAT + "?a=1&b=", {"model": "m"}, {"Authorization": "Bearer k"})
    request = upstream.wait_for_requests(1)[0]
    assert (request.method, request.path, request.query) == ("POST", CHAT, {"a": "1", "b": ""})
    assert request.headers["authorization"] == "Bearer k"
    assert request.body == request.json == {"model": "m"}


def test_non_json_body_is_kept_as_bytes(upstream: FakeUpstream) -> None:
    request = urllib.request.Request(upstream.url + "/upload", data=b"\x00not json")
    with pytest.raises(urllib.error.HTTPError):
        DIRECT.open(request, timeout=5)
    recorded = upstream.last
    assert (recorded.body, recorded.json, recorded.raw) == (b"\x00not json", None, b"\x00not json")


def test_clear_and_wait_timeout(upstream: FakeUpstream) -> None:
    upstream.enqueue(completion("unused"))
    call(upstream.url + CHAT, {})
    upstream.enqueue(completion("unused"))
    upstream.clear()
    assert (upstream.requests, upstream.pending) == ([], 0)
    with pytest.raises(AssertionError, match="expected 1 upstream requests"):
        upstream.wait_for_requests(1, timeout=0.1)


# Reply builders on the wire.


def test_sse_sends_dicts_as_data_and_str_bytes_verbatim(upstream: FakeUpstream) -> None:
    upstream.enqueue(sse([": OPENROUTER PROCESSING\n\n", {"a": 1}, b"event: x\ndata: y\n\n"]))
    _, _, body = call(upstream.url + CHAT, {})
    assert body == (
        b': OPENROUTER PROCESSING\n\ndata: {"a": 1}\n\nevent: x\ndata: y\n\ndata: [DONE]\n\n'
    )


def test_sse_without_done_and_with_status_and_headers(upstream: FakeUpstream) -> None:
    upstream.enqueue(sse([{"a": 1}], done=False, status=201, headers={"X-Generation-Id": "g1"}))
    status, headers, body = call(upstream.url + CHAT, {})
    assert (status, headers["x-generation-id"], body) == (201, "g1", b'data: {"a": 1}\n\n')


def test_raw_and_json_replies(upstream: FakeUpstream) -> None:
    upstream.enqueue(raw(502, b"<html>bad gateway</html>", "text/html"), json_reply([1], 202))
    assert call(upstream.url + CHAT, {})[::2] == (502, b"<html>bad gateway</html>")
    assert call(upstream.url + CHAT, {})[::2] == (202, b"[1]")


# Chunk and body builders.


@pytest.mark.parametrize(("text", "n"), [("Hello", 3), ("Hi", 5), ("", 2), ("abcdef", 1)])
def test_split_text_keeps_text(text: str, n: int) -> None:
    pieces = split_text(text, n)
    assert "".join(pieces) == text and len(pieces) <= n


def test_text_and_reasoning_chunks() -> None:
    text = text_chunks("abc", 3, model="m")
    assert [c["choices"][0]["delta"] for c in text] == [
        {"role": "assistant", "content": "a"},
        {"content": "b"},
        {"content": "c"},
    ]
    assert {c["object"] for c in text} == {"chat.completion.chunk"} and text[0]["model"] == "m"
    reasoning = reasoning_chunks("xy", 2)
    assert [c["choices"][0]["delta"].get("reasoning") for c in reasoning] == ["x", "y"]


def test_tool_call_chunks_carry_id_and_name_first_only() -> None:
    chunks = tool_call_chunks(1, "call_1", "get_weather", '{"city": "Paris"}', 3)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks]
    assert calls[0] == {
        "index": 1,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(call.keys() == {"index", "function"} for call in calls[1:])
    assert "".join(call["function"]["arguments"] for call in calls) == '{"city": "Paris"}'


def test_finish_usage_and_completion_builders() -> None:
    assert finish_chunk("length")["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "length",
    }
    usage = usage_chunk(100, 20, cached=80, cost=0.5)["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 80 and usage["cost"] == 0.5
    body = completion_dict(tool_calls=[tool_call("c1", "f", {"x": 1})], finish_reason="tool_calls")
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert chunk({"content": "z"})["choices"][0]["finish_reason"] is None


# Streaming, keep-alive, concurrency and faults, through aiohttp (the router's client).


async def timed_lines(response: aiohttp.ClientResponse) -> list[tuple[float, bytes]]:
    """Non-empty body lines with their arrival time, relative to the response headers."""
    start, lines = time.monotonic(), []
    async for line in response.content:
        if line.strip():
            lines.append((time.monotonic() - start, line.strip()))
    return lines


@pytest.mark.anyio
async def test_sse_chunks_arrive_with_delays(upstream: FakeUpstream) -> None:
    upstream.enqueue(sse(text_chunks("abcd", 4), delay=0.15))
    async with (
        aiohttp.ClientSession() as session,
        session.post(upstream.url + CHAT, json={}) as response,
    ):
        lines = await timed_lines(response)
    times = [at for at, _ in lines]
    assert len(lines) == 5 and lines[-1][1] == b"data: [DONE]"
    assert times[0] < 0.1
    assert all(later - earlier > 0.1 for earlier, later in itertools.pairwise(times))


@pytest.mark.anyio
async def test_pause_delays_first_chunk_after_headers(upstream: FakeUpstream) -> None:
    upstream.enqueue(sse([pause(0.3), {"a": 1}]))
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.post(upstream.url + CHAT, json={}) as response:
            headers_at = time.monotonic() - started
            lines = await timed_lines(response)
    assert headers_at < 0.2
    assert lines[0][0] > 0.25


@pytest.mark.anyio
async def test_keep_alive_connection_is_reused_after_json_and_sse(upstream: FakeUpstream) -> None:
    upstream.enqueue(completion("one"), sse(text_chunks("two", 2)), error(400, "three"))
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(4):
            async with session.post(upstream.url + CHAT, json={}) as response:
                await response.read()
    ports = {request.client_port for request in upstream.requests}
    assert len(upstream.requests) == 4 and len(ports) == 1


@pytest.mark.anyio
async def test_concurrent_requests_are_served_in_parallel(upstream: FakeUpstream) -> None:
    upstream.enqueue(*[sse(text_chunks("slow", 3), delay=0.3) for _ in range(3)])

    async def fetch(session: aiohttp.ClientSession) -> bytes:
        async with session.post(upstream.url + CHAT, json={}) as response:
            return await response.read()

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        bodies = await asyncio.gather(*(fetch(session) for _ in range(3)))
    assert time.monotonic() - started < 1.8  # about 0.9 s each when run in parallel
    assert all(body.endswith(b"data: [DONE]\n\n") for body in bodies)


@pytest.mark.anyio
async def test_close_connection_drops_without_response(upstream: FakeUpstream) -> None:
    upstream.enqueue(close_connection())
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post(upstream.url + CHAT, json={})


@pytest.mark.anyio
async def test_hang_sends_nothing(upstream: FakeUpstream) -> None:
    upstream.enqueue(hang(1.0))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        with pytest.raises(TimeoutError):
            await session.post(upstream.url + CHAT, json={})


@pytest.mark.anyio
async def test_truncated_sse_cuts_the_body(upstream: FakeUpstream) -> None:
    upstream.enqueue(truncated_sse(text_chunks("partial", 2)))
    received = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(upstream.url + CHAT, json={}) as response,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in response.content.iter_any():
                received += data
    assert b'"content": "part"' in received
    assert b"[DONE]" not in received


@pytest.mark.anyio
async def test_client_disconnect_mid_stream_is_recorded(upstream: FakeUpstream) -> None:
    upstream.enqueue(sse(text_chunks("x" * 20, 20), delay=0.05))
    async with aiohttp.ClientSession() as session:
        response = await session.post(upstream.url + CHAT, json={})
        await response.content.readline()
        response.close()
    deadline = time.monotonic() + 3
    while not upstream.last.disconnected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert upstream.last.disconnected


@pytest.mark.anyio
async def test_chunked_request_body_is_recorded(upstream: FakeUpstream) -> None:
    async def parts() -> Any:
        yield b'{"stream": '
        yield b"false}"

    async with (
        aiohttp.ClientSession() as session,
        session.post(upstream.url + CHAT, data=parts()) as response,
    ):
        await response.read()
    assert upstream.last.headers["transfer-encoding"] == "chunked"
    assert upstream.last.json == {"stream": False}


@pytest.mark.anyio
async def test_stop_is_prompt_with_hanging_reply_and_idle_keep_alive() -> None:
    with FakeUpstream() as fake:
        fake.enqueue(completion(), hang(30))
        async with aiohttp.ClientSession() as idle, aiohttp.ClientSession() as waiting:
            async with idle.post(fake.url + CHAT, json={}) as response:
                await response.read()  # leaves an idle pooled connection
            hanging = asyncio.ensure_future(waiting.post(fake.url + CHAT, json={}))
            await asyncio.to_thread(fake.wait_for_requests, 2)
            started = time.monotonic()
            await asyncio.to_thread(fake.stop)
            assert time.monotonic() - started < 2
            with pytest.raises(aiohttp.ClientError):
                await hanging


def test_fixed_port_and_restart() -> None:
    with FakeUpstream() as first:
        port = first.port
    with FakeUpstream(port) as second:
        assert second.url == f"http://127.0.0.1:{port}"
        assert call(second.url + "/api/v1/models")[0] == 200
