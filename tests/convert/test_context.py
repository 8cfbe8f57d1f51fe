"""Context edits as Anthropic documents them (context editing and compaction pages, and the
SDK's `BetaContextManagementConfigParam` / `BetaContextManagementResponse` types): literal
message lists in, message lists and `applied_edits` entries out.

Token counts use one token per character (`len`) so every number in the tables can be
checked by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from anthropic_router.convert import context
from anthropic_router.convert.context import CLEARED_RESULT, SUMMARY_PREFIX

JSON = dict[str, Any]
BIG = "x" * 100  # a tool result worth clearing: 100 - len(CLEARED_RESULT) tokens
GAIN = 100 - len(CLEARED_RESULT)


def user(text: str) -> JSON:
    return {"role": "user", "content": text}


def use(tool_id: str, name: str = "Read", tool_input: JSON | None = None) -> JSON:
    block = {
        "type": "tool_use",
        "id": tool_id,
        "name": name,
        "input": tool_input or {"path": tool_id},
    }
    return {"role": "assistant", "content": [block]}


def result(tool_id: str, text: str = BIG) -> JSON:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": text}],
    }


def cleared(tool_id: str) -> JSON:
    content = [{"type": "text", "text": CLEARED_RESULT}]
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": content}],
    }


def loop(*ids: str, name: str = "Read") -> list[JSON]:
    messages = [user("go")]
    for tool_id in ids:
        messages += [use(tool_id, name), result(tool_id)]
    return messages


def applied_tools(uses: int, tokens: int) -> JSON:
    return {
        "type": "clear_tool_uses_20250919",
        "cleared_tool_uses": uses,
        "cleared_input_tokens": tokens,
    }


# (id, messages, edit, prompt input tokens, messages expected, applied edit expected)
TOOL_CASES: list[tuple[str, list[JSON], JSON, int, list[JSON], JSON | None]] = [
    (
        "below the default trigger (100,000)",
        loop("a", "b", "c", "d"),
        {},
        100_000,
        loop("a", "b", "c", "d"),
        None,
    ),
    (
        "past the trigger, default keep 3",
        loop("a", "b", "c", "d", "e"),
        {},
        100_001,
        [user("go"), use("a"), cleared("a"), use("b"), cleared("b"), *loop("c", "d", "e")[1:]],
        applied_tools(2, 2 * GAIN),
    ),
    (
        "keep 1, custom trigger",
        loop("a", "b", "c"),
        {
            "trigger": {"type": "input_tokens", "value": 500},
            "keep": {"type": "tool_uses", "value": 1},
        },
        501,
        [user("go"), use("a"), cleared("a"), use("b"), cleared("b"), use("c"), result("c")],
        applied_tools(2, 2 * GAIN),
    ),
    (
        "keep 0 clears every result",
        loop("a"),
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 0},
        },
        10,
        [user("go"), use("a"), cleared("a")],
        applied_tools(1, GAIN),
    ),
    (
        "trigger on the number of tool uses",
        loop("a", "b", "c"),
        {"trigger": {"type": "tool_uses", "value": 2}, "keep": {"type": "tool_uses", "value": 2}},
        0,
        [user("go"), use("a"), cleared("a"), *loop("b", "c")[1:]],
        applied_tools(1, GAIN),
    ),
    (
        "tool-use trigger not reached",
        loop("a", "b"),
        {"trigger": {"type": "tool_uses", "value": 2}, "keep": {"type": "tool_uses", "value": 0}},
        0,
        loop("a", "b"),
        None,
    ),
    (
        "exclude_tools keeps their results",
        [
            user("go"),
            use("a", "WebSearch"),
            result("a"),
            use("b"),
            result("b"),
            use("c"),
            result("c"),
        ],
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
            "exclude_tools": ["WebSearch"],
        },
        10,
        [
            user("go"),
            use("a", "WebSearch"),
            result("a"),
            use("b"),
            cleared("b"),
            use("c"),
            result("c"),
        ],
        applied_tools(1, GAIN),
    ),
    (
        "clear_tool_inputs true empties the calls too",
        loop("a", "b"),
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
            "clear_tool_inputs": True,
        },
        10,
        [
            user("go"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "a", "name": "Read", "input": {}}],
            },
            cleared("a"),
            use("b"),
            result("b"),
        ],
        applied_tools(1, GAIN + len('{"path":"a"}') - 1),
    ),
    (
        "clear_tool_inputs as a list names the tools",
        [user("go"), use("a", "Edit"), result("a"), use("b"), result("b"), use("c"), result("c")],
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
            "clear_tool_inputs": ["Edit"],
        },
        10,
        [
            user("go"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "a", "name": "Edit", "input": {}}],
            },
            cleared("a"),
            use("b"),
            cleared("b"),
            use("c"),
            result("c"),
        ],
        applied_tools(2, 2 * GAIN + len('{"path":"a"}') - 1),
    ),
    (
        "clear_at_least not reached: nothing is cleared",
        loop("a", "b"),
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
            "clear_at_least": {"type": "input_tokens", "value": GAIN + 1},
        },
        10,
        loop("a", "b"),
        None,
    ),
    (
        "clear_at_least reached",
        loop("a", "b", "c"),
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
            "clear_at_least": {"type": "input_tokens", "value": 2 * GAIN},
        },
        10,
        [user("go"), use("a"), cleared("a"), use("b"), cleared("b"), use("c"), result("c")],
        applied_tools(2, 2 * GAIN),
    ),
    (
        "results cleared on an earlier turn are not counted again",
        [user("go"), use("a"), cleared("a"), use("b"), result("b"), use("c"), result("c")],
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
        },
        10,
        [user("go"), use("a"), cleared("a"), use("b"), cleared("b"), use("c"), result("c")],
        applied_tools(1, GAIN),
    ),
    (
        "short results are not worth a placeholder",
        [user("go"), use("a"), result("a", "ok"), use("b"), result("b")],
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
        },
        10,
        [user("go"), use("a"), result("a", "ok"), use("b"), result("b")],
        None,
    ),
    (
        "result content as blocks",
        [
            user("go"),
            use("a"),
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "a",
                        "content": [{"type": "text", "text": BIG}],
                    }
                ],
            },
            use("b"),
            result("b"),
        ],
        {
            "trigger": {"type": "input_tokens", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
        },
        10,
        [user("go"), use("a"), cleared("a"), use("b"), result("b")],
        applied_tools(1, len(f'[{{"type":"text","text":"{BIG}"}}]') - len(CLEARED_RESULT)),
    ),
]


@pytest.mark.parametrize(
    ("messages", "edit", "tokens", "expected", "applied"),
    [c[1:] for c in TOOL_CASES],
    ids=[c[0] for c in TOOL_CASES],
)
def test_clear_tool_uses(
    messages: list[JSON], edit: JSON, tokens: int, expected: list[JSON], applied: JSON | None
) -> None:
    before = copy.deepcopy(messages)
    out, done = context.clear_tool_uses(
        messages, {"type": "clear_tool_uses_20250919", **edit}, tokens, len
    )
    assert out == expected
    assert done == applied
    assert messages == before  # the client's request is never changed in place


def think(text: str) -> JSON:
    return {"type": "thinking", "thinking": text, "signature": "sig"}


def answer(*blocks: JSON) -> JSON:
    return {"role": "assistant", "content": list(blocks)}


TEXT = {"type": "text", "text": "done"}
TOOL = {"type": "tool_use", "id": "t1", "name": "Read", "input": {}}
RESULT = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}
REDACTED = {"type": "redacted_thinking", "data": "abcd"}

# (id, messages, keep, messages expected, applied edit expected)
THINKING_CASES: list[tuple[str, list[JSON], Any, list[JSON], JSON | None]] = [
    (
        "keep all",
        [user("a"), answer(think("t1"), TEXT), user("b"), answer(think("t2"), TEXT)],
        "all",
        [user("a"), answer(think("t1"), TEXT), user("b"), answer(think("t2"), TEXT)],
        None,
    ),
    (
        "keep {type: all}",
        [user("a"), answer(think("t1"), TEXT), user("b")],
        {"type": "all"},
        [user("a"), answer(think("t1"), TEXT), user("b")],
        None,
    ),
    (
        "default: the last turn's thinking",
        [user("a"), answer(think("t1"), TEXT), user("b"), answer(think("t2"), TEXT)],
        None,
        [user("a"), answer(TEXT), user("b"), answer(think("t2"), TEXT)],
        {"type": "clear_thinking_20251015", "cleared_thinking_turns": 1, "cleared_input_tokens": 2},
    ),
    (
        "a tool loop is one turn",
        [
            user("a"),
            answer(think("t1"), TOOL),
            RESULT,
            answer(think("t2"), TEXT),
            user("b"),
            answer(think("t3"), TEXT),
        ],
        {"type": "thinking_turns", "value": 1},
        [user("a"), answer(TOOL), RESULT, answer(TEXT), user("b"), answer(think("t3"), TEXT)],
        {"type": "clear_thinking_20251015", "cleared_thinking_turns": 1, "cleared_input_tokens": 4},
    ),
    (
        "keep 2 turns",
        [
            user("a"),
            answer(think("t1"), TEXT),
            user("b"),
            answer(think("t2"), TEXT),
            user("c"),
            answer(think("t3"), TEXT),
        ],
        {"type": "thinking_turns", "value": 2},
        [
            user("a"),
            answer(TEXT),
            user("b"),
            answer(think("t2"), TEXT),
            user("c"),
            answer(think("t3"), TEXT),
        ],
        {"type": "clear_thinking_20251015", "cleared_thinking_turns": 1, "cleared_input_tokens": 2},
    ),
    (
        "redacted thinking is thinking too",
        [user("a"), answer(REDACTED, TEXT), user("b"), answer(think("t2"), TEXT)],
        None,
        [user("a"), answer(TEXT), user("b"), answer(think("t2"), TEXT)],
        {"type": "clear_thinking_20251015", "cleared_thinking_turns": 1, "cleared_input_tokens": 4},
    ),
    (
        "turns without thinking do not count",
        [user("a"), answer(think("t1"), TEXT), user("b"), answer(TEXT)],
        None,
        [user("a"), answer(think("t1"), TEXT), user("b"), answer(TEXT)],
        None,
    ),
]


@pytest.mark.parametrize(
    ("messages", "keep", "expected", "applied"),
    [c[1:] for c in THINKING_CASES],
    ids=[c[0] for c in THINKING_CASES],
)
def test_clear_thinking(
    messages: list[JSON], keep: Any, expected: list[JSON], applied: JSON | None
) -> None:
    edit: JSON = {"type": "clear_thinking_20251015"}
    if keep is not None:
        edit["keep"] = keep
    before = copy.deepcopy(messages)
    out, done = context.clear_thinking(messages, edit, len)
    assert (out, done) == (expected, applied)
    assert messages == before


def test_edits_apply_in_order_and_leave_the_field_out() -> None:
    request = {
        "model": "m",
        "messages": [
            user("a"),
            answer(think("t1"), TEXT),
            *loop("x", "y")[1:],
            user("b"),
            answer(think("t2"), TEXT),
        ],
        "context_management": {
            "edits": [
                {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}},
                {
                    "type": "clear_tool_uses_20250919",
                    "trigger": {"type": "input_tokens", "value": 1},
                    "keep": {"type": "tool_uses", "value": 1},
                },
                {"type": "something_newer_20270101"},
            ]
        },
    }
    edited, applied = context.apply_context_edits(request, 1000, len)
    assert "context_management" not in edited
    assert [e["type"] for e in applied] == ["clear_thinking_20251015", "clear_tool_uses_20250919"]
    assert edited["messages"][1] == answer(TEXT)
    assert edited["messages"][3] == cleared("x")
    assert context.unknown_edits(request) == ["something_newer_20270101"]


@pytest.mark.parametrize(
    ("edits", "needed"),
    [
        ([{"type": "clear_thinking_20251015", "keep": "all"}], False),
        ([{"type": "clear_tool_uses_20250919"}], True),
        (
            [{"type": "clear_tool_uses_20250919", "trigger": {"type": "tool_uses", "value": 3}}],
            False,
        ),
        ([{"type": "compact_20260112"}], True),
    ],
)
def test_needs_input_tokens(edits: list[JSON], needed: bool) -> None:
    assert context.needs_input_tokens({"context_management": {"edits": edits}}) is needed


# -- compaction ---------------------------------------------------------------------------------

SUMMARY = "The user asked for a list; it was given."

COMPACTION_CASES: list[tuple[str, list[JSON], list[JSON]]] = [
    ("no compaction block", [user("a"), answer(TEXT)], [user("a"), answer(TEXT)]),
    (
        "everything before the block is dropped",
        [
            user("a"),
            answer(TEXT),
            user("b"),
            answer({"type": "compaction", "content": SUMMARY}, TEXT),
            user("c"),
        ],
        [
            {"role": "user", "content": [{"type": "text", "text": SUMMARY_PREFIX + SUMMARY}]},
            answer(TEXT),
            user("c"),
        ],
    ),
    (
        "the last block wins",
        [
            answer({"type": "compaction", "content": "old"}),
            user("b"),
            answer({"type": "compaction", "content": SUMMARY}),
            user("c"),
        ],
        [
            {"role": "user", "content": [{"type": "text", "text": SUMMARY_PREFIX + SUMMARY}]},
            user("c"),
        ],
    ),
    (
        "a failed compaction (null content) is a no-op",
        [user("a"), answer({"type": "compaction", "content": None}, TEXT), user("b")],
        [user("a"), answer(TEXT), user("b")],
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [c[1:] for c in COMPACTION_CASES],
    ids=[c[0] for c in COMPACTION_CASES],
)
def test_resolve_compaction(messages: list[JSON], expected: list[JSON]) -> None:
    assert context.resolve_compaction(messages) == expected


@pytest.mark.parametrize(
    ("edit", "tokens", "due"),
    [
        ({}, 149_999, False),
        ({}, 150_000, True),
        ({"trigger": {"type": "input_tokens", "value": 50_000}}, 50_000, True),
        ({"trigger": {"type": "input_tokens", "value": 50_000}}, 49_999, False),
    ],
)
def test_compaction_due(edit: JSON, tokens: int, due: bool) -> None:
    assert context.compaction_due({"type": "compact_20260112", **edit}, tokens) is due


TOOLS = [{"name": "Read", "input_schema": {"type": "object"}}]


def test_summary_request_default_prompt() -> None:
    request = {
        "model": "claude-x",
        "max_tokens": 10,
        "system": "sys",
        "tools": TOOLS,
        "messages": [user("a"), answer(TEXT), user("b")],
    }
    body = context.summary_request(request, {"type": "compact_20260112"}, "small-model")
    assert body == {
        "model": "small-model",
        "max_tokens": 8192,
        "system": "sys",
        "tools": TOOLS,
        "tool_choice": {"type": "none"},
        "messages": [
            user("a"),
            answer(TEXT),
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "b"},
                    {"type": "text", "text": context.DEFAULT_SUMMARY_PROMPT},
                ],
            },
        ],
    }


def test_summary_request_instructions_replace_the_prompt() -> None:
    request = {"model": "claude-x", "messages": [user("a"), answer(TEXT)]}
    body = context.summary_request(
        request, {"type": "compact_20260112", "instructions": "Only file names."}, "s"
    )
    assert body["messages"][-1] == {"role": "user", "content": "Only file names."}
    assert "tool_choice" not in body


def test_compacted_request_keeps_a_standalone_last_message() -> None:
    request = {"model": "m", "messages": [user("a"), answer(TEXT), user("now this")]}
    assert context.compacted_request(request, SUMMARY)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": SUMMARY_PREFIX + SUMMARY},
                {"type": "text", "text": "now this"},
            ],
        }
    ]
    with_results = {"model": "m", "messages": [user("a"), answer(TOOL), RESULT]}
    assert context.compacted_request(with_results, SUMMARY)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": SUMMARY_PREFIX + SUMMARY}]}
    ]


def test_compaction_block_and_events() -> None:
    assert context.compaction_block(SUMMARY) == {"type": "compaction", "content": SUMMARY}
    assert context.compaction_events(SUMMARY) == [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "compaction", "content": None},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "compaction_delta", "content": SUMMARY},
        },
        {"type": "content_block_stop", "index": 0},
    ]
    assert [e["type"] for e in context.compaction_events(None)] == [
        "content_block_start",
        "content_block_stop",
    ]


def test_summary_text() -> None:
    assert (
        context.summary_text(
            {"content": [{"type": "thinking", "thinking": "x"}, {"type": "text", "text": " S "}]}
        )
        == "S"
    )
    assert context.summary_text({"content": []}) is None


def test_reply_shapes_parse_with_the_sdk() -> None:
    """The applied edits and the compaction block are the SDK's own beta types."""
    from anthropic.types.beta import BetaCompactionBlock, BetaContextManagementResponse

    response = BetaContextManagementResponse.model_validate(
        {
            "applied_edits": [
                applied_tools(2, 10),
                {
                    "type": "clear_thinking_20251015",
                    "cleared_thinking_turns": 1,
                    "cleared_input_tokens": 3,
                },
            ]
        }
    )
    assert [e.type for e in response.applied_edits] == [
        "clear_tool_uses_20250919",
        "clear_thinking_20251015",
    ]
    assert BetaCompactionBlock.model_validate(context.compaction_block(SUMMARY)).content == SUMMARY


DEFAULT_EDITS = [
    {"type": "clear_tool_uses_20250919", "keep": {"type": "tool_uses", "value": 1}},
    {"type": "clear_thinking_20251015"},
]


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        (None, DEFAULT_EDITS),
        (
            [{"type": "clear_thinking_20251015", "keep": "all"}],
            [{"type": "clear_thinking_20251015", "keep": "all"}, DEFAULT_EDITS[0]],
        ),
        (
            [{"type": "clear_tool_uses_20250919"}, {"type": "clear_thinking_20251015"}],
            [{"type": "clear_tool_uses_20250919"}, {"type": "clear_thinking_20251015"}],
        ),
    ],
    ids=["none of its own", "its own type wins", "all its own"],
)
def test_default_edits_fill_missing_types(own: list[JSON] | None, expected: list[JSON]) -> None:
    request: JSON = {"model": "m", "messages": []}
    if own is not None:
        request["context_management"] = {"edits": own}
    assert (
        context.with_default_edits(request, DEFAULT_EDITS)["context_management"]["edits"]
        == expected
    )
