"""Local OpenAI-compatible servers outside the conversion: start-up detection (servers.py)
against real loopback servers answering as each local server does, the routing file's
`server:` hint and OPENAI_COMPATIBLE_SERVER, and the usage estimate through the exchange seam
for upstreams that send no usage."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from anthropic_router.config import Settings
from anthropic_router.observability import Exchange, new_request_id
from anthropic_router.relay import Call, UpstreamRelay
from anthropic_router.routing import ModelMapError, Router, load_routing_file
from anthropic_router.servers import detect, detect_local, from_models, from_version, server_root
from anthropic_router.tokens import count_text, count_tokens, estimate_usage
from anthropic_router.wire.anthropic import parse_messages_request
from support.backends import OPENAI_COMPATIBLE_API_KEY
from support.grammar import check_grammar
from support.openai_chunks import finish_chunk, text_chunks, usage_chunk
from support.router import UPSTREAM_API_KEY, free_port
from support.upstream import FakeUpstream, error, json_reply, sse

JSON = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def models(*owners: str) -> JSON:
    return {
        "object": "list",
        "data": [{"id": f"m{i}", "owned_by": o} for i, o in enumerate(owners)],
    }


# -- detection, pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (models("llamacpp"), "llama.cpp"),
        (models("me"), "llama-cpp-python"),
        (models("vllm", "vllm"), "vllm"),
        (models("organization_owner"), "lmstudio"),
        (models("library", "library"), "ollama"),
        (models("library", "hf.co"), None),  # mixed namespaces: ask /api/version
        (models("openai"), None),
        (models(), None),
        ({"data": "nope"}, None),
        (None, None),
        ([1, 2], None),
    ],
)
def test_server_from_models(payload: Any, expected: str | None) -> None:
    found = from_models(payload)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(
    ("path", "payload", "expected"),
    [
        ("/api/version", {"version": "0.12.6"}, "ollama"),
        ("/version", {"version": "0.11.0"}, "vllm"),
        ("/api/v0/models", {"data": [{"id": "q", "type": "llm", "state": "loaded"}]}, "lmstudio"),
        ("/api/v0/models", {"data": [{"id": "q"}]}, None),
        ("/api/version", {"version": 3}, None),
        ("/version", None, None),
        ("/version", "0.11", None),
    ],
)
def test_server_from_version(path: str, payload: Any, expected: str | None) -> None:
    found = from_version(path, payload)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(
    ("base", "root"),
    [
        ("http://h:11434/v1", "http://h:11434"),
        ("http://h:11434/v1/", "http://h:11434"),
        ("http://h:8000/prefix/v1", "http://h:8000/prefix"),
        ("http://h:8000", "http://h:8000"),
    ],
)
def test_server_root(base: str, root: str) -> None:
    assert server_root(base) == root


# -- detection against loopback servers ----------------------------------------------------------


def local_settings(base_url: str, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,
        proxy_backend="OPENAI_COMPATIBLE",
        openai_compatible_base_url=base_url,
        big_model="qwen2.5-coder",
        openai_compatible_detect_timeout=2.0,
        **extra,
    )


async def detected(settings: Settings) -> tuple[str, str]:
    router = Router(settings)
    provider = router.local_provider()
    provider.open()
    try:
        return await detect(provider, settings.openai_compatible_detect_timeout)  # type: ignore[arg-type]
    finally:
        await provider.aclose()


# (replies by path, expected server, words of the reason)
DETECTIONS: list[tuple[dict[str, Any], str, str]] = [
    ({"/v1/models": json_reply(models("me"))}, "llama-cpp-python", "owned_by='me'"),
    ({"/v1/models": json_reply(models("llamacpp"))}, "llama.cpp", "owned_by='llamacpp'"),
    (
        {
            "/v1/models": json_reply(models("library", "hf.co")),
            "/api/version": json_reply({"version": "0.12.6"}),
        },
        "ollama",
        "/api/version answered version 0.12.6",
    ),
    (
        {
            "/v1/models": json_reply(models("someone")),
            "/api/version": error(404, "not found"),  # (the fake matches paths by suffix)
            "/version": json_reply({"version": "0.11.0"}),
        },
        "vllm",
        "/version answered version 0.11.0",
    ),
    (
        {"/api/v0/models": json_reply({"data": [{"id": "q", "state": "not-loaded"}]})},
        "lmstudio",
        "LM Studio's REST API",
    ),
    ({"/v1/models": error(401, "no key")}, "generic", "not recognised"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("replies", "server", "reason"), DETECTIONS)
async def test_detection(
    upstream: FakeUpstream, replies: dict[str, Any], server: str, reason: str
) -> None:
    for path, reply in replies.items():
        upstream.enqueue(reply, path=path)
    found = await detected(local_settings(f"{upstream.url}/v1"))
    assert found[0] == server and reason in found[1]
    assert all(r.method == "GET" for r in upstream.requests)


@pytest.mark.anyio
async def test_detection_of_a_server_that_is_not_there() -> None:
    found = await detected(local_settings(f"http://127.0.0.1:{free_port()}/v1"))
    assert found == (
        "generic",
        "no detection probe got a JSON answer (server down?): generic profile",
    )


@pytest.mark.anyio
async def test_detection_sends_the_configured_key(upstream: FakeUpstream) -> None:
    upstream.enqueue(json_reply(models("vllm")), path="/v1/models")
    await detected(
        local_settings(f"{upstream.url}/v1", openai_compatible_api_key=OPENAI_COMPATIBLE_API_KEY)
    )
    assert upstream.last.headers["authorization"] == f"Bearer {OPENAI_COMPATIBLE_API_KEY}"


@pytest.mark.anyio
async def test_detect_local_sets_the_profile_of_every_local_route(upstream: FakeUpstream) -> None:
    upstream.enqueue(json_reply(models("me")), path="/v1/models")
    router = Router(local_settings(f"{upstream.url}/v1"))
    before = router.resolve("claude-sonnet-4-5").targets[0]
    assert (before.server, before.options.capabilities.stream_usage) == ("generic", "include_usage")
    for provider in router.providers():
        provider.open()
    try:
        assert await detect_local(router, 2.0) == (
            "llama-cpp-python",
            "detected: /v1/models says owned_by='me'",
        )
    finally:
        for provider in router.providers():
            await provider.aclose()
    after = router.resolve("claude-sonnet-4-5").targets[0]
    assert (after.server, after.options.capabilities.stream_usage) == ("llama-cpp-python", "never")
    assert router.local_profiles()[0] == {
        "route": "claude-haiku-4-5",
        "model": "qwen2.5-coder",
        "server": "llama-cpp-python",
        "reason": "detected: /v1/models says owned_by='me'",
    }


# -- naming the server: setting and routing file --------------------------------------------------


def test_the_setting_names_the_server_and_skips_detection() -> None:
    router = Router(local_settings("http://127.0.0.1:9/v1", openai_compatible_server="LM-Studio"))
    target = router.resolve("claude-sonnet-4-5").targets[0]
    assert (target.server, target.server_reason) == (
        "lmstudio",
        "OPENAI_COMPATIBLE_SERVER=lmstudio",
    )
    assert router.needs_detection is False


def test_a_bad_server_setting_stops_start_up() -> None:
    with pytest.raises(ValidationError, match=r"unknown local server 'tgi' \(one of: generic"):
        local_settings("http://127.0.0.1:9/v1", openai_compatible_server="tgi")


ROUTES = """
routes:
  claude-sonnet-4-5:
    backend: openai_compatible
    model: qwen2.5-coder:7b
    server: ollama
  claude-haiku-4-5:
    backend: openai_compatible
    model: llama3.2
