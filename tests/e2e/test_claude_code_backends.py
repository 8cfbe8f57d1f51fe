"""The real Claude Code CLI through the router to backends other than plain OpenRouter:
Databricks' native Anthropic route (the upstream speaks Anthropic SSE) and a Gemini model
(Claude Code's real tool schemas must reach it cleaned)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from support import native, replies
from support import openai_chunks as oc
from support.router import RouterProcess
from support.upstream import FakeUpstream

from .clients import CLIENT_KEY, run_claude

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("claude_cli")]

PAT = "dapi-e2e-token-0000"
NATIVE_PATH = "/serving-endpoints/anthropic/v1/messages"
BASH = ("--allowedTools", "Bash")
GEMINI_FORBIDDEN = {
    "$schema", "additionalProperties", "propertyNames", "const", "exclusiveMinimum",
    "$ref", "$defs", "default", "oneOf", "allOf", "uniqueItems", "patternProperties",
}  # fmt: skip


def anthropic_stream(block: dict[str, Any], delta: dict[str, Any], stop_reason: str) -> Any:
    """One content block as Anthropic streams it, from message_start to message_stop."""
    return replies.sse(native.anthropic_events([(block, [delta])], stop_reason), done=False)


@pytest.fixture(scope="module")
def databricks_router(upstream: FakeUpstream) -> Iterator[RouterProcess]:
    env = {
        "PROXY_BACKEND": "AZURE_DATABRICKS",
        "DATABRICKS_HOST": upstream.url,
        "DATABRICKS_PAT": PAT,
        "OPENROUTER_API_KEY": None,
    }
    with RouterProcess(None, env) as process:
        yield process


def test_bash_tool_loop_on_the_databricks_native_route(
    databricks_router: RouterProcess, upstream: FakeUpstream
):
    command = {"command": "echo hi-from-databricks", "description": "Say hi"}
    tool = {"type": "tool_use", "id": "toolu_dbx_1", "name": "Bash", "input": {}}
    upstream.enqueue(
        anthropic_stream(
            tool, {"type": "input_json_delta", "partial_json": json.dumps(command)}, "tool_use"
        ),
        anthropic_stream(
            {"type": "text", "text": ""},
            {"type": "text_delta", "text": "Databricks ran hi-from-databricks."},
            "end_turn",
        ),
        path=NATIVE_PATH,
    )
    run = run_claude(databricks_router.url, "run the echo command", args=BASH)
    run.assert_success("Databricks ran hi-from-databricks.")
    [tool_result] = run.tool_results()
    assert tool_result["tool_use_id"] == "toolu_dbx_1" and tool_result["is_error"] is False

    first, follow_up = [r for r in upstream.requests if r.path == NATIVE_PATH]
    assert first.headers["authorization"] == f"Bearer {PAT}"
    assert CLIENT_KEY not in first.raw.decode()
    assert "claude-code" in first.headers.get("anthropic-beta", "")
    assert first.json["model"] == "databricks-claude-sonnet-4-5" and first.json["stream"] is True
    # Claude Code's own tool definitions arrive untranslated (Anthropic shape, not functions).
    bash = next(t for t in first.json["tools"] if t["name"] == "Bash")
    assert "input_schema" in bash and "function" not in bash
    # The tool loop's history goes back in Anthropic's own form.
    assistant = follow_up.json["messages"][-2]
    assert assistant["role"] == "assistant"
    assert any(b.get("type") == "tool_use" and b["input"] == command for b in assistant["content"])
    user = follow_up.json["messages"][-1]
    assert any(b.get("type") == "tool_result" for b in user["content"])


def _keys(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for child in (node.get("properties") or {}).values():
        found |= _keys(child)
    found |= _keys(node.get("items"))
    for branch in node.get("anyOf") or []:
        found |= _keys(branch)
    return found


def test_claude_code_tool_schemas_reach_gemini_cleaned(
    router: RouterProcess, upstream: FakeUpstream
):
    upstream.enqueue(
        replies.sse([*oc.text_chunks("Gemini here.", 2), oc.finish_chunk(), oc.usage_chunk()])
    )
    run = run_claude(router.url, "hello", args=("--model", "google/gemini-2.5-pro"))
    run.assert_success("Gemini here.")
    [sent] = [r for r in upstream.requests if r.path == "/api/v1/chat/completions"]
    assert sent.json["model"] == "google/gemini-2.5-pro"
    tools = sent.json["tools"]
    assert len(tools) > 5  # Claude Code's full tool set
    for tool in tools:
        left = _keys(tool["function"]["parameters"]) & GEMINI_FORBIDDEN
        assert not left, (tool["function"]["name"], left)
