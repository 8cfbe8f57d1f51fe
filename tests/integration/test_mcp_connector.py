"""The MCP connector through the real router with the official SDK's beta client, against a
real MCP server built with the official `mcp` SDK on loopback (Streamable HTTP) with two
tools, `add` and `explode` (always fails)."""

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
from support.mcp_server import McpTestServer
from support.router import RouterProcess
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

MODEL = "anthropic/claude-sonnet-4.5"


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpTestServer]:
    with McpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def router(upstream: FakeUpstream, mcp_server: McpTestServer) -> Iterator[RouterProcess]:
    env = {"MCP_SERVER_ALLOWLIST": f"http://127.0.0.1:{mcp_server.port}/"}
    with RouterProcess(upstream.url, env) as process:
        yield process


def _servers(mcp_server: McpTestServer, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "type": "url",
            "url": mcp_server.url,
            "name": "calc",
            "authorization_token": "test-mcp-token",
            **extra,
        }
    ]


def _calls(*calls: tuple[str, str, dict[str, Any]]) -> replies.Reply:
    tool_calls = [oc.tool_call(call_id, name, args) for call_id, name, args in calls]
    return replies.completion(tool_calls=tool_calls, finish_reason="tool_calls")


def test_two_tools_one_failing(
    client: anthropic.Anthropic, upstream: FakeUpstream, mcp_server: McpTestServer
) -> None:
    upstream.enqueue(
        _calls(
            ("call_1", "mcp__calc__add", {"a": 2, "b": 40}),
            ("call_2", "mcp__calc__explode", {"reason": "on purpose"}),
        ),
        replies.completion("2 + 40 is 42; explode failed."),
    )
    message = client.beta.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "add 2 and 40, then explode"}],
        mcp_servers=_servers(mcp_server),  # type: ignore[arg-type]
        betas=["mcp-client-2025-04-04"],
    )
    kinds = [block.type for block in message.content]
    assert kinds == ["mcp_tool_use", "mcp_tool_result", "mcp_tool_use", "mcp_tool_result", "text"]
    add_use, add_result, boom_use, boom_result, _ = message.content
    assert (add_use.name, add_use.server_name, add_use.input) == ("add", "calc", {"a": 2, "b": 40})
    assert add_result.tool_use_id == add_use.id and add_result.is_error is False
    assert add_result.content[0].text == "42"
    assert boom_use.name == "explode" and boom_result.is_error is True
    assert "exploded: on purpose" in boom_result.content[0].text
    # The model was offered both tools with the server's schemas, and saw both results.
    first, second = upstream.requests[0].json, upstream.requests[1].json
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(offered) == {"mcp__calc__add", "mcp__calc__explode"}
    assert offered["mcp__calc__add"]["parameters"]["required"] == ["a", "b"]
    tool_messages = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert tool_messages[0] == "42" and "exploded: on purpose" in tool_messages[1]
    assert "Bearer test-mcp-token" in mcp_server.authorizations


def test_toolset_config_and_streaming(
    router: RouterProcess, upstream: FakeUpstream, mcp_server: McpTestServer
) -> None:
    """mcp-client-2025-11-20: an `mcp_toolset` enables only `add`."""
    call = oc.tool_call_chunks(0, "call_1", "mcp__calc__add", json.dumps({"a": 1, "b": 2}))
    upstream.enqueue(
        replies.sse([*call, oc.finish_chunk("tool_calls")]),
        replies.sse([*oc.text_chunks("It is 3.", 2), oc.finish_chunk("stop")]),
    )
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "1+2"}],
        "mcp_servers": _servers(mcp_server),
        "tools": [
            {
                "type": "mcp_toolset",
                "mcp_server_name": "calc",
                "default_config": {"enabled": False},
                "configs": {"add": {"enabled": True}},
            }
        ],
    }
    headers = {"anthropic-beta": "mcp-client-2025-11-20"}
    events = []
    with httpx.stream(
        "POST", f"{router.url}/v1/messages", json=body, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    check_grammar(events)
    message = accumulate(events)
    kinds = [block["type"] for block in message["content"]]
    assert kinds == ["mcp_tool_use", "mcp_tool_result", "text"]
    assert message["content"][0]["input"] == {"a": 1, "b": 2}
    assert message["content"][1]["content"] == [{"type": "text", "text": "3"}]
    offered = [t["function"]["name"] for t in upstream.requests[0].json["tools"]]
    assert offered == ["mcp__calc__add"]


def test_unreachable_server_is_a_400(
    router_factory: Any, upstream: FakeUpstream, mcp_server: McpTestServer
) -> None:
    router = router_factory({"WEB_FETCH_ALLOW_PRIVATE": "true", "MCP_CONNECT_TIMEOUT": "3"})
    dead = [{"type": "url", "url": "http://127.0.0.1:1/mcp", "name": "dead"}]
    with (
        anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client,
        pytest.raises(anthropic.BadRequestError) as raised,
    ):
        client.beta.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            mcp_servers=dead,  # type: ignore[arg-type]
            betas=["mcp-client-2025-04-04"],
        )
    assert "dead" in str(raised.value)
    assert upstream.requests == []


def test_server_outside_the_allowlist_is_refused(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    other = [{"type": "url", "url": "http://127.0.0.1:9/mcp", "name": "other"}]
    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        client.beta.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            mcp_servers=other,  # type: ignore[arg-type]
            betas=["mcp-client-2025-04-04"],
        )
    assert "MCP_SERVER_ALLOWLIST" in str(raised.value)
    assert upstream.requests == []


def test_private_server_refused_without_allowlist(
    router_factory: Any, upstream: FakeUpstream, mcp_server: McpTestServer
) -> None:
    router = router_factory({})
    with (
        anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client,
        pytest.raises(anthropic.PermissionDeniedError) as raised,
    ):
        client.beta.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            mcp_servers=_servers(mcp_server),  # type: ignore[arg-type]
            betas=["mcp-client-2025-04-04"],
        )
    assert "private" in str(raised.value)


def test_toolset_naming_an_unknown_server_is_a_400(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    with pytest.raises(anthropic.BadRequestError, match="not in mcp_servers"):
        client.beta.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "mcp_toolset", "mcp_server_name": "ghost"}],  # type: ignore[list-item]
            betas=["mcp-client-2025-11-20"],
        )
    assert upstream.requests == []


def test_sse_transport(router_factory: Any, upstream: FakeUpstream) -> None:
    """A server URL ending in /sse is reached over the SSE transport."""
    with McpTestServer("sse") as sse_server:
        router = router_factory({"MCP_SERVER_ALLOWLIST": f"http://127.0.0.1:{sse_server.port}/"})
        upstream.enqueue(
            _calls(("call_1", "mcp__calc__add", {"a": 20, "b": 22})), replies.completion("42.")
        )
        with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
            message = client.beta.messages.create(
                model=MODEL,
                max_tokens=100,
                messages=[{"role": "user", "content": "add"}],
                mcp_servers=_servers(sse_server),  # type: ignore[arg-type]
                betas=["mcp-client-2025-04-04"],
            )
    assert [b.type for b in message.content] == ["mcp_tool_use", "mcp_tool_result", "text"]
    assert message.content[1].content[0].text == "42"
    assert "Bearer test-mcp-token" in sse_server.authorizations
