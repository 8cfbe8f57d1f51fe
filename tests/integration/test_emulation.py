"""Context management, request fallbacks and tool-call repair through the real server,
driven by the official SDK (its beta types parse what we return) against the scripted
loopback upstream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from support import openai_chunks as oc
from support import replies
from support.router import RouterProcess
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

SUMMARISER = "test/summariser"
BIG_RESULT = "line of a long file\n" * 200
TOOLS = [
    {
        "name": "Bash",
        "description": "Run a command",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    }
]
CLEAR_TOOL_USES = {
    "type": "clear_tool_uses_20250919",
    "trigger": {"type": "input_tokens", "value": 1000},
    "keep": {"type": "tool_uses", "value": 1},
}
COMPACT = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 100}}


@pytest.fixture(scope="module")
def emulating(upstream: FakeUpstream) -> Iterator[RouterProcess]:
    env = {"UPSTREAM_MAX_RETRIES": "0", "COMPACTION_MODEL": SUMMARISER}
    with RouterProcess(upstream.url, env) as process:
        yield process


@pytest.fixture
def sdk(emulating: RouterProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emulating.url, api_key="k", max_retries=0) as client:
        yield client


def tool_loop(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "look at the files"}]
    for n in range(turns):
        use = {
            "type": "tool_use",
            "id": f"toolu_{n}",
            "name": "Bash",
            "input": {"command": f"cat {n}"},
        }
        result = {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": BIG_RESULT}
        messages += [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
    return messages


def records(router: RouterProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in router.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "exchange"]


def record_of(router: RouterProcess, request_id: str, path: str = "/v1/messages") -> dict:
    """The exchange record of one request: it is logged once the response is sent, so it is
    waited for (up to 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        found = [r for r in records(router) if r["request_id"] == request_id and r["path"] == path]
        if found or time.monotonic() > deadline:
            assert found, f"no exchange record for {request_id} {path}"
            return found[0]
        time.sleep(0.02)


def tool_contents(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


# -- context editing -----------------------------------------------------------------------------


def test_clear_tool_uses_edits_the_upstream_side_and_reports(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
):
    upstream.enqueue(replies.completion("done"))
    raw = sdk.beta.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=TOOLS,
        messages=tool_loop(4),
        context_management={"edits": [CLEAR_TOOL_USES]},
        betas=["context-management-2025-06-27"],
    )
    message = raw.parse()
    assert message.context_management is not None
    (applied,) = message.context_management.applied_edits
    assert applied.type == "clear_tool_uses_20250919"
    assert applied.cleared_tool_uses == 3 and applied.cleared_input_tokens > 1000
    assert raw.headers["x-anthropic-router-context-edits"] == "clear_tool_uses_20250919"
    contents = tool_contents(upstream.last.json)
    assert len(contents) == 4
    assert all("cleared by context management" in str(c) for c in contents[:3])
    assert BIG_RESULT.strip() in str(contents[3])
    assert "context_management" not in (raw.headers.get("x-anthropic-router-dropped") or "")


def test_under_the_trigger_nothing_changes(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    upstream.enqueue(replies.completion("done"))
    message = sdk.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=TOOLS,
        messages=tool_loop(1),
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},  # 100k default
        betas=["context-management-2025-06-27"],
    )
    assert message.context_management is not None and message.context_management.applied_edits == []
    assert BIG_RESULT.strip() in str(tool_contents(upstream.last.json)[0])


def test_streamed_applied_edits_arrive_in_message_delta(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
):
    upstream.enqueue(replies.sse([*oc.text_chunks("ok"), oc.finish_chunk(), oc.usage_chunk(10, 2)]))
    deltas = []
    with sdk.beta.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=TOOLS,
        messages=tool_loop(3),
        context_management={"edits": [CLEAR_TOOL_USES]},
        betas=["context-management-2025-06-27"],
    ) as stream:
        for event in stream:
            if event.type == "message_delta":
                deltas.append(event)
        final = stream.get_final_message()
    assert deltas[0].context_management is not None
    assert deltas[0].context_management.applied_edits[0].cleared_tool_uses == 2
    assert final.content[0].type == "text"
    assert (
        sum("cleared by context management" in str(c) for c in tool_contents(upstream.last.json))
        == 2
    )


# -- compaction ------------------------------------------------------------------------------------


