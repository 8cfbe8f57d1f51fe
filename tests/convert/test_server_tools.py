"""Table tests of the pure server-tool parts: tool detection, block shapes, history expansion,
citations (whole and streamed, cut at every position) and the per-turn stream rewriting."""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.citations import CitationSplitter, cite_blocks
from anthropic_router.convert.server_tools import (
    SearchResult,
    result_text,
    seal,
    server_tool_kind,
    split_tools,
    to_model_history,
    unseal,
    web_search_error_block,
    web_search_result_block,
)
from anthropic_router.convert.stream import message_events
from anthropic_router.convert.tool_stream import TurnEvents, block_events
from support.grammar import accumulate, check_grammar

SOURCES = {
    1: SearchResult("https://a.example/1", "A", "Alpha excerpt " * 20, "2026-01-01"),
    2: SearchResult("https://b.example/2", "B", "Beta excerpt"),
}


@pytest.mark.parametrize(
    ("tool", "kind"),
    [
        ({"type": "web_search_20250305", "name": "web_search"}, "web_search"),
        ({"type": "web_search_20260318", "name": "web_search"}, "web_search"),
        ({"type": "web_fetch_20250910", "name": "web_fetch"}, "web_fetch"),
        ({"type": "mcp_toolset", "mcp_server_name": "x"}, "mcp"),
        ({"type": "bash_20250124", "name": "bash"}, None),
        ({"name": "Read", "input_schema": {"type": "object"}}, None),
        ({"type": "custom", "name": "web_search"}, None),
        ("junk", None),
    ],
)
def test_server_tool_kind(tool: Any, kind: str | None) -> None:
    assert server_tool_kind(tool) == kind


def test_split_tools() -> None:
    tools = [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
        {"name": "Bash", "input_schema": {"type": "object"}},
        {"type": "mcp_toolset", "mcp_server_name": "calc"},
    ]
    server, toolsets, client = split_tools(tools)
    assert [(t.kind, t.name, t.config["max_uses"]) for t in server] == [
        ("web_search", "web_search", 2)
    ]
    assert toolsets == [tools[2]] and client == [tools[1]]


def test_result_blocks_and_sealed_content() -> None:
    block = web_search_result_block("srvtoolu_1", [SOURCES[2]])
    assert block == {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://b.example/2",
                "title": "B",
                "encrypted_content": block["content"][0]["encrypted_content"],
                "page_age": None,
            }
        ],
    }
    assert unseal(block["content"][0]["encrypted_content"])["s"] == "Beta excerpt"
    assert unseal("not-ours!") == {} and unseal(None) == {}
    assert web_search_error_block("srvtoolu_2", "unavailable")["content"] == {
        "type": "web_search_tool_result_error",
        "error_code": "unavailable",
    }


def test_history_splits_assistant_messages_at_results() -> None:
    sealed = seal({"u": "https://b.example/2", "t": "B", "s": "Beta excerpt"})
    messages = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Searching."},
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": "srvtoolu_1",
                    "content": [
                        {
                            "type": "web_search_result",
                            "url": "https://b.example/2",
                            "title": "B",
                            "encrypted_content": sealed,
                        }
                    ],
                },
                {"type": "text", "text": "Found", "citations": [{"type": "x"}]},
                {
                    "type": "mcp_tool_use",
                    "id": "mcptoolu_1",
                    "name": "add",
                    "server_name": "calc",
                    "input": {"a": 1},
                },
                {
                    "type": "mcp_tool_result",
                    "tool_use_id": "mcptoolu_1",
                    "is_error": True,
                    "content": [{"type": "text", "text": "boom"}],
                },
            ],
        },
    ]
    history = to_model_history(messages)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant", "user"]
    assert history[1]["content"][1] == {
        "type": "tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {},
    }
    result = history[2]["content"][0]
    assert result["tool_use_id"] == "srvtoolu_1" and "[1] B" in result["content"]
    assert "Beta excerpt" in result["content"]
    assert history[3]["content"][0] == {"type": "text", "text": "Found"}  # citations dropped
    assert history[3]["content"][1]["name"] == "mcp__calc__add"
    assert history[4]["content"][0]["is_error"] is True


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {
                "type": "web_fetch_tool_result",
                "content": {"type": "web_fetch_tool_result_error", "error_code": "url_not_allowed"},
            },
            ("Fetch error: url_not_allowed", True),
        ),
        (
            {
                "type": "web_fetch_tool_result",
                "content": {
                    "type": "web_fetch_result",
                    "url": "https://x.example",
                    "content": {
                        "type": "document",
                        "title": "T",
                        "source": {"type": "text", "media_type": "text/plain", "data": "body"},
                    },
                },
            },
            ("URL: https://x.example\nTitle: T\n\nbody", False),
        ),
        (
            {"type": "web_search_tool_result", "content": {"error_code": "max_uses_exceeded"}},
            ("Search error: max_uses_exceeded", True),
        ),
        ({"type": "mcp_tool_result", "content": "plain", "is_error": False}, ("plain", False)),
    ],
)
def test_result_text(block: dict[str, Any], expected: tuple[str, bool]) -> None:
    assert result_text(block) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No markers.", [("No markers.", [])]),
        ("Claim [1]. Rest", [("Claim", ["https://a.example/1"]), (". Rest", [])]),
        ("Trailing space ", [("Trailing space ", [])]),
        (
            "Both [1, 2] done",
            [("Both", ["https://a.example/1", "https://b.example/2"]), (" done", [])],
        ),
        ("Unknown [9] stays", [("Unknown [9] stays", [])]),
        ("Array [0] and list[1]", [("Array [0] and list", ["https://a.example/1"])]),
        ("Ends with [2]", [("Ends with", ["https://b.example/2"])]),
        ("Open bracket [", [("Open bracket [", [])]),
    ],
)
def test_cite_blocks(text: str, expected: list[tuple[str, list[str]]]) -> None:
    blocks = cite_blocks(text, SOURCES)
    got = [(b["text"], [c["url"] for c in b.get("citations", [])]) for b in blocks]
    assert got == expected
    for block in blocks:
        for citation in block.get("citations", []):
            assert citation["type"] == "web_search_result_location"
            assert len(citation["cited_text"]) <= 150 and citation["encrypted_index"]


