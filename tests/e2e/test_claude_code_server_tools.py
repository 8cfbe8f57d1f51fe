"""Claude Code's WebSearch and WebFetch tools through the router to a scripted non-Claude
upstream: the router runs the search (a loopback SearXNG) and Claude Code prints what the
search found."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support import openai_chunks as oc
from support import replies
from support.router import RouterProcess
from support.tls import self_signed
from support.upstream import FakeUpstream

from .clients import run_claude
from .tap import Tap

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("claude_cli")]

CHAT_PATH = "/api/v1/chat/completions"
WEB_SEARCH = ("--allowedTools", "WebSearch")


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def router(upstream: FakeUpstream, provider: FakeUpstream) -> Iterator[RouterProcess]:
    env = {"SEARXNG_URL": provider.url, "WEB_FETCH_PRIVATE_ALLOWLIST": f"127.0.0.1:{provider.port}"}
    with RouterProcess(upstream.url, env) as process:
        yield process


def text_stream(text: str) -> replies.Reply:
    return replies.sse([*oc.text_chunks(text, 3), oc.finish_chunk("stop"), oc.usage_chunk()])


def tool_stream(call_id: str, name: str, arguments: dict[str, Any]) -> replies.Reply:
    chunks = oc.tool_call_chunks(0, call_id, name, json.dumps(arguments), n_pieces=4)
    return replies.sse([*chunks, oc.finish_chunk("tool_calls"), oc.usage_chunk()])


SEARXNG_ANSWER = {
    "query": "anthropic router web search",
    "results": [
        {
            "url": "https://searx.example/router",
            "title": "Router search result",
            "content": "The router runs web search for every model.",
        }
    ],
}


def test_web_search(router: RouterProcess, upstream: FakeUpstream, provider: FakeUpstream) -> None:
    """Claude Code's WebSearch makes a side request with the `web_search_20250305` server
    tool; the router runs the loop (model call, SearXNG, model summary) and Claude Code
    prints the links and the summary as its tool result."""
    query = "anthropic router web search"
    provider.enqueue(replies.json_reply(SEARXNG_ANSWER), path="/search")
    upstream.enqueue(
        tool_stream("call_ws_1", "WebSearch", {"query": query}),  # main loop: use WebSearch
        tool_stream("call_srv_1", "web_search", {"query": query}),  # side request: search
        text_stream("The router runs web search for every model [1]."),  # side: summary
        text_stream("Search done: the router runs web search."),  # main loop: the answer
    )
    with Tap(router.url) as tap:
        run = run_claude(tap.url, "search the web for anthropic router", args=WEB_SEARCH)
    run.assert_success("Search done: the router runs web search.")
    [result] = run.tool_results()
    printed = str(result["content"])
    assert f'Web search results for query: "{query}"' in printed
    assert "https://searx.example/router" in printed and "Router search result" in printed
    assert "The router runs web search for every model" in printed
    assert run.result["modelUsage"][next(iter(run.result["modelUsage"]))]["webSearchRequests"] == 1
    # What Claude Code sent for the side request: the server tool, not a function.
    side = [r for r in tap.posts("/v1/messages") if _tool_types(r.json) == ["web_search_20250305"]]
    assert len(side) == 1
    assert provider.last.query["q"] == query


def _tool_types(body: Any) -> list[str]:
    return [str(t.get("type", "custom")) for t in (body or {}).get("tools") or []]


PAGE = b"""<!doctype html><html><head><title>Router page</title></head><body><article>
<h1>Router page</h1><p>The router page says that web fetch works through the router for
every model, streamed or not.</p></article></body></html>"""


@pytest.fixture(scope="module")
def https_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A loopback HTTPS site with a fresh self-signed certificate (Claude Code upgrades
    http:// to https:// and fetches WebFetch pages itself); yields its URL and the cert."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(folder)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_web_fetch(
    router: RouterProcess, upstream: FakeUpstream, https_site: tuple[str, Path]
) -> None:
    """Claude Code's WebFetch fetches the page itself, then asks the small model through the
    router to answer the prompt from the page's Markdown; the answer is the tool result."""
    base, cert = https_site
    url = f"{base}/page"
    upstream.enqueue(
        tool_stream("call_wf_1", "WebFetch", {"url": url, "prompt": "What does the page say?"}),
        text_stream("The page says web fetch works through the router."),  # side request
        text_stream("Fetched: web fetch works through the router."),
    )
    args = ("--allowedTools", "WebFetch", "--settings", '{"skipWebFetchPreflight": true}')
    env = {"NODE_EXTRA_CA_CERTS": str(cert)}
    with Tap(router.url) as tap:
        run = run_claude(tap.url, f"fetch {url}", args=args, env=env)
    run.assert_success("Fetched: web fetch works through the router.")
    [result] = run.tool_results()
    assert result.get("is_error") is not True, result
    assert "The page says web fetch works through the router." in str(result["content"])
    # The side request carried the page's text, converted from HTML by Claude Code.
    side = [
        r
        for r in tap.posts("/v1/messages")
        if "web fetch works through the router for" in r.raw.decode()
    ]
    assert side, "no request carried the fetched page"