def test_compaction_with_a_scripted_summariser(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, emulating
):
    upstream.enqueue(
        replies.completion("SUMMARY: listed four files."), replies.completion("Here is the answer.")
    )
    raw = sdk.beta.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=TOOLS,
        messages=[
            *tool_loop(2),
            {"role": "assistant", "content": "Read them."},
            {"role": "user", "content": "what next?"},
        ],
        context_management={"edits": [COMPACT]},
        betas=["compact-2026-01-12"],
    )
    message = raw.parse()
    assert [block.type for block in message.content] == ["compaction", "text"]
    assert message.content[0].content == "SUMMARY: listed four files."
    assert message.content[1].text == "Here is the answer."
    summary_call, main_call = upstream.requests[-2:]
    assert summary_call.json["model"] == SUMMARISER
    assert summary_call.json.get("tool_choice") == "none"
    assert "summary" in json.dumps(summary_call.json["messages"][-1]).lower()
    assert "SUMMARY: listed four files." in json.dumps(main_call.json["messages"])
    assert "what next?" in json.dumps(main_call.json["messages"])
    assert BIG_RESULT.strip() not in json.dumps(main_call.json)
    iterations = [i.type for i in message.usage.iterations or []]
    assert iterations == ["compaction", "message"]
    request_id = raw.headers["request-id"]
    record = record_of(emulating, request_id)
    summary_record = record_of(emulating, request_id, "/v1/messages#compaction")
    assert "compact_20260112" in record["context_edits"]
    assert summary_record["path"] == "/v1/messages#compaction"
    assert summary_record["upstream_model"] == SUMMARISER and summary_record["status"] == 200


def test_compaction_streamed(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    upstream.enqueue(
        replies.completion("SUMMARY streamed."),
        replies.sse([*oc.text_chunks("Answer."), oc.finish_chunk(), oc.usage_chunk(10, 2)]),
    )
    with sdk.beta.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=50,
        messages=[{"role": "user", "content": "a long question " * 50}],
        context_management={"edits": [COMPACT]},
        betas=["compact-2026-01-12"],
    ) as stream:
        kinds = [(e.type, getattr(e, "index", None)) for e in stream]
        final = stream.get_final_message()
    assert ("content_block_start", 0) in kinds and ("content_block_start", 1) in kinds
    assert [b.type for b in final.content] == ["compaction", "text"]
    assert final.content[0].content == "SUMMARY streamed."
    assert final.content[1].text == "Answer."


def test_pause_after_compaction(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    upstream.enqueue(replies.completion("SUMMARY only."))
    before = len(upstream.requests)
    message = sdk.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        messages=[{"role": "user", "content": "a long question " * 50}],
        context_management={"edits": [{**COMPACT, "pause_after_compaction": True}]},
        betas=["compact-2026-01-12"],
    )
    assert message.stop_reason == "compaction"
    assert [b.type for b in message.content] == ["compaction"]
    assert len(upstream.requests) == before + 1  # the summary call alone


def test_compaction_block_sent_back_drops_the_history(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
):
    upstream.enqueue(replies.completion("continuing"))
    sdk.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=TOOLS,
        messages=[
            *tool_loop(2),
            {
                "role": "assistant",
                "content": [
                    {"type": "compaction", "content": "EARLIER SUMMARY"},
                    {"type": "text", "text": "ok"},
                ],
            },
            {"role": "user", "content": "go on"},
        ],
        betas=["compact-2026-01-12"],
    )
    sent = upstream.last.json["messages"]
    assert "EARLIER SUMMARY" in json.dumps(sent[0])
    assert BIG_RESULT.strip() not in json.dumps(sent)


def test_compaction_summariser_failure_keeps_the_conversation(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
):
    upstream.enqueue(replies.error(400, "summariser refused"), replies.completion("answer anyway"))
    message = sdk.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        messages=[{"role": "user", "content": "a long question " * 50}],
        context_management={"edits": [COMPACT]},
        betas=["compact-2026-01-12"],
    )
    assert message.content[0].type == "compaction" and message.content[0].content is None
    assert message.content[1].text == "answer anyway"
    assert "a long question" in json.dumps(upstream.last.json["messages"])


# -- request fallbacks ---------------------------------------------------------------------------


def test_fallbacks_used_when_the_first_model_fails(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, emulating
):
    upstream.enqueue(replies.error(503, "overloaded"), replies.completion("from the fallback"))
    raw = sdk.beta.messages.with_raw_response.create(
        model="claude-opus-4-8",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        fallbacks=[{"model": "openai/gpt-5", "max_tokens": 20}],
        betas=["server-side-fallback-2026-07-01"],
    )
    message = raw.parse()
    assert message.content[0].text == "from the fallback"
    assert message.model == "openai/gpt-5"
    first, second = upstream.requests[-2:]
    assert first.json["model"] != "openai/gpt-5"
    assert second.json["model"] == "openai/gpt-5"
    assert 20 in (second.json.get("max_tokens"), second.json.get("max_completion_tokens"))
    assert "fallbacks" not in second.json
    assert "openai/gpt-5" in raw.headers["x-anthropic-router-fallback"]
    assert [i.type for i in message.usage.iterations or []] == ["fallback_message"]
    record = record_of(emulating, raw.headers["request-id"])
    assert record["fallback"].startswith("claude-opus-4-8 (overloaded_error)")


