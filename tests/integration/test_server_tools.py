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

from support import openai_chunks as oc
from support import replies
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
    assert cited.type == "text" and cited.text == "Routers translate requests "
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
