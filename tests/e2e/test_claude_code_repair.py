"""The real Claude Code CLI through the router when the model breaks tool calls, and in a
long tool session kept small by context editing (docs/04-conversion.md, "Emulated")."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from support import openai_chunks as oc
from support import replies
from support.upstream import FakeUpstream

from .clients import run_claude
from .conftest import exchanges, log_mark
from .test_claude_code import BASH, chat_requests, content_text, text_stream

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("claude_cli")]


def settled(router: Any, since: int, count: int) -> list[dict[str, Any]]:
    """The `count` exchange records logged after `since`: the last is written just after its
    response is sent, so it is waited for (up to 5 s)."""
    deadline = time.monotonic() + 5
    while len(found := exchanges(router, since=since)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(found) == count, found
    return found


def broken_call_stream(call_id: str, arguments: str) -> replies.Reply:
    chunks = oc.tool_call_chunks(0, call_id, "Bash", arguments, n_pieces=5)
    return replies.sse([*chunks, oc.finish_chunk("tool_calls"), oc.usage_chunk()])


def test_broken_arguments_then_a_text_written_call_both_run(router, upstream: FakeUpstream):
    """A Python-literal argument string (single quotes, trailing comma), then a Hermes
    `<tool_call>` written as text: Claude Code runs Bash both times."""
    text_call = {
        "name": "Bash",
        "arguments": {"command": "echo repaired-two", "description": "Say two"},
    }
    upstream.enqueue(
        broken_call_stream(
            "call_broken_1", "{'command': 'echo repaired-one', 'description': 'Say one',}"
        ),
        text_stream(
            "Now the second.\n<tool_call>\n" + json.dumps(text_call) + "\n</tool_call>", pieces=7
        ),
        text_stream("Both commands ran."),
    )
    mark = log_mark(router)
    run = run_claude(router.url, "run the two echo commands", args=BASH)
    result = run.assert_success("Both commands ran.")
    assert result["num_turns"] == 3
    uses = run.assistant_blocks("tool_use")
    assert [u["input"]["command"] for u in uses] == ["echo repaired-one", "echo repaired-two"]
    results = run.tool_results()
    assert [r["is_error"] for r in results] == [False, False]
    assert "repaired-one" in content_text(results[0]["content"])
    assert "repaired-two" in content_text(results[1]["content"])
    records = settled(router, mark, 3)
    assert [r.get("repaired") for r in records] == [
        ["tool_arguments"],
        ["text_tool_call:hermes"],
        None,
    ]


OUTPUT_LINES = 400
COMMAND = "seq {start} {end}"


def seq_call(n: int) -> replies.Reply:
    start = 100_000 * (n + 1)
    arguments = json.dumps(
        {
            "command": COMMAND.format(start=start, end=start + OUTPUT_LINES - 1),
            "description": f"Listing {n}",
        }
    )
    chunks = oc.tool_call_chunks(0, f"call_seq_{n}", "Bash", arguments, n_pieces=3)
    return replies.sse([*chunks, oc.finish_chunk("tool_calls"), oc.usage_chunk()])


def tool_output_chars(body: dict[str, Any]) -> int:
    return sum(len(content_text(m["content"])) for m in body["messages"] if m["role"] == "tool")


def test_long_session_stays_under_the_upstream_limit(router_factory, upstream: FakeUpstream):
    """Six Bash calls of ~2.8 KB each. The scripted upstream's limit is 2.5 outputs of tool
    text per request; clearing all but the last tool result past 2 tool uses keeps every
    request under it, though the session produces 6 outputs."""
    edits = [
        {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "tool_uses", "value": 2},
            "keep": {"type": "tool_uses", "value": 1},
        }
    ]
    router = router_factory(env={"CONTEXT_MANAGEMENT_DEFAULT_EDITS": json.dumps(edits)})
    calls = 6
    upstream.enqueue(*(seq_call(n) for n in range(calls)), text_stream("Listed them all."))
    run = run_claude(router.url, "list the six ranges", args=BASH, timeout=120)
    run.assert_success("Listed them all.")
    assert [r["is_error"] for r in run.tool_results()] == [False] * calls
    one_output = len("\n".join(str(100_000 + i) for i in range(OUTPUT_LINES)))
    limit = 2.5 * one_output
    sent = chat_requests(upstream)
    assert len(sent) == calls + 1
    sizes = [tool_output_chars(r.json) for r in sent]
    assert max(sizes) < limit, sizes
    assert calls * one_output > limit  # unedited, the last request would have been over it
    last_tools = [
        content_text(m["content"]) for m in sent[-1].json["messages"] if m["role"] == "tool"
    ]
    assert sum("cleared by context management" in t for t in last_tools) == calls - 1
    assert "clear_tool_uses_20250919" in settled(router, 0, calls + 1)[-1]["context_edits"]
