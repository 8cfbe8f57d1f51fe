"""Web fetch run by the router, through the real server with the official SDK: a loopback web
site (HTML, PDF, a redirect to a private address, an oversize body, a slow page), with the
test site's one address let through by WEB_FETCH_PRIVATE_ALLOWLIST (an explicit, documented
exemption) and every other private address refused as in production."""

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
FETCH_TOOL = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 3}
PAGE = b"""<!doctype html><html><head><title>Router notes</title>
<script>var tracking = "never shown";</script><style>body{color:red}</style></head>
<body><nav>Home | About</nav><article><h1>Router notes</h1>
<p>The router translates Anthropic requests for OpenAI-compatible upstreams. It keeps the
stream grammar intact and reports dropped features in a response header.</p>
<p>Server tools such as web search and web fetch run inside the router itself, so every
model can use them.</p></article><footer>Copyright</footer></body></html>"""


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, with a correct cross-reference table."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@pytest.fixture(scope="module")
def site() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_site(site: FakeUpstream) -> None:
    site.clear()


def _env(site: FakeUpstream, **extra: str) -> dict[str, str]:
    return {"WEB_FETCH_PRIVATE_ALLOWLIST": f"127.0.0.1:{site.port}", **extra}


@pytest.fixture(scope="module")
def router(upstream: FakeUpstream, site: FakeUpstream) -> Iterator[RouterProcess]:
    with RouterProcess(upstream.url, _env(site)) as process:
        yield process


def _fetch_call(url: str, call_id: str = "call_f1") -> replies.Reply:
    call = oc.tool_call(call_id, "web_fetch", {"url": url})
    return replies.completion(tool_calls=[call], finish_reason="tool_calls")


def _fetch(client: anthropic.Anthropic, url: str, tool: Any = None, mention: bool = True) -> Any:
    text = f"Summarise {url}" if mention else "Summarise the page"
    return client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[tool or FETCH_TOOL],
        messages=[{"role": "user", "content": text}],
    )


def _tool_text(upstream: FakeUpstream) -> str:
    messages = upstream.requests[1].json["messages"]
    return str(next(m for m in messages if m["role"] == "tool")["content"])


def test_html_page_becomes_readable_text(
    client: anthropic.Anthropic, upstream: FakeUpstream, site: FakeUpstream
) -> None:
    url = f"{site.url}/notes"
    site.enqueue(replies.raw(200, PAGE, "text/html; charset=utf-8"), path="/notes")
    upstream.enqueue(_fetch_call(url), replies.completion("The router translates requests."))
    message = _fetch(client, url)
    assert [b.type for b in message.content] == ["server_tool_use", "web_fetch_tool_result", "text"]
    use, result, _ = message.content
    assert use.name == "web_fetch" and use.input == {"url": url}
    assert result.tool_use_id == use.id
    fetched = result.content
    assert fetched.type == "web_fetch_result" and fetched.url == url
    assert fetched.retrieved_at
    document = fetched.content
    assert document.type == "document" and document.title == "Router notes"
    assert document.source.type == "text" and document.source.media_type == "text/plain"
    assert "translates Anthropic requests" in document.source.data
    assert "never shown" not in document.source.data and "color:red" not in document.source.data
    assert message.usage.server_tool_use.web_fetch_requests == 1
    assert "translates Anthropic requests" in _tool_text(upstream)


def test_pdf_is_a_document_source_and_text_for_the_model(
    client: anthropic.Anthropic, upstream: FakeUpstream, site: FakeUpstream
) -> None:
    url = f"{site.url}/paper.pdf"
    pdf = minimal_pdf("Hello from the PDF")
    site.enqueue(replies.raw(200, pdf, "application/pdf"), path="/paper.pdf")
    upstream.enqueue(_fetch_call(url), replies.completion("It says hello."))
    tool = {**FETCH_TOOL, "citations": {"enabled": True}}
    message = _fetch(client, url, tool)
    document = message.content[1].content.content
    assert document.source.type == "base64" and document.source.media_type == "application/pdf"
    import base64

    assert base64.b64decode(document.source.data) == pdf
    assert document.citations is not None and document.citations.enabled is True
    assert "Hello from the PDF" in _tool_text(upstream)


