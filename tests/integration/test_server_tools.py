"""Server tools run by the router, through the real server with the official SDK: the model
is a scripted OpenAI upstream (a tool call, then text), web search goes to loopback fakes of
SearXNG, Brave, Tavily and OpenRouter's web plugin, web fetch to a loopback web server, MCP
to a real `mcp` SDK server (see test_mcp_connector.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from support import backends, replies
from support import openai_chunks as oc
from support.grammar import accumulate, check_grammar
from support.router import RouterProcess
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

MODEL = "anthropic/claude-sonnet-4.5"
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
FETCH_TOOL = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}

SEARXNG_ANSWER = {
    "query": "router",
    "number_of_results": 2,
    "results": [
        {
            "url": "https://example.org/a",
            "title": "Result A",
            "content": "Anthropic-compatible routers translate requests.",
            "engine": "duckduckgo",
            "publishedDate": "2026-11-01T00:00:00",
        },
        {
            "url": "https://blocked.example.net/b",
            "title": "Result B",
            "content": "A result from a blocked domain.",
            "engine": "bing",
        },
    ],
}


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeUpstream]:
    """The search provider (and web site) side: a second loopback server."""
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_provider(provider: FakeUpstream) -> None:
    provider.clear()


@pytest.fixture(scope="module")
def router(upstream: FakeUpstream, provider: FakeUpstream) -> Iterator[RouterProcess]:
    env = {"SEARXNG_URL": provider.url, "WEB_FETCH_ALLOW_PRIVATE": "true"}
    with RouterProcess(upstream.url, env) as process:
        yield process


def _search_call(query: str, call_id: str = "call_s1") -> replies.Reply:
    call = oc.tool_call(call_id, "web_search", {"query": query})
    return replies.completion(tool_calls=[call], finish_reason="tool_calls")


def _search_call_stream(query: str, call_id: str = "call_s1") -> replies.Reply:
    chunks = oc.tool_call_chunks(0, call_id, "web_search", json.dumps({"query": query}))
    return replies.sse([*chunks, oc.finish_chunk("tool_calls"), oc.usage_chunk()])


def _text_stream(text: str) -> replies.Reply:
    return replies.sse([*oc.text_chunks(text, 4), oc.finish_chunk("stop"), oc.usage_chunk()])


def _stream_events(router: RouterProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The raw SSE events of a streamed request (grammar-checked by the caller)."""
    events = []
    with httpx.stream(
        "POST",
        f"{router.url}/v1/messages",
        json={**body, "stream": True},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_web_search_non_streaming(
    client: anthropic.Anthropic, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    provider.enqueue(replies.json_reply(SEARXNG_ANSWER), path="/search")
    upstream.enqueue(
        _search_call("anthropic router"),
        replies.completion("Routers translate requests [1]. That is all."),
    )
    tool = {**SEARCH_TOOL, "blocked_domains": ["example.net"]}
    message = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[tool],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "What do routers do?"}],
    )
    kinds = [block.type for block in message.content]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text", "text"]
    use, result, cited, rest = message.content
    assert use.type == "server_tool_use" and use.name == "web_search"
    assert use.input == {"query": "anthropic router"}
    assert result.type == "web_search_tool_result" and result.tool_use_id == use.id
    assert isinstance(result.content, list)
    assert [r.url for r in result.content] == ["https://example.org/a"]  # blocked one filtered
    assert result.content[0].title == "Result A" and result.content[0].encrypted_content
    assert cited.type == "text" and cited.text == "Routers translate requests"
    assert cited.citations and cited.citations[0].type == "web_search_result_location"
    assert cited.citations[0].url == "https://example.org/a"
    assert cited.citations[0].cited_text.startswith("Anthropic-compatible routers")
    assert rest.type == "text" and rest.text == ". That is all." and not rest.citations
    assert message.stop_reason == "end_turn"
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 1
    # The provider got the query; the model got the numbered results as a tool result.
    assert provider.last.query["q"] == "anthropic router"
    assert provider.last.query["format"] == "json"
    second = upstream.requests[1].json
    tool_message = next(m for m in second["messages"] if m["role"] == "tool")
    assert "[1] Result A" in tool_message["content"]
    assert "blocked.example.net" not in tool_message["content"]
    assert [t["function"]["name"] for t in second["tools"]] == ["web_search"]


