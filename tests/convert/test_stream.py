"""`StreamTranslator`: scripts of upstream chunks in, the exact Anthropic event list out.

Every script is also run through the grammar checker (`grammar.check_grammar`): indices start
at 0 and are dense, every delta follows its block's start, one block is open at a time, and
the stream ends with message_delta + message_stop or an error, with nothing after.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anthropic_router.convert.sse import SSEDecoder
from anthropic_router.convert.stream import StreamTranslator, message_events
from anthropic_router.errors import ApiError
from support.anthropic_events import (
    TEXT,
    THINKING,
    end,
    error,
    json_d,
    opening,
    sig_d,
    start,
    stop,
    text_d,
    think_d,
    tool,
)
from support.grammar import accumulate, check_grammar

JSON = dict[str, Any]

MODEL = "claude-sonnet-4-5"
DONE = b"[DONE]"
END = "end_of_input"  # the upstream closed the connection
SIG = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxDdp"
LONG_NAME = "a" * 100
LONG_NAME_UP = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_28165978"

# -- upstream chunk builders (plain dicts, shaped as OpenRouter sends them) -------------------


def ch(
    delta: JSON | None = None, finish: str | None = None, usage: JSON | None = None, **choice: Any
) -> JSON:
    chunk: JSON = {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "model": "openai/gpt-4o",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **choice}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def tc(index: int | None, id: str | None = None, name: str | None = None, args: Any = None) -> JSON:
    item: JSON = {}
    if index is not None:
        item["index"] = index
    if id is not None:
        item["id"] = id
        item["type"] = "function"
    function: JSON = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    item["function"] = function
    return item


def tools(*items: JSON) -> JSON:
    return {"tool_calls": list(items)}


def u(prompt: int, completion: int, cached: int = 0) -> JSON:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> JSON:
    return {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": u(prompt, completion, cached),
    }


# -- expected Anthropic events -----------------------------------------------------------------

START: list[JSON] = opening(MODEL)


def U(inp: int, out: int, cache_read: int = 0, cache_write: int = 0) -> JSON:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
    }


# -- running a script ----------------------------------------------------------------------------


def run(script: list[Any], **kwargs: Any) -> tuple[list[JSON], StreamTranslator]:
    translator = StreamTranslator(model=MODEL, message_id="msg_test", **kwargs)
    events = translator.start()
    for item in script:
        if item == END:
            events += translator.end_of_input()
        elif isinstance(item, bytes):
            events += translator.feed_data(item)
        else:
            events += translator.feed(item)
    return events, translator


# (id, script, translator kwargs, expected events after START)
Script = tuple[str, list[Any], JSON, list[JSON]]

TEXT_SCRIPTS: list[Script] = [
    (
        "plain text in pieces, usage after finish (OpenRouter)",
        [
            ch({"role": "assistant", "content": "Hel"}),
            ch({"content": "lo"}),
            ch({"content": "!"}),
            ch({}, "stop"),
            usage_chunk(12, 5),
            DONE,
        ],
        {},
        [
            start(0, TEXT),
            text_d(0, "Hel"),
            text_d(0, "lo"),
            text_d(0, "!"),
            stop(0),
            *end("end_turn", U(12, 5)),
        ],
    ),
    (
        'delta.content "" and null do not open a block',
        [
            ch({"role": "assistant", "content": ""}),
            ch({"content": None}),
            ch({"content": "Hi"}),
            ch({"content": ""}),
            ch({"content": ""}, "stop"),
            DONE,
        ],
        {},
        [start(0, TEXT), text_d(0, "Hi"), stop(0), *end("end_turn")],
    ),
    (
        "only empty content: no block at all",
        [ch({"role": "assistant", "content": ""}), ch({}, "stop"), DONE],
        {},
        end("end_turn"),
    ),
    (
        "usage on every chunk (Databricks): the last one counts",
        [
            ch({"content": "a"}, usage=u(5, 1)),
            ch({"content": "b"}, usage=u(5, 2)),
            ch({}, "stop", usage=u(5, 3)),
            DONE,
        ],
        {},
        [start(0, TEXT), text_d(0, "a"), text_d(0, "b"), stop(0), *end("end_turn", U(5, 3))],
    ),
    (
        "cached prompt tokens are subtracted",
        [ch({"content": "a"}), ch({}, "stop"), usage_chunk(100, 5, cached=60), DONE],
        {},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("end_turn", U(40, 5, cache_read=60))],
    ),
    (
        "finish and content in the same chunk: content first",
        [ch({"role": "assistant", "content": "All at once."}, "stop", usage=u(3, 4)), DONE],
        {},
        [start(0, TEXT), text_d(0, "All at once."), stop(0), *end("end_turn", U(3, 4))],
    ),
    (
        "content after finish is ignored",
        [
            ch({"content": "a"}),
            ch({}, "stop"),
            ch({"content": "late"}),
            ch(tools(tc(0, "call_late", "f", "{}"))),
            ch({"reasoning": "late thought"}),
            usage_chunk(1, 1),
            DONE,
        ],
        {},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("end_turn", U(1, 1))],
    ),
    (
        "finish length -> max_tokens",
        [ch({"content": "cut"}), ch({}, "length"), DONE],
        {},
        [start(0, TEXT), text_d(0, "cut"), stop(0), *end("max_tokens")],
    ),
    (
        "finish content_filter -> refusal",
        [ch({"content": "I"}), ch({}, "content_filter"), DONE],
        {},
        [start(0, TEXT), text_d(0, "I"), stop(0), *end("refusal")],
    ),
    (
        "Anthropic-native finish reasons pass through",
        [ch({"content": "x"}), ch({}, "end_turn"), DONE],
        {},
        [start(0, TEXT), text_d(0, "x"), stop(0), *end("end_turn")],
    ),
    (
        "stop sequence named by the upstream",
        [ch({"content": "a"}), ch({}, "stop", stop_reason="END"), DONE],
        {"stop_sequences": ["END", "###"]},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("stop_sequence", stop_sequence="END")],
    ),
    (
        "a stop string the client did not ask for",
        [ch({"content": "a"}), ch({}, "stop", stop_reason="OTHER"), DONE],
        {"stop_sequences": ["END"]},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("end_turn")],
    ),
    (
        "[DONE] without a finish reason ends the turn normally",
        [ch({"content": "a"}), DONE],
        {},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("end_turn")],
    ),
    (
        "blank payloads and chunks without choices are ignored",
        [
            b"",
            b"  \n",
            {"id": "gen-1"},
            {"id": "gen-1", "choices": []},
            ch({"content": "a"}),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("end_turn")],
    ),
    (
        "chunks whose choices are not a list of objects are ignored",
        [
            {"choices": 5},
            {"choices": {"0": {"delta": {"content": "x"}}}},
            {"choices": "abc"},
            {"choices": [None]},
            ch({"content": "a"}),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("end_turn")],
    ),
    (
        "raw JSON payloads through feed_data",
        [
            b'{"choices":[{"index":0,"delta":{"content":"raw"},"finish_reason":null}]}',
            b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
            b'{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}',
            b" [DONE] ",
        ],
        {},
        [start(0, TEXT), text_d(0, "raw"), stop(0), *end("end_turn", U(2, 1))],
    ),
    (
        "end_of_input after finish is a normal end",
        [ch({"content": "a"}), ch({}, "stop"), usage_chunk(4, 2), END],
        {},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("end_turn", U(4, 2))],
    ),
    (
        "nothing after [DONE]",
        [ch({"content": "a"}), ch({}, "stop"), DONE, ch({"content": "x"}), DONE, END],
        {},
        [start(0, TEXT), text_d(0, "a"), stop(0), *end("end_turn")],
    ),
]

REASONING_SCRIPTS: list[Script] = [
    (
        "reasoning then text: indices 0 and 1",
        [
            ch({"role": "assistant", "content": "", "reasoning": "Let me "}),
            ch({"content": "", "reasoning": "think."}),
            ch({"content": "42", "reasoning": None}),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [
            start(0, THINKING),
            think_d(0, "Let me "),
            think_d(0, "think."),
            stop(0),
            start(1, TEXT),
            text_d(1, "42"),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "reasoning_content (DeepSeek/vLLM)",
        [ch({"reasoning_content": "hm"}), ch({"content": "a"}), ch({}, "stop"), DONE],
        {},
        [
            start(0, THINKING),
            think_d(0, "hm"),
            stop(0),
            start(1, TEXT),
            text_d(1, "a"),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "reasoning_details with a signature -> signature_delta",
        [
            ch(
                {
                    "reasoning": "Step 1.",
                    "reasoning_details": [
                        {
                            "type": "reasoning.text",
                            "text": "Step 1.",
                            "format": "anthropic-claude-v1",
                            "index": 0,
                        }
                    ],
                }
            ),
            ch(
                {
                    "reasoning": "",
                    "reasoning_details": [
                        {
                            "type": "reasoning.text",
                            "text": "",
                            "signature": SIG,
                            "format": "anthropic-claude-v1",
                            "index": 0,
                        }
                    ],
                }
            ),
            ch({"content": "Done."}),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [
            start(0, THINKING),
            think_d(0, "Step 1."),
            sig_d(0, SIG),
            stop(0),
            start(1, TEXT),
            text_d(1, "Done."),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "reasoning and reasoning_details in the same delta are not double-counted",
        [
            ch(
                {
                    "reasoning": "A",
                    "reasoning_details": [{"type": "reasoning.text", "text": "A", "index": 0}],
                }
            ),
            ch(
                {
                    "reasoning": "B",
                    "reasoning_details": [{"type": "reasoning.text", "text": "B", "index": 0}],
                }
            ),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [start(0, THINKING), think_d(0, "A"), think_d(0, "B"), stop(0), *end("end_turn")],
    ),
    (
        "redacted reasoning -> redacted_thinking start + stop",
        [
            ch({"reasoning_details": [{"type": "reasoning.text", "text": "visible", "index": 0}]}),
            ch({"reasoning_details": [{"type": "reasoning.encrypted", "data": "ENC", "index": 1}]}),
            ch({"content": "ok"}),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [
            start(0, THINKING),
            think_d(0, "visible"),
            stop(0),
            start(1, {"type": "redacted_thinking", "data": "ENC"}),
            stop(1),
            start(2, TEXT),
            text_d(2, "ok"),
            stop(2),
            *end("end_turn"),
        ],
    ),
    (
        "a new reasoning_details index starts a new thinking block",
        [
            ch({"reasoning_details": [{"type": "reasoning.text", "text": "a", "index": 0}]}),
            ch({"reasoning_details": [{"type": "reasoning.text", "text": "b", "index": 1}]}),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [
            start(0, THINKING),
            think_d(0, "a"),
            stop(0),
            start(1, THINKING),
            think_d(1, "b"),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "reasoning after text opens a new thinking block (interleaved)",
        [ch({"content": "a"}), ch({"reasoning": "b"}), ch({"content": "c"}), ch({}, "stop"), DONE],
        {},
        [
            start(0, TEXT),
            text_d(0, "a"),
            stop(0),
            start(1, THINKING),
            think_d(1, "b"),
            stop(1),
            start(2, TEXT),
            text_d(2, "c"),
            stop(2),
            *end("end_turn"),
        ],
    ),
    (
        "Databricks content lists in deltas",
        [
            ch(
                {
                    "content": [
                        {
                            "type": "reasoning",
                            "summary": [
                                {"type": "summary_text", "text": "think", "signature": "DBSIG"}
                            ],
                        }
                    ]
                }
            ),
            ch({"content": [{"type": "text", "text": "final"}, {"type": "text", "text": ""}]}),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [
            start(0, THINKING),
            think_d(0, "think"),
            sig_d(0, "DBSIG"),
            stop(0),
            start(1, TEXT),
            text_d(1, "final"),
            stop(1),
            *end("end_turn"),
        ],
    ),
]

TOOL_SCRIPTS: list[Script] = [
    (
        "a tool call with arguments in fragments (id and name only first)",
        [
            ch({"role": "assistant", "content": None, **tools(tc(0, "call_1", "get_weather", ""))}),
            ch(tools(tc(0, args='{"city":'))),
            ch(tools(tc(0, args=' "Paris"}'))),
            ch({}, "tool_calls"),
            usage_chunk(20, 9),
            DONE,
        ],
        {},
        [
            start(0, tool("call_1", "get_weather")),
            json_d(0, '{"city":'),
            json_d(0, ' "Paris"}'),
            stop(0),
            *end("tool_use", U(20, 9)),
        ],
    ),
    (
        "text then a tool call",
        [
            ch({"content": "Checking."}),
            ch(tools(tc(0, "call_1", "get_weather", '{"city":"Oslo"}'))),
            ch({}, "tool_calls"),
            DONE,
        ],
        {},
        [
            start(0, TEXT),
            text_d(0, "Checking."),
            stop(0),
            start(1, tool("call_1", "get_weather")),
            json_d(1, '{"city":"Oslo"}'),
            stop(1),
            *end("tool_use"),
        ],
    ),
    (
        "two parallel tool calls, one after the other",
        [
            ch(tools(tc(0, "call_a", "f", ""))),
            ch(tools(tc(0, args='{"x":'))),
            ch(tools(tc(0, args="1}"))),
            ch(tools(tc(1, "call_b", "g", ""))),
            ch(tools(tc(1, args='{"y":2}'))),
            ch({}, "tool_calls"),
            DONE,
        ],
        {},
        [
            start(0, tool("call_a", "f")),
            json_d(0, '{"x":'),
            json_d(0, "1}"),
            stop(0),
            start(1, tool("call_b", "g")),
            json_d(1, '{"y":2}'),
            stop(1),
            *end("tool_use"),
        ],
    ),
    (
        "two tool calls in one chunk",
        [
            ch(tools(tc(0, "call_a", "f", '{"x":1}'), tc(1, "call_b", "g", '{"y":2}'))),
            ch({}, "tool_calls"),
            DONE,
        ],
        {},
        [
            start(0, tool("call_a", "f")),
            json_d(0, '{"x":1}'),
            stop(0),
            start(1, tool("call_b", "g")),
            json_d(1, '{"y":2}'),
            stop(1),
            *end("tool_use"),
        ],
    ),
    (
        "upstream tool indices need not start at 0 or be contiguous",
        [
            ch(tools(tc(3, "call_a", "f", '{"x":1}'))),
            ch(tools(tc(7, "call_b", "g", '{"y":2}'))),
            ch({}, "tool_calls"),
            DONE,
        ],
        {},
        [
            start(0, tool("call_a", "f")),
            json_d(0, '{"x":1}'),
            stop(0),
            start(1, tool("call_b", "g")),
            json_d(1, '{"y":2}'),
            stop(1),
            *end("tool_use"),
        ],
    ),
    (
        "a new id on a known index starts a new tool (index-less providers)",
        [
            ch(tools(tc(None, "call_a", "f", '{"x":1}'))),
            ch(tools(tc(None, "call_b", "g", '{"y":2}'))),
            ch({}, "tool_calls"),
            DONE,
        ],
        {},
        [
            start(0, tool("call_a", "f")),
            json_d(0, '{"x":1}'),
            stop(0),
            start(1, tool("call_b", "g")),
            json_d(1, '{"y":2}'),
            stop(1),
            *end("tool_use"),
        ],
    ),
    (
        "an id repeated on every fragment stays one tool",
        [
            ch(tools(tc(0, "call_a", "f", '{"x":'))),
            ch(tools(tc(0, "call_a", None, "1}"))),
            ch({}, "tool_calls"),
            DONE,
        ],
        {},
        [
            start(0, tool("call_a", "f")),
            json_d(0, '{"x":'),
            json_d(0, "1}"),
            stop(0),
            *end("tool_use"),
        ],
    ),
    (
        'Databricks "{}" prefix is held back',
        [
            ch(tools(tc(0, "call_1", "search", "{}"))),
            ch(tools(tc(0, args='{"q": "x"}'))),
            ch({}, "tool_calls"),
            DONE,
        ],
        {},
        [start(0, tool("call_1", "search")), json_d(0, '{"q": "x"}'), stop(0), *end("tool_use")],
    ),
    (
        'a lone "{}" (no-argument tool) sends no delta: input stays {}',
        [ch(tools(tc(0, "call_1", "now", "{}"))), ch({}, "tool_calls"), DONE],
        {},
        [start(0, tool("call_1", "now")), stop(0), *end("tool_use")],
    ),
    (
        "dict arguments in a chunk are serialised",
        [ch(tools(tc(0, "call_1", "f", {"a": [1, 2]}))), ch({}, "tool_calls"), DONE],
        {},
        [start(0, tool("call_1", "f")), json_d(0, '{"a":[1,2]}'), stop(0), *end("tool_use")],
    ),
    (
        "ids are sanitised and made unique, names mapped back",
        [
            ch(tools(tc(0, "functions.Bash:0", LONG_NAME_UP, '{"a":1}'))),
            ch(tools(tc(1, "functions.Bash:0", "other", '{"b":2}'))),
            ch({}, "tool_calls"),
            DONE,
        ],
        {"tool_names": {LONG_NAME_UP: LONG_NAME}},
        [
            start(0, tool("functions_Bash_0", LONG_NAME)),
            json_d(0, '{"a":1}'),
            stop(0),
            start(1, tool("functions_Bash_0_", "other")),
            json_d(1, '{"b":2}'),
            stop(1),
            *end("tool_use"),
        ],
    ),
    (
        "finish and a whole tool call in the same chunk",
        [ch(tools(tc(0, "call_1", "f", '{"a":1}')), "tool_calls", usage=u(8, 6)), DONE],
        {},
        [start(0, tool("call_1", "f")), json_d(0, '{"a":1}'), stop(0), *end("tool_use", U(8, 6))],
    ),
    (
        "a second finish chunk repeating finish_reason carries the usage (OpenRouter)",
        [
            ch(tools(tc(0, "call_1", "f", '{"a":1}'))),
            ch({}, "tool_calls"),
            ch({}, "tool_calls", usage=u(30, 12)),
            DONE,
        ],
        {},
        [start(0, tool("call_1", "f")), json_d(0, '{"a":1}'), stop(0), *end("tool_use", U(30, 12))],
    ),
    (
        'finish "stop" after tool calls -> tool_use',
        [
            ch(tools(tc(0, "call_1", "f", "{}"), tc(1, "call_2", "g", '{"k":1}'))),
            ch({}, "stop"),
            DONE,
        ],
        {},
        [
            start(0, tool("call_1", "f")),
            stop(0),
            start(1, tool("call_2", "g")),
            json_d(1, '{"k":1}'),
            stop(1),
            *end("tool_use"),
        ],
    ),
    (
        "[DONE] without a finish after tool calls -> tool_use",
        [ch(tools(tc(0, "call_1", "f", '{"a":1}'))), DONE],
        {},
        [start(0, tool("call_1", "f")), json_d(0, '{"a":1}'), stop(0), *end("tool_use")],
    ),
]

ERROR_SCRIPTS: list[Script] = [
    (
        "mid-stream error chunk: block closed, then the error, nothing after",
        [
            ch({"content": "partial"}),
            {
                "id": "gen-1",
                "object": "chat.completion.chunk",
                "provider": "SomeProvider",
                "error": {
                    "code": 502,
                    "message": "Provider returned error",
                    "metadata": {"provider_name": "X"},
                },
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
            },
            ch({"content": "more"}),
            usage_chunk(1, 1),
            DONE,
            END,
        ],
        {},
        [
            start(0, TEXT),
            text_d(0, "partial"),
            stop(0),
            error("api_error", "upstream error: Provider returned error"),
        ],
    ),
    (
        "mid-stream rate limit with a string code",
        [ch({"reasoning": "hm"}), {"error": {"code": "429", "message": "Rate limited"}}, DONE],
        {},
        [start(0, THINKING), think_d(0, "hm"), stop(0), error("rate_limit_error", "Rate limited")],
    ),
    (
        "mid-stream error before any content",
        [{"error": {"code": "server_error", "message": "Internal"}}],
        {},
        [error("api_error", "upstream error: Internal")],
    ),
    (
        'finish_reason "error" without details',
        [ch({"content": "x"}), ch({"content": ""}, "error"), DONE],
        {},
        [
            start(0, TEXT),
            text_d(0, "x"),
            stop(0),
            error("api_error", "upstream error: generation failed"),
        ],
    ),
    (
        'finish_reason "error" with a choice error, inside a tool call',
        [
            ch(tools(tc(0, "call_1", "f", '{"a":'))),
            ch({}, "error", error={"code": 503, "message": "Overloaded"}),
            DONE,
        ],
        {},
        [
            start(0, tool("call_1", "f")),
            json_d(0, '{"a":'),
            stop(0),
            error("overloaded_error", "Overloaded"),
        ],
    ),
    (
        "malformed JSON payload",
        [ch({"content": "a"}), b'{"choices": [', ch({"content": "b"}), DONE],
        {},
        [
            start(0, TEXT),
            text_d(0, "a"),
            stop(0),
            error("api_error", "upstream sent a malformed stream chunk"),
        ],
    ),
    (
        "a JSON payload that is not an object",
        [b"[1, 2]", DONE],
        {},
        [error("api_error", "upstream sent a malformed stream chunk")],
    ),
    (
        "end_of_input without a finish reason is an error",
        [ch({"content": "a"}), END],
        {},
        [
            start(0, TEXT),
            text_d(0, "a"),
            stop(0),
            error("api_error", "upstream stream ended before the answer was complete"),
        ],
    ),
    (
        "end_of_input inside a tool call",
        [ch(tools(tc(0, "call_1", "f", '{"a":'))), END],
        {},
        [
            start(0, tool("call_1", "f")),
            json_d(0, '{"a":'),
            stop(0),
            error("api_error", "upstream stream ended before the answer was complete"),
        ],
    ),
    (
        "end_of_input with no chunks at all",
        [END],
        {},
        [error("api_error", "upstream stream ended before the answer was complete")],
    ),
]

ALL_SCRIPTS = TEXT_SCRIPTS + REASONING_SCRIPTS + TOOL_SCRIPTS + ERROR_SCRIPTS


def _params(scripts: list[Script]) -> Any:
    return pytest.mark.parametrize(
        ("script", "kwargs", "expected"),
        [case[1:] for case in scripts],
        ids=[case[0] for case in scripts],
    )


@_params(TEXT_SCRIPTS)
def test_text(script: list[Any], kwargs: JSON, expected: list[JSON]) -> None:
    events, _ = run(script, **kwargs)
    assert events == START + expected
    check_grammar(events)


@_params(REASONING_SCRIPTS)
def test_reasoning(script: list[Any], kwargs: JSON, expected: list[JSON]) -> None:
    events, _ = run(script, **kwargs)
    assert events == START + expected
    check_grammar(events)


@_params(TOOL_SCRIPTS)
def test_tools(script: list[Any], kwargs: JSON, expected: list[JSON]) -> None:
    events, _ = run(script, **kwargs)
    assert events == START + expected
    check_grammar(events)
    for block in accumulate(events)["content"]:
        if block["type"] == "tool_use":
            assert isinstance(block["input"], dict)


@_params(ERROR_SCRIPTS)
def test_errors(script: list[Any], kwargs: JSON, expected: list[JSON]) -> None:
    events, translator = run(script, **kwargs)
    assert events == START + expected
    check_grammar(events)
    assert translator.done
    assert translator.failed is not None
    assert translator.failed.error_type == expected[-1]["error"]["type"]


@pytest.mark.parametrize(
    "script", [case[1] for case in ALL_SCRIPTS], ids=[case[0] for case in ALL_SCRIPTS]
)
def test_nothing_after_the_end(script: list[Any]) -> None:
    """Once a script has ended the stream, further input of any kind produces no events."""
    _, translator = run([*script, END])
    assert translator.done
    assert translator.feed(ch({"content": "again"})) == []
    assert translator.feed_data(b'{"choices":[]}') == []
    assert translator.feed_data(DONE) == []
    assert translator.finish() == []
    assert translator.end_of_input() == []
    assert translator.start() == []


def test_state_after_a_normal_end() -> None:
    _, translator = run(
        [ch(tools(tc(0, "call_1", "f", "{}"))), ch({}, "stop"), usage_chunk(7, 3), DONE]
    )
    assert (translator.done, translator.failed, translator.stop_reason) == (True, None, "tool_use")
    assert translator.usage == u(7, 3)


def test_tool_call_without_an_id_gets_one() -> None:
    events, _ = run(
        [ch(tools(tc(0, None, "f", '{"a":1}'), tc(1, "", "g", "{}"))), ch({}, "tool_calls"), DONE]
    )
    check_grammar(events)
    ids = [
        event["content_block"]["id"] for event in events if event["type"] == "content_block_start"
    ]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(re.fullmatch(r"toolu_[0-9a-f]{24}", tool_id) for tool_id in ids)


def test_interleaved_tool_fragments_are_buffered_and_kept() -> None:
    """Fragments of parallel calls that interleave (0, 1, 0, 1): the first call streams,
    the second waits with all its fragments and follows in order; nothing is dropped."""
    events, translator = run(
        [
            ch(tools(tc(0, "call_a", "f", ""), tc(1, "call_b", "g", ""))),
            ch(tools(tc(0, args='{"x":'))),
            ch(tools(tc(1, args='{"y":'))),
            ch(tools(tc(0, args="1}"))),
            ch(tools(tc(1, args="2}"))),
            ch({}, "tool_calls"),
            DONE,
        ]
    )
    assert events == [
        *START,
        start(0, tool("call_a", "f")),
        json_d(0, '{"x":'),
        json_d(0, "1}"),
        stop(0),
        start(1, tool("call_b", "g")),
        json_d(1, '{"y":'),
        json_d(1, "2}"),
        stop(1),
        *end("tool_use"),
    ]
    check_grammar(events)
    assert translator.dropped == []
    inputs = [block["input"] for block in accumulate(events)["content"]]
    assert inputs == [{"x": 1}, {"y": 2}]


def test_waiting_tool_calls_are_released_before_text_that_follows() -> None:
    events, _ = run(
        [
            ch(tools(tc(0, "call_a", "f", '{"a":1}'), tc(1, "call_b", "g", '{"b":2}'))),
            ch({"content": "done"}),
            ch({}, "stop"),
            DONE,
        ]
    )
    check_grammar(events)
    content = accumulate(events)["content"]
    assert [block["type"] for block in content] == ["tool_use", "tool_use", "text"]
    assert [content[0]["input"], content[1]["input"]] == [{"a": 1}, {"b": 2}]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_interleaving_of_parallel_calls_keeps_every_fragment(data: st.DataObject) -> None:
    """Three calls, each split in pieces; the pieces of different calls arrive in any
    order (each call's own pieces in order). Every call comes out whole, in call order."""
    calls = [('{"n": 0, "s": "alpha"}', "f"), ('{"n": 1}', "g"), ('{"n": 2, "t": [1, 2]}', "h")]
    queues = []
    for arguments, _ in calls:
        cuts = sorted(set(data.draw(st.lists(st.integers(1, len(arguments) - 1), max_size=4))))
        bounds = [0, *cuts, len(arguments)]
        queues.append([arguments[a:b] for a, b in itertools.pairwise(bounds)])
    script: list[Any] = [
        ch(tools(*(tc(i, f"call_{i}", name, "") for i, (_, name) in enumerate(calls))))
    ]
    while any(queues):
        index = data.draw(st.sampled_from([i for i, q in enumerate(queues) if q]))
        script.append(ch(tools(tc(index, args=queues[index].pop(0)))))
    events, translator = run([*script, ch({}, "tool_calls"), DONE])
    check_grammar(events)
    assert translator.dropped == []
    content = accumulate(events)["content"]
    assert [block["name"] for block in content] == ["f", "g", "h"]
    assert [block["input"] for block in content] == [orjson.loads(a) for a, _ in calls]


def test_fail_before_start_still_starts_the_message() -> None:
    translator = StreamTranslator(model=MODEL, message_id="msg_test")
    events = translator.fail(ApiError("overloaded_error", "Overloaded"))
    assert events == [*START, error("overloaded_error", "Overloaded")]
    check_grammar(events)


def test_accumulated_message() -> None:
    """What the SDK accumulator ends up with for a reasoning + text + tool script."""
    events, _ = run(
        [
            ch({"reasoning_details": [{"type": "reasoning.text", "text": "Think", "index": 0}]}),
            ch(
                {
                    "reasoning_details": [
                        {"type": "reasoning.text", "text": "", "signature": SIG, "index": 0}
                    ]
                }
            ),
            ch({"content": "Let me check."}),
            ch(tools(tc(0, "call_1", "get_weather", '{"city":'))),
            ch(tools(tc(0, args='"Paris"}'))),
            ch({}, "tool_calls"),
            usage_chunk(50, 20, cached=10),
            DONE,
        ]
    )
    check_grammar(events)
    assert accumulate(events) == {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {"type": "thinking", "thinking": "Think", "signature": SIG},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": U(40, 20, cache_read=10),
    }


def test_through_the_sse_decoder() -> None:
    """Bytes as OpenRouter sends them (keep-alive comments, CRLF, a split frame)."""
    wire = (
        b": OPENROUTER PROCESSING\r\n\r\n"
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\r\n\r\n'
        b": OPENROUTER PROCESSING\n\n"
        b'data: {"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
    )
    translator = StreamTranslator(model=MODEL, message_id="msg_test")
    decoder = SSEDecoder()
    events = translator.start()
    for cut in range(0, len(wire), 7):
        for payload in decoder.feed(wire[cut : cut + 7]):
            events += translator.feed_data(payload)
    for payload in decoder.flush():
        events += translator.feed_data(payload)
    events += translator.end_of_input()
    assert events == [
        *START,
        start(0, TEXT),
        text_d(0, "Hi"),
        text_d(0, " there"),
        stop(0),
        *end("end_turn", U(9, 2)),
    ]


# -- message_events: a whole Message as a stream -----------------------------------------------


def test_message_events() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {"type": "thinking", "thinking": "Hmm.", "signature": SIG},
            {"type": "thinking", "thinking": "unsigned", "signature": ""},
            {"type": "redacted_thinking", "data": "ENC"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, "x"]}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": U(10, 5, cache_read=3, cache_write=2),
    }
    events = message_events(message)
    assert events == [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": U(10, 0, cache_read=3, cache_write=2),
            },
        },
        start(0, THINKING),
        think_d(0, "Hmm."),
        sig_d(0, SIG),
        stop(0),
        start(1, THINKING),
        think_d(1, "unsigned"),
        stop(1),
        start(2, {"type": "redacted_thinking", "data": "ENC"}),
        stop(2),
        start(3, TEXT),
        text_d(3, "Calling."),
        stop(3),
        start(4, tool("toolu_1", "f")),
        json_d(4, '{"a":[1,"x"]}'),
        stop(4),
        *end("tool_use", U(10, 5, cache_read=3, cache_write=2)),
    ]
    check_grammar(events)
    assert accumulate(events) == message
    assert message["content"][4]["input"] == {"a": [1, "x"]}  # not mutated


def test_message_events_of_an_empty_message() -> None:
    message = {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": "stop_sequence",
        "stop_sequence": "END",
        "usage": U(1, 1),
    }
    events = message_events(message)
    assert events[1:] == end("stop_sequence", U(1, 1), stop_sequence="END")
    check_grammar(events)
    assert accumulate(events) == message
