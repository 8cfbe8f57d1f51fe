"""`replay_events` (a Message as the stream that carries it) and `MessageAccumulator` (a
stream's events back into the Message): tables of Messages, each replayed stream checked by
the stream grammar and accumulated by the SDK-style accumulator into the original."""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.replay import MessageAccumulator, replay_events
from anthropic_router.convert.stream import StreamTranslator
from support import openai_chunks as oc
from support.grammar import accumulate, check_grammar

JSON = dict[str, Any]
SIG = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxDdp"
USAGE = {
    "input_tokens": 21,
    "output_tokens": 9,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 4,
}


def message(*content: JSON, stop: str = "end_turn", stop_sequence: str | None = None) -> JSON:
    return {
        "id": "msg_0123456789abcdef01234567",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": list(content),
        "stop_reason": stop,
        "stop_sequence": stop_sequence,
        "usage": dict(USAGE),
    }


def text(value: str, **extra: Any) -> JSON:
    return {"type": "text", "text": value, **extra}


def tool_use(input_: Any, name: str = "Bash", id_: str = "toolu_01A") -> JSON:
    return {"type": "tool_use", "id": id_, "name": name, "input": input_}


CITATION = {
    "type": "char_location",
    "cited_text": "The sky is blue.",
    "document_index": 0,
    "document_title": "Sky",
    "start_char_index": 0,
    "end_char_index": 16,
}

MESSAGES = {
    "text": message(text("Hello there")),
    "empty text": message(text("")),
    "no content": message(stop="max_tokens"),
    "unicode and newlines": message(text("naïve — ✓\n\n```py\nprint('x')\n```")),
    "stop sequence": message(text("one two"), stop="stop_sequence", stop_sequence="THREE"),
    "text with citations": message(text("It is blue.", citations=[CITATION, CITATION])),
    "thinking with signature then text": message(
        {"type": "thinking", "thinking": "Let me think.\nStep 2.", "signature": SIG},
        text("Answer: 4"),
    ),
    "thinking without signature": message(
        {"type": "thinking", "thinking": "unsigned", "signature": ""}, text("ok")
    ),
    "redacted thinking": message(
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}, text("done")
    ),
    "tool use with nested input": message(
        text("Running it."),
        tool_use({"command": "ls -la", "opts": {"depth": [1, 2, {"x": None}], "ok": True}}),
        stop="tool_use",
    ),
    "tool use with empty input": message(tool_use({}, name="Now"), stop="tool_use"),
    "parallel tool uses": message(
        tool_use({"path": "a.py"}, name="Read", id_="toolu_01"),
        tool_use({"path": "b.py"}, name="Read", id_="toolu_02"),
        stop="tool_use",
    ),
    "thinking, text, tool": message(
        {"type": "thinking", "thinking": "plan", "signature": SIG},
        text("I will search."),
        tool_use({"q": 'ünïcode "quoted"'}, name="Grep"),
        stop="tool_use",
    ),
}


@pytest.mark.parametrize("original", MESSAGES.values(), ids=MESSAGES.keys())
def test_a_replayed_message_is_a_valid_stream_of_the_same_message(original: JSON) -> None:
    events = replay_events(original)
    check_grammar(events)
    assert accumulate(events) == original


@pytest.mark.parametrize("original", MESSAGES.values(), ids=MESSAGES.keys())
def test_the_accumulator_gives_back_the_message_a_replay_carries(original: JSON) -> None:
    accumulator = MessageAccumulator()
    events = replay_events(original)
    for event in events:  # one event per read: the most fragmented delivery
        accumulator.feed([event])
    assert accumulator.message == original


def test_replayed_blocks_keep_their_real_structure() -> None:
    original = MESSAGES["thinking, text, tool"]
    deltas = [e["delta"] for e in replay_events(original) if e["type"] == "content_block_delta"]
    assert [d["type"] for d in deltas] == [
        "thinking_delta",
        "signature_delta",
        "text_delta",
        "input_json_delta",
    ]
    assert deltas[1]["signature"] == SIG
    start = replay_events(original)[0]["message"]
    assert start["usage"]["output_tokens"] == 0 and start["usage"]["input_tokens"] == 21


def _translated(chunks: list[JSON]) -> list[JSON]:
    translator = StreamTranslator(model="claude-sonnet-4-5")
    events = translator.start()
    for item in chunks:
        events += translator.feed(item)
    return events + translator.finish()


STREAMS = {
    "text": [*oc.text_chunks("one two three", 4), oc.finish_chunk(), oc.usage_chunk(5, 3)],
    "reasoning then text": [
        *oc.reasoning_chunks("hmm, let me see", 3),
        *oc.text_chunks("four", 2),
        oc.finish_chunk(),
        oc.usage_chunk(7, 9),
    ],
    "tool call in fragments": [
        *oc.tool_call_chunks(0, "call_1", "Bash", '{"command": "ls", "n": [1, 2]}', 5),
        oc.finish_chunk("tool_calls"),
        oc.usage_chunk(8, 4),
    ],
}


@pytest.mark.parametrize("chunks", STREAMS.values(), ids=STREAMS.keys())
def test_a_translated_stream_accumulates_as_the_sdk_does(chunks: list[JSON]) -> None:
    events = _translated(chunks)
    accumulator = MessageAccumulator()
    accumulator.feed(events)
    assert accumulator.message == accumulate(events)
    again = replay_events(accumulator.message)
    check_grammar(again)
    assert accumulate(again) == accumulator.message


def _without(events: list[JSON], kind: str) -> list[JSON]:
    return [event for event in events if event["type"] != kind]


FULL = replay_events(MESSAGES["tool use with nested input"])
ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
UNWHOLE = {
    "cut before message_stop": FULL[:-1],
    "cut before message_delta": FULL[:-2],
    "message_stop without message_delta": [*FULL[:-2], FULL[-1]],
    "cut inside a block": FULL[:4],
    "error after a block": [*FULL[:5], ERROR],
    "error then a stray stop": [*FULL[:5], ERROR, {"type": "message_stop"}],
    "no message_start": FULL[1:],
    "unknown delta": [
        *FULL[:2],
        {"type": "content_block_delta", "index": 0, "delta": {"type": "new_delta", "x": 1}},
        *FULL[2:],
    ],
    "unknown event": [*FULL[:-1], {"type": "surprise"}, FULL[-1]],
    "block index out of order": [FULL[0], {**FULL[1], "index": 3}, *FULL[2:]],
    "tool input that is not JSON": [
        *FULL[:5],
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
        },
        *FULL[5:],
    ],
    "nothing": [],
}


@pytest.mark.parametrize("events", UNWHOLE.values(), ids=UNWHOLE.keys())
def test_a_stream_that_is_not_whole_gives_no_message(events: list[JSON]) -> None:
    accumulator = MessageAccumulator()
    accumulator.feed(events)
    assert accumulator.message is None


def test_pings_and_null_usage_counts_do_not_change_the_message() -> None:
    original = MESSAGES["text"]
    events = replay_events(original)
    events.insert(1, {"type": "ping"})
    events[-2] = {**events[-2], "usage": {**original["usage"], "input_tokens": None}}
    accumulator = MessageAccumulator()
    accumulator.feed(events)
    assert accumulator.message == original