def test_web_search_streaming_grammar_and_order(
    router: RouterProcess, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    provider.enqueue(replies.json_reply(SEARXNG_ANSWER), path="/search")
    upstream.enqueue(_search_call_stream("router"), _text_stream("Found it [1]."))
    events = _stream_events(
        router,
        {
            "model": MODEL,
            "max_tokens": 100,
            "tools": [SEARCH_TOOL],
            "messages": [{"role": "user", "content": "search"}],
        },
    )
    check_grammar(events)
    message = accumulate(events)
    kinds = [block["type"] for block in message["content"]]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text", "text"]
    assert message["content"][0]["input"] == {"query": "router"}
    assert message["content"][2]["citations"][0]["url"] == "https://example.org/a"
    assert message["content"][3]["text"] == "."
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["server_tool_use"] == {
        "web_search_requests": 1,
        "web_fetch_requests": 0,
    }


def _ask(client: anthropic.Anthropic, tools: list[Any], text: str = "go", **kw: Any) -> Any:
    return client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=tools,
        messages=[{"role": "user", "content": text}],
        **kw,
    )


def test_max_uses_exceeded_is_an_error_block(
    client: anthropic.Anthropic, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    provider.enqueue(replies.json_reply(SEARXNG_ANSWER), path="/search")
    twice = [
        oc.tool_call("call_1", "web_search", {"query": "one"}),
        oc.tool_call("call_2", "web_search", {"query": "two"}),
    ]
    upstream.enqueue(
        replies.completion(tool_calls=twice, finish_reason="tool_calls"),
        replies.completion("Only one search was allowed."),
    )
    message = _ask(client, [{**SEARCH_TOOL, "max_uses": 1}])
    kinds = [block.type for block in message.content]
    assert kinds == [
        "server_tool_use",
        "web_search_tool_result",
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    second = message.content[3]
    assert second.content.type == "web_search_tool_result_error"
    assert second.content.error_code == "max_uses_exceeded"
    assert message.usage.server_tool_use.web_search_requests == 1
    assert len(provider.requests) == 1  # the refused search never reached the provider


def test_client_tools_still_return_to_the_client(
    client: anthropic.Anthropic, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    provider.enqueue(replies.json_reply(SEARXNG_ANSWER), path="/search")
    calls = [
        oc.tool_call("call_1", "web_search", {"query": "weather"}),
        oc.tool_call("call_2", "get_weather", {"city": "Paris"}),
    ]
    upstream.enqueue(replies.completion(tool_calls=calls, finish_reason="tool_calls"))
    weather = {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    message = _ask(client, [SEARCH_TOOL, weather])
    kinds = [block.type for block in message.content]
    assert kinds == ["server_tool_use", "web_search_tool_result", "tool_use"]
    assert message.content[2].name == "get_weather"
    assert message.content[2].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    assert len(upstream.requests) == 1  # the client runs its tool before the next turn

    # The client sends the whole turn back with its tool result: the model sees one history.
    upstream.enqueue(replies.completion("It is sunny [1]."))
    follow = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[SEARCH_TOOL, weather],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": message.content[2].id, "content": "sun"}
                ],
            },
        ],
    )
    assert follow.content[0].type == "text" and follow.stop_reason == "end_turn"
    sent = upstream.requests[1].json["messages"]
    roles = [m["role"] for m in sent]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]
    assert "[1] Result A" in sent[2]["content"]  # the search result, recovered from the history
    assert sent[1]["tool_calls"][0]["function"]["name"] == "web_search"