"""


def test_a_route_hint_wins_and_other_routes_still_detect(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    router = Router(local_settings("http://127.0.0.1:9/v1", model_map_file=path))
    hinted = router.resolve("claude-sonnet-4-5").targets[0]
    assert (hinted.server, hinted.server_reason) == ("ollama", "the route's server: hint")
    assert hinted.options.capabilities.tool_choice_forms == frozenset({"auto"})
    assert router.needs_detection is True  # claude-haiku-4-5 names no server
    router.set_detected("vllm", "detected: test")
    assert router.resolve("claude-haiku-4-5").targets[0].server == "vllm"
    assert router.resolve("claude-sonnet-4-5").targets[0].server == "ollama"


def test_no_detection_when_every_local_route_names_its_server(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routes:\n  '*':\n    backend: openai_compatible\n    model: m\n    server: vllm\n"
    )
    settings = Settings(
        _env_file=None,
        openrouter_api_key=UPSTREAM_API_KEY,
        openai_compatible_base_url="http://127.0.0.1:9/v1",
        model_map_file=path,
    )
    assert Router(settings).needs_detection is False


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  backend: openai_compatible\n  model: m\n  server: tgi\n", "unknown local server 'tgi'"),
        (
            "  backend: openrouter\n  model: m\n  server: vllm\n",
            "'server' applies to openai_compatible",
        ),
    ],
)
def test_bad_server_hints_name_the_entry(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(f"claude-x:\n{entry}")
    with pytest.raises(ModelMapError, match=message):
        load_routing_file(path, "openrouter")


# -- usage estimate --------------------------------------------------------------------------------

REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 50,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "Tell me about the sea."}],
}


def test_estimate_usage_is_the_offline_count() -> None:
    usage = estimate_usage(REQUEST, "qwen2.5-coder", "The sea is wide and deep.")
    assert usage == {
        "prompt_tokens": count_tokens(REQUEST, "qwen2.5-coder"),
        "completion_tokens": count_text("The sea is wide and deep.", "qwen2.5-coder"),
    }
    assert usage["prompt_tokens"] > 5 and usage["completion_tokens"] == 7


def local_call(router: Router, stream: bool) -> Call:
    request = parse_messages_request({**REQUEST, "stream": stream})
    record = Exchange(new_request_id(), "POST", "/v1/messages")
    return Call(request, router.resolve(request["model"]), record, stream=stream)


async def relay_once(settings: Settings, stream: bool) -> tuple[Any, Call]:
    router = Router(settings)
    for provider in router.providers():
        provider.open()
    try:
        call = local_call(router, stream)
        reply = await UpstreamRelay(settings).run(call)
        if reply.events is None:
            return reply.message, call
        return [event async for batch in reply.events for event in batch], call
    finally:
        for provider in router.providers():
            await provider.aclose()


NO_USAGE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "qwen2.5-coder",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The sea."},
            "finish_reason": "stop",
        }
    ],
}


@pytest.mark.anyio
async def test_an_answer_without_usage_gets_the_estimate(upstream: FakeUpstream) -> None:
    upstream.enqueue(json_reply(NO_USAGE))
    message, call = await relay_once(local_settings(f"{upstream.url}/v1"), stream=False)
    expected = {"input_tokens": count_tokens(REQUEST, "qwen2.5-coder"), "output_tokens": 3}
    assert {k: message["usage"][k] for k in expected} == expected
    assert call.record.usage_estimated is True
    assert call.record.record()["usage_estimated"] is True


@pytest.mark.anyio
async def test_a_stream_without_usage_gets_the_estimate(upstream: FakeUpstream) -> None:
    upstream.enqueue(sse([*text_chunks("The sea is wide."), finish_chunk()]))
    events, call = await relay_once(local_settings(f"{upstream.url}/v1"), stream=True)
    check_grammar(events)
    [delta] = [e for e in events if e["type"] == "message_delta"]
    assert delta["usage"]["input_tokens"] == count_tokens(REQUEST, "qwen2.5-coder")
    assert delta["usage"]["output_tokens"] == count_text("The sea is wide.", "qwen2.5-coder")
    assert call.record.usage_estimated is True and call.record.usage == delta["usage"]


@pytest.mark.anyio
async def test_real_usage_is_never_replaced(upstream: FakeUpstream) -> None:
    upstream.enqueue(sse([*text_chunks("The sea."), finish_chunk(), usage_chunk(40, 2)]))
    events, call = await relay_once(local_settings(f"{upstream.url}/v1"), stream=True)
    [delta] = [e for e in events if e["type"] == "message_delta"]
    assert (delta["usage"]["input_tokens"], delta["usage"]["output_tokens"]) == (40, 2)
    assert call.record.usage_estimated is False
    assert "usage_estimated" not in call.record.record()


@pytest.mark.anyio
async def test_llama_cpp_python_gets_a_uuid_request_id_and_no_stream_options(
    upstream: FakeUpstream,
) -> None:
    upstream.enqueue(sse([*text_chunks("ok"), finish_chunk()]))
    settings = local_settings(f"{upstream.url}/v1", openai_compatible_server="llama-cpp-python")
    _, call = await relay_once(settings, stream=True)
    sent = upstream.last
    request_id = sent.headers["x-request-id"]
    assert uuid.UUID(request_id).hex.startswith(call.record.request_id.removeprefix("req_"))
    assert sent.json["stream"] is True and "stream_options" not in sent.json


def test_the_estimate_is_cheap() -> None:
    # Not a timing assertion: the figure is printed for docs/14 and the report (pytest -s).
    # A Claude Code-sized request: 40 KB of system prompt and tool schemas.
    big = {
        **REQUEST,
        "system": "You are Claude Code. " * 2000,
        "tools": [
            {
                "name": f"Tool{i}",
                "description": "Does a thing. " * 40,
                "input_schema": {"type": "object"},
            }
            for i in range(20)
        ],
    }
    for request, label in ((REQUEST, "small request"), (big, "40 KB request")):
        estimate_usage(request, "qwen2.5-coder", "warm up")
        started = time.perf_counter()
        for _ in range(20):
            usage = estimate_usage(request, "qwen2.5-coder", "The sea is wide. " * 50)
        micros = (time.perf_counter() - started) / 20 * 1e6
        print(f"estimate_usage, {label}: {micros:.0f} us ({usage})")
        assert usage["prompt_tokens"] > 0


def test_no_local_profiles_without_a_local_route() -> None:
    settings = Settings(_env_file=None, openrouter_api_key=UPSTREAM_API_KEY)
    router = Router(settings)
    assert router.needs_detection is False and router.local_profiles() == []
    assert router.resolve("claude-sonnet-4-5").targets[0].server is None
