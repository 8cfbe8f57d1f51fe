"""The real Claude Code CLI (`claude -p`, pinned in tests/e2e/package.json) through the real
router process, against the scripted OpenAI-compatible upstream on 127.0.0.1.

Each test asserts what Claude Code printed (`--output-format stream-json --verbose`, NDJSON) and
what the upstream received. Claude Code runs with CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK=1, so
a stream it cannot parse fails the run instead of being retried without streaming.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from support import openai_chunks as oc
from support import replies
from support.router import UPSTREAM_API_KEY, RouterProcess
from support.upstream import FakeUpstream, Recorded

from .clients import CLIENT_KEY, run_claude
from .conftest import exchanges, log_mark
from .tap import Tap

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("claude_cli")]

CHAT_PATH = "/api/v1/chat/completions"
BIG_MODEL = "anthropic/claude-sonnet-4.5"  # the router's default BIG_MODEL
BASH = ("--allowedTools", "Bash")  # runs Bash without a prompt, also as root


def text_stream(text: str, pieces: int = 3, prompt: int = 30, completion: int = 7) -> replies.Reply:
    return replies.sse(
        [*oc.text_chunks(text, pieces), oc.finish_chunk("stop"), oc.usage_chunk(prompt, completion)]
    )


def tool_stream(*calls: tuple[str, str, dict[str, Any]], text: str | None = None) -> replies.Reply:
    """Streamed tool calls (id, name, arguments), each arriving in several fragments."""
    chunks: list[Any] = [*oc.text_chunks(text, 2)] if text else []
    for index, (call_id, name, arguments) in enumerate(calls):
        chunks += oc.tool_call_chunks(index, call_id, name, json.dumps(arguments), n_pieces=6)
    return replies.sse([*chunks, oc.finish_chunk("tool_calls"), oc.usage_chunk()])


def chat_requests(upstream: FakeUpstream) -> list[Recorded]:
    return [r for r in upstream.requests if r.path == CHAT_PATH]


def content_text(content: Any) -> str:
    """The text of an OpenAI message `content`: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def by_role(messages: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["role"] == role]


# 1. Plain text.


def test_plain_text_answer(router: RouterProcess, upstream: FakeUpstream):
    upstream.enqueue(text_stream("Hello from the e2e upstream!", pieces=4, prompt=30, completion=7))
    run = run_claude(router.url, "say hello")
    result = run.assert_success("Hello from the e2e upstream!")
    assert [b["text"] for b in run.assistant_blocks("text")] == ["Hello from the e2e upstream!"]
    assert result["num_turns"] == 1
    # Usage travels in message_start / message_delta; Claude Code sums it into the result.
    assert result["usage"]["input_tokens"] == 30 and result["usage"]["output_tokens"] == 7
    [sent] = chat_requests(upstream)
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_API_KEY}"
    assert CLIENT_KEY not in sent.raw.decode()
    assert sent.json["stream"] is True and sent.json["model"] == BIG_MODEL
    assert "say hello" in content_text(by_role(sent.json["messages"], "user")[-1]["content"])


# 2. Bash tool loop.


def test_bash_tool_loop(router: RouterProcess, upstream: FakeUpstream):
    command = {"command": "echo hi-from-bash && echo second-line", "description": "Say hi"}
    upstream.enqueue(
        tool_stream(("call_e2e_bash_1", "Bash", command), text="Let me run it."),
        text_stream("The command printed hi-from-bash."),
    )
    run = run_claude(router.url, "run the echo command", args=BASH)
    result = run.assert_success("The command printed hi-from-bash.")
    assert result["num_turns"] == 2
    [tool_use] = run.assistant_blocks("tool_use")
    assert tool_use["id"] == "call_e2e_bash_1" and tool_use["name"] == "Bash"
    assert tool_use["input"] == command  # the fragments were joined into one JSON object
    [tool_result] = run.tool_results()
    assert tool_result["tool_use_id"] == "call_e2e_bash_1"
    assert tool_result["is_error"] is False
    assert "hi-from-bash\nsecond-line" in content_text(tool_result["content"])

    first, follow_up = chat_requests(upstream)
    assert "Bash" in [tool["function"]["name"] for tool in first.json["tools"]]
    messages = follow_up.json["messages"]
    position = next(i for i, m in enumerate(messages) if m.get("tool_calls"))
    assistant, tool = messages[position], messages[position + 1]
    assert content_text(assistant["content"]) == "Let me run it."
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_e2e_bash_1" and call["function"]["name"] == "Bash"
    assert json.loads(call["function"]["arguments"]) == command
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_e2e_bash_1"
    assert "hi-from-bash\nsecond-line" in content_text(tool["content"])