def test_pause_turn_after_max_iterations(
    router_factory: Any, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    router = router_factory({"SEARXNG_URL": provider.url, "SERVER_TOOL_MAX_ITERATIONS": "1"})
    provider.enqueue(*[replies.json_reply(SEARXNG_ANSWER)] * 2, path="/search")
    upstream.enqueue(_search_call("one"), _search_call("two", "call_s2"))
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        message = _ask(client, [SEARCH_TOOL])
    kinds = [block.type for block in message.content]
    assert kinds == ["server_tool_use", "web_search_tool_result"]
    assert message.stop_reason == "pause_turn"
    assert len(upstream.requests) == 2 and len(provider.requests) == 1


def test_no_search_provider_is_a_visible_unavailable_error(
    router_factory: Any, upstream: FakeUpstream
) -> None:
    router = router_factory({"WEB_SEARCH_PROVIDER": "none"})
    upstream.enqueue(_search_call("x"), replies.completion("Search is unavailable."))
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        message = _ask(client, [SEARCH_TOOL])
    result = message.content[1]
    assert result.type == "web_search_tool_result"
    assert result.content.type == "web_search_tool_result_error"
    assert result.content.error_code == "unavailable"
    tool_message = next(m for m in upstream.requests[1].json["messages"] if m["role"] == "tool")
    assert "unavailable" in tool_message["content"]


def test_server_tools_disabled_is_a_400_naming_the_tool(
    router_factory: Any, upstream: FakeUpstream
) -> None:
    router = router_factory({"SERVER_TOOLS_ENABLE": "false"})
    with (
        anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client,
        pytest.raises(anthropic.BadRequestError) as raised,
    ):
        _ask(client, [SEARCH_TOOL])
    assert "web_search_20250305" in str(raised.value)
    assert "SERVER_TOOLS_ENABLE" in str(raised.value)
    assert upstream.requests == []


def test_tool_calls_in_the_exchange_record_and_metrics(
    router: RouterProcess,
    client: anthropic.Anthropic,
    upstream: FakeUpstream,
    provider: FakeUpstream,
) -> None:
    provider.enqueue(replies.error(503, "down"), path="/search")
    upstream.enqueue(_search_call("metrics"), replies.completion("No luck."))
    _ask(client, [SEARCH_TOOL])
    line = router.wait_for_log('"server_tools"')
    assert '"tool": "web_search"' in line or '"tool":"web_search"' in line
    assert "unavailable" in line
    metrics = httpx.get(f"{router.url}/metrics").text
    assert (
        'anthropic_router_server_tool_calls_total{outcome="unavailable",tool="web_search"}'
        in metrics
    )
    assert "anthropic_router_server_tool_duration_seconds_bucket" in metrics


BRAVE_ANSWER = {
    "type": "search",
    "query": {"original": "router"},
    "web": {
        "type": "search",
        "results": [
            {
                "title": "Brave A",
                "url": "https://brave.example/a",
                "description": "A <strong>router</strong> result.",
                "page_age": "2026-10-01T00:00:00",
                "age": "October 1, 2026",
            }
        ],
    },
}
TAVILY_ANSWER = {
    "query": "router",
    "results": [
        {
            "title": "Tavily A",
            "url": "https://tavily.example/a",
            "content": "A router result from Tavily.",
            "score": 0.9,
            "published_date": "2026-09-01",
        }
    ],
    "response_time": 0.5,
}
OPENROUTER_WEB_ANSWER = {
    "id": "gen-1",
    "object": "chat.completion",
    "model": "openai/gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {
                "role": "assistant",
                "content": "Routers route [openrouter.example](https://openrouter.example/a).",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "url": "https://openrouter.example/a",
                            "title": "OpenRouter A",
                            "content": "A router result found by OpenRouter's web plugin.",
                            "start_index": 15,
                            "end_index": 60,
                        },
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
}