@pytest.mark.parametrize(
    "text", ["Claim [1]. More [2] end [1,2]", "x[12] [1", "[1][2]", "a  b [1]  c ", "[9] [1]"]
)
def test_streamed_citations_cut_anywhere_match_whole(text: str) -> None:
    whole = cite_blocks(text, SOURCES)
    for cut in range(len(text) + 1):
        splitter = CitationSplitter(SOURCES)
        pieces = splitter.feed(text[:cut]) + splitter.feed(text[cut:]) + splitter.finish()
        rebuilt: list[dict[str, Any]] = []
        current: dict[str, Any] | None = None
        for kind, value in pieces:
            if current is None:
                current = {"type": "text", "text": ""}
                rebuilt.append(current)
            if kind == "text":
                current["text"] += value
            else:
                current["citations"] = value
                current = None
        assert [b for b in rebuilt if b["text"] or b.get("citations")] == whole, cut


def _turn_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m"}
    usage = {
        "input_tokens": 1,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    usage.update(message.pop("usage", {}))
    return message_events({**base, "usage": usage, "stop_sequence": None, **message})


def test_turn_events_hold_server_calls_and_renumber() -> None:
    first = _turn_events(
        {
            "content": [
                {"type": "text", "text": "Looking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "web_search",
                    "input": {"query": "q"},
                },
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 3},
        }
    )
    turn = TurnEvents(frozenset({"web_search"}), 0, first_turn=True)
    out = turn.feed(first)
    assert [c.name for c in turn.calls] == ["web_search"]
    assert turn.calls[0].arguments() == {"query": "q"}
    assert turn.stop_reason == "tool_use" and turn.usage["output_tokens"] == 3
    use = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"q": 1}}
    out += block_events(turn.next_index, use)
    out += block_events(turn.next_index + 1, web_search_result_block("srvtoolu_1", [SOURCES[1]]))
    second = _turn_events(
        {"content": [{"type": "text", "text": "Alpha is real [1]."}], "stop_reason": "end_turn"}
    )
    turn2 = TurnEvents(frozenset({"web_search"}), turn.next_index + 2, dict(SOURCES))
    out += turn2.feed(second)
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    out += [{"type": "message_delta", "delta": delta, "usage": {"output_tokens": 5}}]
    out += [{"type": "message_stop"}]
    check_grammar(out)
    message = accumulate(out)
    assert [b["type"] for b in message["content"]] == [
        "text",
        "server_tool_use",
        "web_search_tool_result",
        "text",
        "text",
    ]
    assert message["content"][1]["input"] == {"q": 1}
    assert message["content"][3]["text"] == "Alpha is real"
    assert message["content"][3]["citations"][0]["url"] == "https://a.example/1"
    assert message["content"][4]["text"] == "."


def test_turn_events_pass_client_tools_and_errors() -> None:
    events = _turn_events(
        {
            "content": [{"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {}}],
            "stop_reason": "tool_use",
        }
    )
    turn = TurnEvents(frozenset({"web_search"}), 3)
    out = turn.feed(events)
    assert turn.client_calls == 1 and not turn.calls
    assert [e["index"] for e in out if e["type"] == "content_block_start"] == [3]
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}
    assert turn.feed([error]) == [error] and turn.failed


def test_turn_events_keep_what_the_model_said_and_thought() -> None:
    events = _turn_events(
        {
            "content": [
                {"type": "thinking", "thinking": "Need a search.", "signature": "sig-1"},
                {"type": "text", "text": "Searching [1] now."},
                {"type": "tool_use", "id": "toolu_1", "name": "web_search", "input": {"q": 1}},
            ],
            "stop_reason": "tool_use",
        }
    )
    turn = TurnEvents(frozenset({"web_search"}), 0, dict(SOURCES), first_turn=True)
    turn.feed(events)
    assert turn.said == [
        {"type": "thinking", "thinking": "Need a search.", "signature": "sig-1"},
        {"type": "text", "text": "Searching [1] now."},
    ]