def _error_code(message: Any) -> str:
    result = message.content[1]
    assert result.type == "web_fetch_tool_result"
    assert result.content.type == "web_fetch_tool_result_error"
    return str(result.content.error_code)


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:{upstream_port}/private", "http://169.254.169.254/latest/meta-data/"],
    ids=["loopback", "metadata"],
)
def test_redirect_to_a_private_address_is_refused(
    target: str, client: anthropic.Anthropic, upstream: FakeUpstream, site: FakeUpstream
) -> None:
    url = f"{site.url}/moved"
    location = target.format(upstream_port=upstream.port)
    site.enqueue(replies.raw(302, b"", headers={"Location": location}), path="/moved")
    upstream.enqueue(_fetch_call(url), replies.completion("Could not fetch."))
    message = _fetch(client, url)
    assert _error_code(message) == "url_not_accessible"
    assert [r.path for r in upstream.requests] == ["/api/v1/chat/completions"] * 2
    assert message.usage.server_tool_use.web_fetch_requests == 0


def test_private_host_by_name_is_refused_at_resolution(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    url = f"http://localhost:{upstream.port}/secret"
    upstream.enqueue(_fetch_call(url), replies.completion("Refused."))
    message = _fetch(client, url)
    assert _error_code(message) == "url_not_accessible"
    assert not any(r.path == "/secret" for r in upstream.requests)


def test_url_not_in_the_conversation_is_refused(
    client: anthropic.Anthropic, upstream: FakeUpstream, site: FakeUpstream
) -> None:
    url = f"{site.url}/notes"
    upstream.enqueue(_fetch_call(url), replies.completion("Refused."))
    message = _fetch(client, url, mention=False)
    assert _error_code(message) == "url_not_in_prior_context"
    assert site.requests == []


def test_unsupported_content_type(
    client: anthropic.Anthropic, upstream: FakeUpstream, site: FakeUpstream
) -> None:
    url = f"{site.url}/image.png"
    site.enqueue(replies.raw(200, b"\x89PNG\r\n\x1a\n....", "image/png"), path="/image.png")
    upstream.enqueue(_fetch_call(url), replies.completion("Not a page."))
    assert _error_code(_fetch(client, url)) == "unsupported_content_type"


def test_oversize_and_slow_pages(
    router_factory: Any, upstream: FakeUpstream, site: FakeUpstream
) -> None:
    router = router_factory(_env(site, WEB_FETCH_MAX_BYTES="2000", WEB_FETCH_TIMEOUT="1"))
    big, slow = f"{site.url}/big", f"{site.url}/slow"
    site.enqueue(replies.raw(200, b"x" * 50_000, "text/plain"), path="/big")
    site.enqueue(replies.delayed(5, replies.raw(200, b"late", "text/plain")), path="/slow")
    upstream.enqueue(_fetch_call(big), replies.completion("Too big."))
    upstream.enqueue(_fetch_call(slow), replies.completion("Too slow."))
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        assert _error_code(_fetch(client, big)) == "content_too_large"
        assert _error_code(_fetch(client, slow)) == "url_not_accessible"


def test_loopback_is_refused_without_the_allowlist(
    router_factory: Any, upstream: FakeUpstream, site: FakeUpstream
) -> None:
    router = router_factory({})
    url = f"{site.url}/notes"
    upstream.enqueue(_fetch_call(url), replies.completion("Refused."))
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        assert _error_code(_fetch(client, url)) == "url_not_accessible"
    assert site.requests == []


def test_streamed_fetch(router: RouterProcess, upstream: FakeUpstream, site: FakeUpstream) -> None:
    url = f"{site.url}/notes"
    site.enqueue(replies.raw(200, PAGE, "text/html"), path="/notes")
    call = oc.tool_call_chunks(0, "call_f1", "web_fetch", json.dumps({"url": url}))
    upstream.enqueue(
        replies.sse([*oc.text_chunks("Let me read it. ", 2), *call, oc.finish_chunk("tool_calls")]),
        replies.sse([*oc.text_chunks("It is about routers.", 3), oc.finish_chunk("stop")]),
    )
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "tools": [FETCH_TOOL],
        "messages": [{"role": "user", "content": f"Read {url}"}],
    }
    events = []
    with httpx.stream("POST", f"{router.url}/v1/messages", json=body, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    check_grammar(events)
    message = accumulate(events)
    kinds = [b["type"] for b in message["content"]]
    assert kinds == ["text", "server_tool_use", "web_fetch_tool_result", "text"]
    assert message["content"][0]["text"] == "Let me read it. "
    assert message["content"][2]["content"]["content"]["title"] == "Router notes"
    assert message["usage"]["server_tool_use"]["web_fetch_requests"] == 1
    # The model's own words before its call are in its next turn's history.
    history = upstream.requests[1].json["messages"]
    assert history[1]["role"] == "assistant" and "Let me read it." in str(history[1]["content"])
