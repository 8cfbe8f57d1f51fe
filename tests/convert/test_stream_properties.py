"""Property: whatever sequence of upstream chunks arrives, cut at whatever byte boundaries,
the Anthropic events satisfy the stream grammar (see `grammar.check_grammar`)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anthropic_router.convert.sse import SSEDecoder
from anthropic_router.convert.stream import StreamTranslator
from support.grammar import accumulate, check_grammar

JSON = dict[str, Any]

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

short_text = st.text(alphabet='ab \n{}":é', max_size=4)
finish_reasons = st.sampled_from(
    ["stop", "length", "tool_calls", "function_call", "content_filter", "end_turn", "error", None]
)
usages = st.fixed_dictionaries(
    {
        "prompt_tokens": st.integers(0, 500),
        "completion_tokens": st.integers(0, 500),
    },
    optional={
        "prompt_tokens_details": st.fixed_dictionaries(
            {"cached_tokens": st.integers(0, 600)},
            optional={"cache_write_tokens": st.integers(0, 100)},
        )
    },
)


def _chunk(delta: JSON, finish: str | None = None, usage: JSON | None = None) -> JSON:
    chunk: JSON = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        chunk["usage"] = usage
    return chunk


reasoning_detail = st.one_of(
    st.builds(
        lambda text, index, signature: {
            "type": "reasoning.text",
            "text": text,
            "index": index,
            **({"signature": signature} if signature else {}),
        },
        short_text,
        st.integers(0, 2),
        st.sampled_from([None, "", "SIG"]),
    ),
    st.builds(
        lambda data, index: {"type": "reasoning.encrypted", "data": data, "index": index},
        st.sampled_from(["ENC", ""]),
        st.integers(0, 2),
    ),
)

reasoning_delta = st.one_of(
    st.builds(lambda text: {"reasoning": text}, st.one_of(st.none(), short_text)),
    st.builds(lambda text: {"reasoning_content": text}, short_text),
    st.builds(
        lambda text, details: {"reasoning": text, "reasoning_details": details},
        short_text,
        st.lists(reasoning_detail, max_size=2),
    ),
)

content_delta = st.one_of(
    st.builds(lambda text: {"content": text}, st.one_of(st.none(), short_text)),
    st.builds(
        lambda text, summary: {
            "content": [
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": summary}]},
                {"type": "text", "text": text},
            ]
        },
        short_text,
        short_text,
    ),
)


@st.composite
def tool_call_item(draw: st.DrawFn) -> JSON:
    item: JSON = {}
    if draw(st.booleans()) or draw(st.booleans()):
        item["index"] = draw(st.integers(0, 3))
    tool_id = draw(st.sampled_from([None, None, "call_1", "call_2", "functions.Bash:0", ""]))
    if tool_id is not None:
        item["id"] = tool_id
    function: JSON = {}
    name = draw(st.sampled_from([None, None, "get_weather", "Bash", ""]))
    if name is not None:
        function["name"] = name
    arguments = draw(
        st.one_of(
            st.sampled_from(["", "{}", '{"city":', ' "Paris"}', '{"a":1}', "1}", "{"]),
            st.just({"a": 1}),
            st.none(),
        )
    )
    if arguments is not None:
        function["arguments"] = arguments
    item["function"] = function
    return item


tool_delta = st.builds(
    lambda items: {"tool_calls": items}, st.lists(tool_call_item(), min_size=1, max_size=3)
)

mixed_delta = st.builds(lambda a, b, c: {**a, **b, **c}, reasoning_delta, content_delta, tool_delta)

chunk = st.one_of(
    st.builds(_chunk, content_delta),
    st.builds(_chunk, reasoning_delta),
    st.builds(_chunk, tool_delta),
    st.builds(_chunk, mixed_delta, finish_reasons, st.one_of(st.none(), usages)),
    st.builds(
        lambda reason, usage: _chunk({}, reason, usage),
        finish_reasons,
        st.one_of(st.none(), usages),
    ),
    st.builds(lambda usage: {"choices": [], "usage": usage}, usages),
    st.builds(
        lambda code: {"error": {"code": code, "message": "upstream failed"}},
        st.sampled_from([429, "429", 502, 503, "server_error", 400]),
    ),
)

# One SSE frame: a JSON chunk (most of the time), a keep-alive comment, [DONE], or garbage.
frame = st.one_of(
    chunk.map(lambda c: b"data: " + orjson.dumps(c) + b"\n\n"),
    chunk.map(lambda c: b"data: " + orjson.dumps(c) + b"\r\n\r\n"),
    chunk.map(lambda c: b"data: " + orjson.dumps(c) + b"\n\n"),
    chunk.map(lambda c: b"data: " + orjson.dumps(c) + b"\n\n"),
    st.just(b": OPENROUTER PROCESSING\n\n"),
    st.just(b"data: [DONE]\n\n"),
    st.just(b"data: {not json\n\n"),
    st.just(b"\n"),
)


def translate(wire: bytes, cuts: list[int]) -> tuple[list[JSON], StreamTranslator]:
    translator = StreamTranslator(model="claude-x", message_id="msg_p")
    decoder = SSEDecoder()
    events = translator.start()
    previous = 0
    for cut in [*sorted(cuts), len(wire)]:
        for payload in decoder.feed(wire[previous:cut]):
            events += translator.feed_data(payload)
        previous = cut
    for payload in decoder.flush():
        events += translator.feed_data(payload)
    events += translator.end_of_input()
    return events, translator


@SETTINGS
@given(
    frames=st.lists(frame, max_size=25),
    cut_points=st.lists(st.floats(0, 1), max_size=8),
)
def test_any_upstream_stream_keeps_the_grammar(
    frames: list[bytes], cut_points: list[float]
) -> None:
    wire = b"".join(frames)
    events, translator = translate(wire, [int(point * len(wire)) for point in cut_points])
    check_grammar(events)
    assert translator.done
    assert [event["type"] for event in events].count("message_start") == 1
    if events[-1]["type"] == "error":
        assert translator.failed is not None
    else:
        assert translator.failed is None
        assert events[-2]["delta"]["stop_reason"] == translator.stop_reason


@SETTINGS
@given(
    chunks=st.lists(st.builds(_chunk, mixed_delta), max_size=12),
    finish=st.sampled_from(["stop", "tool_calls", "length"]),
)
def test_direct_feed_keeps_the_grammar(chunks: list[JSON], finish: str) -> None:
    """The same through `feed()` with a clean ending: always message_delta + message_stop."""
    translator = StreamTranslator(model="claude-x", message_id="msg_p")
    events = translator.start()
    for item in chunks:
        events += translator.feed(item)
    events += translator.feed(_chunk({}, finish))
    events += translator.feed(
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    )
    events += translator.finish()
    check_grammar(events)
    assert events[-1] == {"type": "message_stop"}
    assert events[-2]["usage"]["output_tokens"] == 2


@SETTINGS
@given(
    pieces=st.lists(st.text(max_size=6), max_size=10),
    cut_points=st.lists(st.floats(0, 1), max_size=10),
)
def test_text_survives_any_chunking(pieces: list[str], cut_points: list[float]) -> None:
    """Text split into any pieces and any byte cuts (even inside UTF-8) comes out whole."""
    frames = [b"data: " + orjson.dumps(_chunk({"content": piece})) + b"\n\n" for piece in pieces]
    frames.append(b"data: " + orjson.dumps(_chunk({}, "stop")) + b"\n\ndata: [DONE]\n\n")
    wire = b"".join(frames)
    events, _ = translate(wire, [int(point * len(wire)) for point in cut_points])
    check_grammar(events)
    message = accumulate(events)
    text = "".join(pieces)
    assert message["content"] == ([{"type": "text", "text": text}] if text else [])
    assert message["stop_reason"] == "end_turn"