# 3. Two parallel tool calls.


def test_parallel_tool_calls(router: RouterProcess, upstream: FakeUpstream):
    one = {"command": "echo parallel-one", "description": "First"}
    two = {"command": "echo parallel-two", "description": "Second"}
    upstream.enqueue(
        tool_stream(("call_par_1", "Bash", one), ("call_par_2", "Bash", two)),
        text_stream("Both ran."),
    )
    run = run_claude(router.url, "run both", args=BASH)
    run.assert_success("Both ran.")
    assert [(b["id"], b["input"]) for b in run.assistant_blocks("tool_use")] == [
        ("call_par_1", one),
        ("call_par_2", two),
    ]
    outputs = {r["tool_use_id"]: content_text(r["content"]) for r in run.tool_results()}
    assert outputs == {"call_par_1": "parallel-one", "call_par_2": "parallel-two"}

    _, follow_up = chat_requests(upstream)
    messages = follow_up.json["messages"]
    position = next(i for i, m in enumerate(messages) if m.get("tool_calls"))
    calls = messages[position]["tool_calls"]
    assert [(c["id"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("call_par_1", one),
        ("call_par_2", two),
    ]
    # Both results follow the assistant message; Claude Code orders them as the commands finish.
    tools = messages[position + 1 : position + 3]
    assert sorted((t["role"], t["tool_call_id"], content_text(t["content"])) for t in tools) == [
        ("tool", "call_par_1", "parallel-one"),
        ("tool", "call_par_2", "parallel-two"),
    ]


# 4. The full default payload (no --bare).


@pytest.mark.parametrize(
    "tool_search",
    [pytest.param(None, id="default"), pytest.param("false", id="tool-search-off")],
)
def test_full_default_payload_reaches_upstream_intact(
    router: RouterProcess, upstream: FakeUpstream, tool_search: str | None
):
    """Claude Code's default request (every tool with a `$schema`, system blocks, a `role:"system"`
    message inside `messages`, adaptive thinking, effort, context_management) arrives upstream
    with nothing lost. The tap records the request exactly as Claude Code sent it. By default the
    CLI defers most tools behind ToolSearch; ENABLE_TOOL_SEARCH=false sends them all."""
    upstream.enqueue(text_stream("ok"))
    with Tap(router.url) as tap:
        run = run_claude(
            tap.url, "describe this directory", env={"ENABLE_TOOL_SEARCH": tool_search}
        )
    run.assert_success("ok")
    [client_request] = tap.posts("/v1/messages")
    sent = client_request.json
    [received] = chat_requests(upstream)
    got = received.json

    # What this CLI version sends (checked so that a new pin that changes it is noticed).
    assert client_request.target == "/v1/messages?beta=true"
    assert {"tools", "system", "thinking", "output_config", "context_management"} <= set(sent)
    assert sent["thinking"]["type"] == "adaptive" and sent["output_config"]["effort"]
    assert len(sent["tools"]) >= (20 if tool_search == "false" else 10)
    schemas = [tool for tool in sent["tools"] if "$schema" in tool["input_schema"]]
    assert len(schemas) >= len(sent["tools"]) - 1  # all but the deferred-loading placeholder
    assert [m["role"] for m in sent["messages"]].count("system") >= 1

    # Tools: every one, in order, as an OpenAI function with the schema unchanged.
    assert [t["type"] for t in got["tools"]] == ["function"] * len(sent["tools"])
    assert [t["function"]["name"] for t in got["tools"]] == [t["name"] for t in sent["tools"]]
    for tool, function in zip(sent["tools"], [t["function"] for t in got["tools"]], strict=True):
        assert function["parameters"] == tool["input_schema"], tool["name"]
        assert function["description"] == tool["description"], tool["name"]
    assert sum("$schema" in t["function"]["parameters"] for t in got["tools"]) == len(schemas)

    # System prompt first, then the conversation with its role:"system" entries in place.
    system_text = "".join(block["text"] for block in sent["system"])
    assert got["messages"][0]["role"] == "system"
    assert content_text(got["messages"][0]["content"]) == system_text
    assert [m["role"] for m in got["messages"][1:]] == [m["role"] for m in sent["messages"]]
    for original, converted in zip(sent["messages"], got["messages"][1:], strict=True):
        original_text = content_text(original["content"])
        assert content_text(converted["content"]) == original_text, original["role"]

    # Thinking/effort become OpenRouter reasoning; the rest maps field by field.
    assert got["reasoning"] == {"effort": sent["output_config"]["effort"]}
    assert got["max_tokens"] == sent["max_tokens"]
    assert got["user"] == sent["metadata"]["user_id"]
    assert got["model"] == BIG_MODEL and got["stream"] is True
    assert "context_management" not in got and "thinking" not in got


# 5. Reasoning shown as thinking, replayed next turn.


def reasoning_text(text: str, signature: str | None = None) -> dict[str, Any]:
    detail = {"type": "reasoning.text", "text": text, "format": "anthropic-claude-v1", "index": 0}
    return {**detail, "signature": signature} if signature else detail


def test_reasoning_shown_as_thinking_and_replayed(router: RouterProcess, upstream: FakeUpstream):
    thought = "The user wants an echo; Bash can do it."
    # As OpenRouter streams Claude reasoning: each piece as `reasoning` and as a detail, then
    # the signature in a detail of its own.
    pieces = [
        oc.chunk({"reasoning": piece, "reasoning_details": [reasoning_text(piece)]})
        for piece in oc.split_text(thought, 3)
    ]
    signature = reasoning_text("", signature="sig-e2e-0001")
    command = {"command": "echo thought-through", "description": "Echo"}
    upstream.enqueue(
        replies.sse(
            [
                *pieces,
                oc.chunk({"reasoning": "", "reasoning_details": [signature]}),
                *oc.tool_call_chunks(0, "call_think_1", "Bash", json.dumps(command), n_pieces=4),
                oc.finish_chunk("tool_calls"),
                oc.usage_chunk(),
            ]
        ),
        text_stream("Done."),
    )
    run = run_claude(router.url, "think, then echo", args=BASH)
    run.assert_success("Done.")
    [thinking] = run.assistant_blocks("thinking")
    assert thinking["thinking"] == thought and thinking["signature"] == "sig-e2e-0001"
    assert [b["type"] for b in run.assistant_blocks()] == ["thinking", "tool_use", "text"]

    first, follow_up = chat_requests(upstream)
    assert set(first.json["reasoning"]) == {"effort"}  # from output_config.effort
    [assistant] = [m for m in follow_up.json["messages"] if m.get("tool_calls")]
    assert assistant["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "text": thought,
            "index": 0,
            "signature": "sig-e2e-0001",
            "format": "anthropic-claude-v1",
        }
    ]
    assert assistant["tool_calls"][0]["id"] == "call_think_1"


# 6. Upstream 429 and 5xx: retried by the router, by Claude Code, or both.


def rate_limited() -> replies.Reply:
    return replies.error(429, "Rate limit exceeded: slow down", headers={"retry-after": "1"})


def test_429_retry_after_retried_by_claude_code(router_factory, upstream: FakeUpstream):
    """Router retries off: the 429 and its retry-after reach Claude Code, which waits and
    retries once. 2 upstream calls, 2 client requests."""
    router = router_factory(env={"UPSTREAM_MAX_RETRIES": "0"})
    upstream.enqueue(rate_limited(), text_stream("after the rate limit"))
    run = run_claude(router.url, "hi", env={"CLAUDE_CODE_MAX_RETRIES": "2"})
    run.assert_success("after the rate limit")
    calls = chat_requests(upstream)
    assert len(calls) == 2
    assert calls[1].received_at - calls[0].received_at >= 0.95  # retry-after: 1 was honoured
    assert [e["status"] for e in exchanges(router)] == [429, 200]


def test_429_retry_after_retried_by_router(router_factory, upstream: FakeUpstream):
    """Claude Code retries off: the router waits retry-after and retries by itself; the client
    sees one successful request. 2 upstream calls, 1 client request."""
    router = router_factory(env={"UPSTREAM_MAX_RETRIES": "2"})
    upstream.enqueue(rate_limited(), text_stream("router retried"))
    run = run_claude(router.url, "hi", env={"CLAUDE_CODE_MAX_RETRIES": "0"})
    run.assert_success("router retried")
    calls = chat_requests(upstream)
    assert len(calls) == 2
    assert calls[1].received_at - calls[0].received_at >= 0.95
    [exchange] = exchanges(router)
    assert exchange["status"] == 200 and exchange["retries"] == 1


def test_5xx_retries_multiply_across_router_and_claude_code(router_factory, upstream: FakeUpstream):
    """UPSTREAM_MAX_RETRIES=1 and CLAUDE_CODE_MAX_RETRIES=1: up to 2 x 2 upstream calls. The
    upstream fails three times (500, 502, 500) and then answers: the router's first request
    fails after its retry, Claude Code retries, and the router's retry of that one succeeds."""
    router = router_factory(env={"UPSTREAM_MAX_RETRIES": "1"})
    upstream.enqueue(
        replies.error(500, "Internal Server Error"),
        replies.error(502, "Bad gateway from provider"),
        replies.error(500, "Internal Server Error"),
        text_stream("finally"),
    )
    run = run_claude(router.url, "hi", env={"CLAUDE_CODE_MAX_RETRIES": "1"})
    run.assert_success("finally")
    assert len(chat_requests(upstream)) == 4
    records = exchanges(router)
    assert [(e["status"], e["retries"]) for e in records] == [(502, 1), (200, 1)]


# 7. Context-length error.


def test_context_length_error_is_prompt_too_long_without_retry(
    router: RouterProcess, upstream: FakeUpstream
):
    message = (
        "This endpoint's maximum context length is 200000 tokens. However, you requested about "
        "250000 tokens (250000 of text input). Please reduce the length of either one, or use "
        'the "middle-out" transform to compress your prompt automatically.'
    )
    upstream.enqueue(replies.error(400, message))
    mark = log_mark(router)
    # Retries allowed, so a retry would show up as a second upstream call.
    run = run_claude(router.url, "a very long prompt", env={"CLAUDE_CODE_MAX_RETRIES": "2"})
    assert run.returncode == 1, run.describe()
    result = run.result
    assert result["is_error"] is True and result["api_error_status"] == 400, run.describe()
    assert result["result"].startswith("Prompt is too long"), run.describe()
    # Parsed from the router's `prompt is too long: 250000 tokens > 200000 maximum` wording (from
    # the provider's own words this CLI would only say "the provider said: ...").
    assert "the request is ~250000 tokens (limit 200000)" in result["result"], run.describe()
    assert len(chat_requests(upstream)) == 1
    assert [e["status"] for e in exchanges(router, since=mark)] == [400]


# 8. Token counting.


def test_count_tokens_answers_context_command(router: RouterProcess, upstream: FakeUpstream):
    """`/context` counts every part of the prompt with /v1/messages/count_tokens. The router
    answers locally; a 404 there would make Claude Code fall back to max_tokens:1 messages
    calls, which would reach the upstream."""
    mark = log_mark(router)
    run = run_claude(router.url, "/context")
    result = run.assert_success()
    assert "Context Usage" in result["result"], run.describe()
    counted = exchanges(router, "/v1/messages/count_tokens", since=mark)
    assert len(counted) >= 5 and {e["status"] for e in counted} == {200}
    assert exchanges(router, since=mark) == [] and upstream.requests == []
    # The categories are filled from the router's counts (a zero count would show "0").
    assert "| System tools |" in result["result"]
    assert "| System tools | 0 |" not in result["result"]


# 9. Authorization: Bearer with PROXY_API_KEY.


def test_bearer_token_with_proxy_api_key(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"PROXY_API_KEY": "e2e-proxy-key-1,e2e-proxy-key-2"})
    upstream.enqueue(text_stream("authorized"))
    with Tap(router.url) as tap:
        env = {"ANTHROPIC_API_KEY": None, "ANTHROPIC_AUTH_TOKEN": "e2e-proxy-key-2"}
        run = run_claude(tap.url, "hi", env=env)
        run.assert_success("authorized")
        [sent] = tap.posts("/v1/messages")
        assert sent.headers["authorization"] == "Bearer e2e-proxy-key-2"
        assert "x-api-key" not in sent.headers
        [received] = chat_requests(upstream)
        assert received.headers["authorization"] == f"Bearer {UPSTREAM_API_KEY}"
        assert b"e2e-proxy-key" not in received.raw

        # A wrong token is refused by the router and never reaches the upstream.
        env["ANTHROPIC_AUTH_TOKEN"] = "not-the-proxy-key"
        refused = run_claude(tap.url, "hi", env=env)
    assert refused.returncode == 1, refused.describe()
    assert refused.result["is_error"] is True and refused.result["api_error_status"] == 401
    assert len(chat_requests(upstream)) == 1
    assert [e["status"] for e in exchanges(router)] == [200, 401]