@pytest.mark.parametrize("name", ["brave", "tavily"])
def test_search_providers(
    name: str, router_factory: Any, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    env = {
        "brave": {"BRAVE_API_KEY": "test-brave-key", "BRAVE_BASE_URL": f"{provider.url}/res/v1"},
        "tavily": {"TAVILY_API_KEY": "test-tavily-key", "TAVILY_BASE_URL": provider.url},
    }[name]
    answer = {"brave": BRAVE_ANSWER, "tavily": TAVILY_ANSWER}[name]
    provider.enqueue(replies.json_reply(answer))
    upstream.enqueue(_search_call("router"), replies.completion("Done [1]."))
    router = router_factory(env)
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        message = _ask(client, [{**SEARCH_TOOL, "allowed_domains": [f"{name}.example"]}])
    result = message.content[1]
    assert [r.url for r in result.content] == [f"https://{name}.example/a"]
    assert message.content[2].citations[0].url == f"https://{name}.example/a"
    seen = provider.last
    if name == "brave":
        assert seen.method == "GET" and seen.path == "/res/v1/web/search"
        assert seen.headers["x-subscription-token"] == "test-brave-key"
        assert seen.query["q"] == "router site:brave.example"
        assert result.content[0].page_age == "2026-10-01T00:00:00"
        tool_text = next(m for m in upstream.requests[1].json["messages"] if m["role"] == "tool")
        assert "<strong>" not in tool_text["content"]
    else:
        assert seen.method == "POST" and seen.path == "/search"
        assert seen.headers["authorization"] == "Bearer test-tavily-key"
        assert seen.json["query"] == "router"
        assert seen.json["include_domains"] == ["tavily.example"]


def test_openrouter_web_plugin_as_search_provider(
    router_factory: Any, upstream: FakeUpstream
) -> None:
    # The model turn, the web plugin's search and the next model turn all go to OpenRouter.
    upstream.enqueue(
        _search_call("router"),
        replies.json_reply(OPENROUTER_WEB_ANSWER),
        replies.completion("OpenRouter found it [1]."),
    )
    router = router_factory({"WEB_SEARCH_PROVIDER": "openrouter"})
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        message = _ask(client, [SEARCH_TOOL])
    result = message.content[1]
    assert [(r.url, r.title) for r in result.content] == [
        ("https://openrouter.example/a", "OpenRouter A")
    ]
    assert message.content[2].citations[0].cited_text.startswith("A router result found")
    search_request = upstream.requests[1].json
    assert search_request["plugins"] == [{"id": "web", "max_results": 5}]
    assert search_request["model"] == "openai/gpt-4o-mini"
    assert search_request["messages"] == [{"role": "user", "content": "router"}]


@pytest.mark.parametrize("backend", backends.ALL, ids=str)
def test_web_search_on_every_backend(
    backend: backends.Backend, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    """The loop is a relay wrapper: the same search, streamed and not, on each backend."""
    env = backends.merged_env(backend, upstream.url, {"SEARXNG_URL": provider.url})
    with RouterProcess(upstream.url, env, startup_timeout=backend.startup_timeout) as router:
        provider.enqueue(*[replies.json_reply(SEARXNG_ANSWER)] * 2, path="/search")
        upstream.enqueue(_search_call("router"), replies.completion("Found [1]."))
        with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
            message = _ask(client, [SEARCH_TOOL])
        assert [b.type for b in message.content] == [
            "server_tool_use",
            "web_search_tool_result",
            "text",
            "text",
        ]
        upstream.enqueue(_search_call_stream("router"), _text_stream("Found [1]."))
        body = {"model": MODEL, "max_tokens": 50, "tools": [SEARCH_TOOL]}
        events = _stream_events(router, {**body, "messages": [{"role": "user", "content": "s"}]})
        check_grammar(events)
        streamed = accumulate(events)
        assert [b["type"] for b in streamed["content"]] == [b.type for b in message.content]
        assert streamed["usage"]["server_tool_use"]["web_search_requests"] == 1


def test_paused_response_sent_back_continues(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    """After `pause_turn` the client sends the response back as the last assistant message;
    the model sees its call and the result and goes on."""
    sealed = {
        "type": "web_search_result",
        "url": "https://example.org/a",
        "title": "Result A",
        "encrypted_content": "opaque-from-elsewhere",
    }
    paused = [
        {
            "type": "server_tool_use",
            "id": "srvtoolu_p1",
            "name": "web_search",
            "input": {"query": "q"},
        },
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_p1", "content": [sealed]},
    ]
    upstream.enqueue(replies.completion("Continuing from the search."))
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[SEARCH_TOOL],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "search"},
            {"role": "assistant", "content": paused},  # type: ignore[typeddict-item]
        ],
    )
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"
    sent = upstream.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == "srvtoolu_p1"
    assert "[1] Result A" in sent[2]["content"]  # a foreign encrypted_content: title and URL