def test_fallbacks_after_a_refusal_keep_the_declined_output(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
):
    upstream.enqueue(
        replies.completion("I can't help with that.", finish_reason="content_filter"),
        replies.completion("Here you go."),
    )
    message = sdk.beta.messages.create(
        model="claude-opus-4-8",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        fallbacks=[{"model": "openai/gpt-5"}],
        betas=["server-side-fallback-2026-07-01"],
    )
    assert [b.type for b in message.content] == ["text", "fallback", "text"]
    marker = message.content[1]
    assert (marker.from_.model, marker.to.model) == ("claude-opus-4-8", "openai/gpt-5")
    assert message.stop_reason == "end_turn"


def test_fallbacks_default_is_the_route_chain(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    upstream.enqueue(replies.completion("plain"))
    raw = sdk.beta.messages.with_raw_response.create(
        model="claude-opus-4-8",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        fallbacks="default",
        betas=["server-side-fallback-2026-07-01"],
    )
    assert raw.parse().content[0].text == "plain"
    assert "fallbacks" not in (raw.headers.get("x-anthropic-router-dropped") or "")
    assert "fallbacks" not in upstream.last.json


def test_streamed_fallback_while_opening(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    upstream.enqueue(
        replies.error(429, "slow down"),
        replies.sse([*oc.text_chunks("streamed fallback"), oc.finish_chunk()]),
    )
    with sdk.beta.messages.stream(
        model="claude-opus-4-8",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        fallbacks=[{"model": "openai/gpt-5"}],
        betas=["server-side-fallback-2026-07-01"],
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "streamed fallback"
    assert upstream.last.json["model"] == "openai/gpt-5"


# -- tool-call repair ------------------------------------------------------------------------------


def test_broken_arguments_repaired_and_named(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, emulating
):
    broken = oc.tool_call("call_1", "Bash", "{'command': 'ls -la',}")
    upstream.enqueue(replies.completion(tool_calls=[broken], finish_reason="tool_calls"))
    raw = sdk.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=TOOLS,
        messages=[{"role": "user", "content": "list"}],
    )
    message = raw.parse()
    assert message.content[0].type == "tool_use" and message.content[0].input == {
        "command": "ls -la"
    }
    assert raw.headers["x-anthropic-router-repaired"] == "tool_arguments"
    assert record_of(emulating, raw.headers["request-id"])["repaired"] == ["tool_arguments"]


def test_text_written_call_streamed_becomes_tool_use(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, emulating
):
    text = 'Listing.\n<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"}}\n</tool_call>'
    upstream.enqueue(replies.sse([*oc.text_chunks(text, n_pieces=9), oc.finish_chunk()]))
    with sdk.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=TOOLS,
        messages=[{"role": "user", "content": "list"}],
    ) as stream:
        final = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].name == "Bash" and final.content[1].input == {"command": "ls"}
    assert final.stop_reason == "tool_use"
    assert record_of(emulating, request_id)["repaired"] == ["text_tool_call:hermes"]


def test_invalid_input_is_passed_on_and_counted(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, emulating
):
    call = oc.tool_call("call_1", "Bash", {"cmd": "ls"})
    upstream.enqueue(replies.completion(tool_calls=[call], finish_reason="tool_calls"))
    raw = sdk.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        tools=TOOLS,
        messages=[{"role": "user", "content": "list"}],
    )
    assert raw.parse().content[0].input == {"cmd": "ls"}
    assert record_of(emulating, raw.headers["request-id"])["invalid_tool_inputs"] == 1
    assert "tool input does not match its schema" in emulating.logs()


def test_repair_off(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"TOOL_CALL_REPAIR": "false"})
    text = '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
    upstream.enqueue(replies.completion(text))
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        raw = client.messages.with_raw_response.create(
            model="claude-sonnet-4-6",
            max_tokens=50,
            tools=TOOLS,
            messages=[{"role": "user", "content": "list"}],
        )
    assert raw.parse().content[0].type == "text"
    assert "x-anthropic-router-repaired" not in raw.headers


def test_count_tokens_after_the_edits(sdk: anthropic.Anthropic):
    plain = sdk.beta.messages.count_tokens(
        model="claude-sonnet-4-6", tools=TOOLS, messages=tool_loop(4)
    )
    edited = sdk.beta.messages.count_tokens(
        model="claude-sonnet-4-6",
        tools=TOOLS,
        messages=tool_loop(4),
        context_management={"edits": [CLEAR_TOOL_USES]},
        betas=["context-management-2025-06-27"],
    )
    assert edited.context_management is not None
    assert edited.context_management.original_input_tokens == plain.input_tokens
    assert edited.input_tokens < plain.input_tokens / 2
    assert plain.context_management is None
