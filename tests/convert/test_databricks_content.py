"""Databricks Claude answers with `content` as a list of `reasoning` / `text` items
(protocol.md 7.3), in whole messages and in stream deltas.

`reasoning.summary[]` entries become thinking blocks (text + signature), `text` items text
blocks (citations dropped), in order; other items are skipped. Stream scripts are checked
event by event and by the grammar checker, like tests/convert/test_stream.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.response import to_anthropic_message
from anthropic_router.convert.stream import StreamTranslator
from support.anthropic_events import (
    TEXT,
    THINKING,
    end,
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
SIG = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxDdp"
SIG2 = "ErcBCkgIAhABGAIiQMx2"
DONE = b"[DONE]"
END = "end_of_input"
USAGE = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
ANTHROPIC_USAGE = {
    "input_tokens": 30,
    "output_tokens": 12,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}

# -- upstream items ------------------------------------------------------------------------------


def reasoning(*summary: JSON) -> JSON:
    return {"type": "reasoning", "summary": list(summary)}


def summ(text: str, signature: str | None = None) -> JSON:
    entry: JSON = {"type": "summary_text", "text": text}
    if signature is not None:
        entry["signature"] = signature
    return entry


def txt(text: str, **extra: Any) -> JSON:
    return {"type": "text", "text": text, **extra}


CITATION = {
    "type": "char_location",
    "cited_text": "Paris is the capital of France.",
    "document_index": 0,
    "document_title": "Facts",
    "start_char_index": 0,
    "end_char_index": 31,
}

# -- non-streaming ---------------------------------------------------------------------------------


def completion(message: JSON, finish_reason: str = "stop") -> JSON:
    return {
        "id": "chatcmpl_4f1c",
        "object": "chat.completion",
        "model": "databricks-claude-sonnet-4-5",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": USAGE,
    }


def assistant(content: Any, **extra: Any) -> JSON:
    return {"role": "assistant", "content": content, **extra}


# (id, upstream message, finish_reason, expected content, expected stop_reason)
MESSAGE_CASES: list[tuple[str, JSON, str, list[JSON], str]] = [
    (
        "reasoning with a signature, then text",
        assistant([reasoning(summ("Add them: 4.", SIG)), txt("2 + 2 = 4")]),
        "stop",
        [
            {"type": "thinking", "thinking": "Add them: 4.", "signature": SIG},
            {"type": "text", "text": "2 + 2 = 4"},
        ],
        "end_turn",
    ),
    (
        "text only, as a one-item array",
        assistant([txt("Hello!")]),
        "stop",
        [{"type": "text", "text": "Hello!"}],
        "end_turn",
    ),
    (
        "several text items stay several blocks; citations are dropped",
        assistant(
            [txt("The capital is "), txt("Paris", citations=[CITATION]), txt(".", citations=None)]
        ),
        "stop",
        [
            {"type": "text", "text": "The capital is "},
            {"type": "text", "text": "Paris"},
            {"type": "text", "text": "."},
        ],
        "end_turn",
    ),
    (
        "a signature alone (empty text) signs the thinking block before it",
        assistant([reasoning(summ("Thinking."), summ("", SIG)), txt("Done.")]),
        "stop",
        [
            {"type": "thinking", "thinking": "Thinking.", "signature": SIG},
            {"type": "text", "text": "Done."},
        ],
        "end_turn",
    ),
    (
        "a signature alone in a separate reasoning item also signs the block before it",
        assistant([reasoning(summ("Thinking.")), reasoning(summ("", SIG)), txt("Done.")]),
        "stop",
        [
            {"type": "thinking", "thinking": "Thinking.", "signature": SIG},
            {"type": "text", "text": "Done."},
        ],
        "end_turn",
    ),
    (
        "a signature alone after a signed block is a thinking block of its own",
        assistant([reasoning(summ("One.", SIG), summ("", SIG2))]),
        "stop",
        [
            {"type": "thinking", "thinking": "One.", "signature": SIG},
            {"type": "thinking", "thinking": "", "signature": SIG2},
        ],
        "end_turn",
    ),
    (
        "multiple summary items -> one thinking block each",
        assistant(
            [reasoning(summ("First.", SIG), summ("Second.", SIG2), summ("Third.")), txt("ok")]
        ),
        "stop",
        [
            {"type": "thinking", "thinking": "First.", "signature": SIG},
            {"type": "thinking", "thinking": "Second.", "signature": SIG2},
            {"type": "thinking", "thinking": "Third.", "signature": ""},
            {"type": "text", "text": "ok"},
        ],
        "end_turn",
    ),
    (
        "items and entries of unknown type or shape are skipped",
        assistant(
            [
                {"type": "image", "image_url": {"url": "data:image/png;base64,AAAA"}},
                reasoning(
                    {"type": "summary_future", "text": "skip me"},
                    "not a dict",
                    summ("Kept."),
                    {"type": "summary_text", "text": 5, "signature": ["x"]},
                ),
                {"type": "reasoning", "summary": "not a list"},
                {"type": "reasoning"},
                {"type": "text", "text": None},
                {"type": "text", "text": {"nested": True}},
                {"text": "no type"},
                "a bare string",
                None,
                7,
                txt("answer"),
            ]
        ),
        "stop",
        [
            {"type": "thinking", "thinking": "Kept.", "signature": ""},
            {"type": "text", "text": "answer"},
        ],
        "end_turn",
    ),
    (
        "empty summary entries and empty text items add no blocks",
        assistant([reasoning(summ(""), {"type": "summary_text"}), txt(""), txt("x")]),
        "stop",
        [{"type": "text", "text": "x"}],
        "end_turn",
    ),
    (
        "reasoning only, no text",
        assistant([reasoning(summ("Just thinking.", SIG))]),
        "stop",
        [{"type": "thinking", "thinking": "Just thinking.", "signature": SIG}],
        "end_turn",
    ),
    (
        "reasoning and text before tool calls",
        assistant(
            [reasoning(summ("Need the weather.", SIG)), txt("Checking.")],
            tool_calls=[
                {
                    "id": "toolu_bdrk_01",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        ),
        "tool_calls",
        [
            {"type": "thinking", "thinking": "Need the weather.", "signature": SIG},
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_bdrk_01",
                "name": "get_weather",
                "input": {"city": "Oslo"},
            },
        ],
        "tool_use",
    ),
    ("content null", assistant(None), "stop", [], "end_turn"),
    ("content []", assistant([]), "stop", [], "end_turn"),
    (
        "content [] with a refusal",
        assistant([], refusal="I can't help with that."),
        "stop",
        [{"type": "text", "text": "I can't help with that."}],
        "refusal",
    ),
    (
        "plain string content is unchanged",
        assistant("Hi there"),
        "stop",
        [{"type": "text", "text": "Hi there"}],
        "end_turn",
    ),
]


@pytest.mark.parametrize(
    ("upstream_message", "finish_reason", "content", "stop_reason"),
    [case[1:] for case in MESSAGE_CASES],
    ids=[case[0] for case in MESSAGE_CASES],
)
def test_message(
    upstream_message: JSON, finish_reason: str, content: list[JSON], stop_reason: str
) -> None:
    assert to_anthropic_message(completion(upstream_message, finish_reason), model=MODEL) == {
        "id": "msg_chatcmpl_4f1c",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }


# -- streaming -------------------------------------------------------------------------------------


def ch(delta: JSON | None = None, finish: str | None = None, usage: JSON | None = None) -> JSON:
    """A Databricks chunk (usage rides on intermediate chunks too, cumulative)."""
    chunk: JSON = {
        "id": "chatcmpl_4f1c",
        "object": "chat.completion.chunk",
        "created": 1760000000,
        "model": "databricks-claude-sonnet-4-5",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def items(*content: Any) -> JSON:
    return {"content": list(content)}


def tc(index: int, id: str | None = None, name: str | None = None, args: str = "") -> JSON:
    call: JSON = {"index": index, "function": {"arguments": args}}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    if name is not None:
        call["function"]["name"] = name
    return call


START: list[JSON] = opening(MODEL)


def run(script: list[Any]) -> list[JSON]:
    translator = StreamTranslator(model=MODEL, message_id="msg_test")
    events = translator.start()
    for item in script:
        if item == END:
            events += translator.end_of_input()
        elif isinstance(item, bytes):
            events += translator.feed_data(item)
        else:
            events += translator.feed(item)
    return events


# (id, script, expected events after START)
STREAM_SCRIPTS: list[tuple[str, list[Any], list[JSON]]] = [
    (
        "reasoning in several chunks, the signature alone, then text in several chunks",
        [
            ch({"role": "assistant", "content": []}),
            ch(items(reasoning(summ("The user "))), usage={"prompt_tokens": 30}),
            ch(items(reasoning(summ("asks for 2+2."))), usage={"prompt_tokens": 30}),
            ch(items(reasoning(summ("", SIG))), usage={"prompt_tokens": 30}),
            ch(items(txt("2 + 2 ")), usage={"prompt_tokens": 30}),
            ch(items(txt("= 4")), usage={"prompt_tokens": 30}),
            ch({}, "stop", usage=USAGE),
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "The user "),
            think_d(0, "asks for 2+2."),
            sig_d(0, SIG),
            stop(0),
            start(1, TEXT),
            text_d(1, "2 + 2 "),
            text_d(1, "= 4"),
            stop(1),
            *end("end_turn", ANTHROPIC_USAGE),
        ],
    ),
    (
        "partial summary text and the signature in the same chunk",
        [
            ch(items(reasoning(summ("Short.")))),
            ch(items(reasoning(summ(" Done.", SIG)))),
            ch(items(txt("ok"))),
            ch({}, "stop"),
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "Short."),
            think_d(0, " Done."),
            sig_d(0, SIG),
            stop(0),
            start(1, TEXT),
            text_d(1, "ok"),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "reasoning and text in the same chunk",
        [
            ch(items(reasoning(summ("Quick.", SIG)), txt("Answer."))),
            ch({}, "stop"),
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "Quick."),
            sig_d(0, SIG),
            stop(0),
            start(1, TEXT),
            text_d(1, "Answer."),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "text arrays only; empty text items and citations are dropped",
        [
            ch(items(txt("The capital "))),
            ch(items(txt(""), txt("is "), txt("Paris", citations=[CITATION]))),
            ch(items(txt("."))),
            ch({}, "stop"),
            DONE,
        ],
        [
            start(0, TEXT),
            text_d(0, "The capital "),
            text_d(0, "is "),
            text_d(0, "Paris"),
            text_d(0, "."),
            stop(0),
            *end("end_turn"),
        ],
    ),
    (
        "string and list content in one stream share the text block",
        [ch({"content": "Hel"}), ch(items(txt("lo"))), ch({"content": "!"}), ch({}, "stop"), DONE],
        [
            start(0, TEXT),
            text_d(0, "Hel"),
            text_d(0, "lo"),
            text_d(0, "!"),
            stop(0),
            *end("end_turn"),
        ],
    ),
    (
        "two signed summary entries in one chunk -> two thinking blocks",
        [
            ch(items(reasoning(summ("One.", SIG), summ("Two.", SIG2)))),
            ch({}, "stop"),
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "One."),
            sig_d(0, SIG),
            stop(0),
            start(1, THINKING),
            think_d(1, "Two."),
            sig_d(1, SIG2),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "summary text after a signature opens a new thinking block",
        [
            ch(items(reasoning(summ("First.")))),
            ch(items(reasoning(summ("", SIG)))),
            ch(items(reasoning(summ("Second.")))),
            ch(items(reasoning(summ("", SIG2)))),
            ch({}, "stop"),
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "First."),
            sig_d(0, SIG),
            stop(0),
            start(1, THINKING),
            think_d(1, "Second."),
            sig_d(1, SIG2),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "a lone signature with no thinking block open opens one of its own",
        [ch(items(txt("Hi"))), ch(items(reasoning(summ("", SIG)))), ch({}, "stop"), DONE],
        [
            start(0, TEXT),
            text_d(0, "Hi"),
            stop(0),
            start(1, THINKING),
            sig_d(1, SIG),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "unknown items and malformed entries are skipped, the stream goes on",
        [
            ch(items({"type": "image", "image_url": {"url": "x"}}, None, "str", 3)),
            ch(items(reasoning("not a dict", {"type": "summary_future", "text": "no"}))),
            ch(items({"type": "reasoning", "summary": None}, {"type": "reasoning"})),
            ch(items(reasoning(summ("kept")))),
            ch(items({"type": "text", "text": 5}, {"type": "text"}, txt("fine"))),
            ch(items(reasoning(summ(""), {"type": "summary_text", "signature": None}))),
            ch({}, "stop"),
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "kept"),
            stop(0),
            start(1, TEXT),
            text_d(1, "fine"),
            stop(1),
            *end("end_turn"),
        ],
    ),
    (
        "content [] and null open no blocks",
        [
            ch({"role": "assistant", "content": []}),
            ch({"content": None}),
            ch(items(txt(""))),
            ch({"content": []}, "stop"),
            DONE,
        ],
        end("end_turn"),
    ),
    (
        "reasoning and text, then tool_calls deltas (with the '{}' opening fragment)",
        [
            ch(items(reasoning(summ("Need the weather.")))),
            ch(items(reasoning(summ("", SIG)))),
            ch(items(txt("Checking."))),
            ch({"tool_calls": [tc(0, "toolu_bdrk_01", "get_weather", "{}")]}),
            ch({"tool_calls": [tc(0, args='{"city":')]}),
            ch({"tool_calls": [tc(0, args='"Oslo"}')]}),
            ch({}, "tool_calls", usage=USAGE),
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "Need the weather."),
            sig_d(0, SIG),
            stop(0),
            start(1, TEXT),
            text_d(1, "Checking."),
            stop(1),
            start(2, tool("toolu_bdrk_01", "get_weather")),
            json_d(2, '{"city":'),
            json_d(2, '"Oslo"}'),
            stop(2),
            *end("tool_use", ANTHROPIC_USAGE),
        ],
    ),
    (
        "content items and tool_calls in the same delta keep their order",
        [
            ch(
                {
                    "content": [reasoning(summ("Plan.", SIG)), txt("Calling.")],
                    "tool_calls": [tc(0, "toolu_1", "f", '{"a":1}')],
                }
            ),
            ch(items(txt("After the call."))),
            ch({}, "tool_calls"),
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "Plan."),
            sig_d(0, SIG),
            stop(0),
            start(1, TEXT),
            text_d(1, "Calling."),
            stop(1),
            start(2, tool("toolu_1", "f")),
            json_d(2, '{"a":1}'),
            stop(2),
            start(3, TEXT),
            text_d(3, "After the call."),
            stop(3),
            *end("tool_use"),
        ],
    ),
    (
        "a cut stream mid-reasoning closes the thinking block, then an error",
        [ch(items(reasoning(summ("Hmm")))), END],
        [
            start(0, THINKING),
            think_d(0, "Hmm"),
            stop(0),
            {
                "type": "error",
                "error": {
                    "type": "api_error",
                    "message": "upstream stream ended before the answer was complete",
                },
            },
        ],
    ),
    (
        "the same chunks as raw SSE payloads",
        [
            b'{"choices":[{"index":0,"delta":{"role":"assistant","content":[{"type":"reasoning",'
            b'"summary":[{"type":"summary_text","text":"Think.","signature":""}]}]},'
            b'"finish_reason":null}]}',
            b'{"choices":[{"index":0,"delta":{"content":[{"type":"reasoning","summary":'
            b'[{"type":"summary_text","text":"","signature":"' + SIG.encode() + b'"}]}]},'
            b'"finish_reason":null}]}',
            b'{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"Yes."}]},'
            b'"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":12}}',
            DONE,
        ],
        [
            start(0, THINKING),
            think_d(0, "Think."),
            sig_d(0, SIG),
            stop(0),
            start(1, TEXT),
            text_d(1, "Yes."),
            stop(1),
            *end("end_turn", ANTHROPIC_USAGE),
        ],
    ),
]


@pytest.mark.parametrize(
    ("script", "expected"),
    [case[1:] for case in STREAM_SCRIPTS],
    ids=[case[0] for case in STREAM_SCRIPTS],
)
def test_stream(script: list[Any], expected: list[JSON]) -> None:
    events = run(script)
    assert events == START + expected
    check_grammar(events)


def test_stream_and_message_agree() -> None:
    """The streamed answer accumulates to what the same answer gives as one message."""
    events = run(
        [
            ch(items(reasoning(summ("Let me ")))),
            ch(items(reasoning(summ("think.")))),
            ch(items(reasoning(summ("", SIG)))),
            ch(items(txt("Result: "))),
            ch(items(txt("42"))),
            ch({"tool_calls": [tc(0, "toolu_2", "record", '{"value":42}')]}),
            ch({}, "tool_calls", usage=USAGE),
            DONE,
        ]
    )
    check_grammar(events)
    whole = assistant(
        [reasoning(summ("Let me think."), summ("", SIG)), txt("Result: 42")],
        tool_calls=[
            {
                "id": "toolu_2",
                "type": "function",
                "function": {"name": "record", "arguments": '{"value":42}'},
            }
        ],
    )
    message = to_anthropic_message(completion(whole, "tool_calls"), model=MODEL)
    streamed = accumulate(events)
    assert streamed["content"] == message["content"]
    assert streamed["stop_reason"] == message["stop_reason"]
    assert streamed["usage"] == message["usage"]