def test_a_failing_later_turn_ends_the_stream_with_an_error_event(
    router: RouterProcess, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    provider.enqueue(replies.json_reply(SEARXNG_ANSWER), path="/search")
    upstream.enqueue(_search_call_stream("x"), replies.error(400, "context too long"))
    body = {"model": MODEL, "max_tokens": 50, "tools": [SEARCH_TOOL]}
    events = _stream_events(router, {**body, "messages": [{"role": "user", "content": "s"}]})
    check_grammar(events)
    assert [e["type"] for e in events if e["type"] == "content_block_start"] == [
        "content_block_start"
    ] * 2
    assert events[-1]["type"] == "error"
    assert "context too long" in events[-1]["error"]["message"]


def test_pings_keep_the_stream_alive_while_a_tool_runs(
    router_factory: Any, upstream: FakeUpstream, provider: FakeUpstream
) -> None:
    """The `server_tool_use` block is written when the model's call is complete, then pings
    flow while the (slow) search runs, then its result."""
    router = router_factory({"SEARXNG_URL": provider.url, "STREAM_PING_INTERVAL": "0.2"})
    provider.enqueue(replies.delayed(1.5, replies.json_reply(SEARXNG_ANSWER)), path="/search")
    upstream.enqueue(_search_call_stream("slow"), _text_stream("Done."))
    body = {"model": MODEL, "max_tokens": 50, "tools": [SEARCH_TOOL]}
    events = _stream_events(router, {**body, "messages": [{"role": "user", "content": "s"}]})
    check_grammar(events)
    kinds = [
        e["content_block"]["type"] if e["type"] == "content_block_start" else e["type"]
        for e in events
        if e["type"] in ("content_block_start", "ping")
    ]
    use, result = kinds.index("server_tool_use"), kinds.index("web_search_tool_result")
    assert "ping" in kinds[use:result]


def test_native_anthropic_target_gets_server_tools_untouched(
    router_factory: Any, upstream: FakeUpstream
) -> None:
    """Databricks' native Claude route speaks the Messages API: the request keeps its server
    tool and the upstream's own server blocks reach the client as they are."""
    env = {
        "PROXY_BACKEND": "AZURE_DATABRICKS",
        "DATABRICKS_HOST": upstream.url,
        "DATABRICKS_PAT": "dapi-test-token-0000",
        "OPENROUTER_API_KEY": None,
    }
    native_answer = {
        "id": "msg_dbx_1",
        "type": "message",
        "role": "assistant",
        "model": "databricks-claude-sonnet-4-5",
        "content": [
            {"type": "server_tool_use", "id": "srvtoolu_n1", "name": "web_search", "input": {}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_n1", "content": []},
            {"type": "text", "text": "Native."},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 3,
            "output_tokens": 2,
            "server_tool_use": {"web_search_requests": 1},
        },
    }
    upstream.enqueue(replies.json_reply(native_answer))
    router = router_factory(env)
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        message = client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            tools=[SEARCH_TOOL],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "search"}],
        )
    assert [b.type for b in message.content] == [
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    assert upstream.last.path.endswith("/v1/messages")
    assert upstream.last.json["tools"] == [SEARCH_TOOL]
