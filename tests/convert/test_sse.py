"""`SSEDecoder` (upstream bytes -> `data:` payloads) and `encode_event` (Anthropic frames)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anthropic_router.convert.sse import SSEDecoder, encode_event, encode_events

# (id, wire bytes, payloads)
DECODE_CASES: list[tuple[str, bytes, list[bytes]]] = [
    ("one event", b'data: {"a":1}\n\n', [b'{"a":1}']),
    ("two events", b"data: 1\n\ndata: 2\n\n", [b"1", b"2"]),
    ("CRLF line endings", b"data: 1\r\n\r\ndata: 2\r\n\r\n", [b"1", b"2"]),
    ("mixed line endings", b"data: 1\r\n\ndata: 2\n\r\n", [b"1", b"2"]),
    # A lone CR ends a line too (SSE spec, "Interpreting an event stream").
    ("lone CR line endings", b"data: 1\r\rdata: 2\r\r", [b"1", b"2"]),
    ("lone CR between data lines", b"data: a\rdata: b\r\r", [b"a\nb"]),
    ("CR, CRLF and LF in one stream", b"data: 1\r\r\ndata: 2\n\rdata: 3\r\n\n", [b"1", b"2", b"3"]),
    (
        "OpenRouter keep-alive comments",
        b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: 1\n\n",
        [b"1"],
    ),
    ("a comment inside an event", b"data: 1\n: note\ndata: 2\n\n", [b"1\n2"]),
    ("multi-line data is joined with \\n", b"data: line 1\ndata: line 2\n\n", [b"line 1\nline 2"]),
    ("no space after the colon", b"data:{}\n\n", [b"{}"]),
    ("only one leading space is removed", b"data:  x\n\n", [b" x"]),
    ("an empty data line", b"data:\n\n", [b""]),
    (
        "event, id and retry lines are ignored",
        b"event: message\nid: 42\nretry: 1000\ndata: x\n\n",
        [b"x"],
    ),
    ("an event without data yields nothing", b"event: ping\n\n", []),
    ("blank lines alone yield nothing", b"\n\n\r\n\n", []),
    ("[DONE] is a payload like any other", b"data: [DONE]\n\n", [b"[DONE]"]),
    (
        "UTF-8 payloads stay bytes",
        'data: {"t":"héllo ✓"}\n\n'.encode(),
        ['{"t":"héllo ✓"}'.encode()],
    ),
]


@pytest.mark.parametrize(
    ("wire", "payloads"), [case[1:] for case in DECODE_CASES], ids=[c[0] for c in DECODE_CASES]
)
def test_decode_whole(wire: bytes, payloads: list[bytes]) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(wire) + decoder.flush() == payloads


def _decode_in_pieces(wire: bytes, cuts: list[int]) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    previous = 0
    for cut in [*cuts, len(wire)]:
        out += decoder.feed(wire[previous:cut])
        previous = cut
    return out + decoder.flush()


@pytest.mark.parametrize(
    ("wire", "payloads"), [case[1:] for case in DECODE_CASES], ids=[c[0] for c in DECODE_CASES]
)
def test_decode_split_at_every_boundary(wire: bytes, payloads: list[bytes]) -> None:
    """Every single split point, including inside `\\r\\n` and inside UTF-8 characters."""
    for cut in range(len(wire) + 1):
        assert _decode_in_pieces(wire, [cut]) == payloads, cut


@pytest.mark.parametrize(
    ("wire", "payloads"), [case[1:] for case in DECODE_CASES], ids=[c[0] for c in DECODE_CASES]
)
def test_decode_byte_by_byte(wire: bytes, payloads: list[bytes]) -> None:
    assert _decode_in_pieces(wire, list(range(1, len(wire)))) == payloads


def test_split_inside_crlf_does_not_end_the_event_early() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [b"a\nb"]
    assert decoder.flush() == []


def test_payloads_come_out_as_soon_as_the_event_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n") == []
    assert decoder.feed(b"\ndata: 2") == [b"1"]
    assert decoder.feed(b"\n\n") == [b"2"]


# (id, bytes before EOF, payloads from flush)
FLUSH_CASES: list[tuple[str, bytes, list[bytes]]] = [
    ("an unterminated last line", b"data: x", [b"x"]),
    ("a last line without the blank line", b"data: x\n", [b"x"]),
    ("an unterminated CRLF line", b"data: x\r", [b"x"]),
    ("two data lines without the blank line", b"data: a\ndata: b", [b"a\nb"]),
    ("an unterminated comment", b": OPENROUTER PROCESSING", []),
    ("nothing", b"", []),
]


@pytest.mark.parametrize(
    ("wire", "payloads"), [case[1:] for case in FLUSH_CASES], ids=[c[0] for c in FLUSH_CASES]
)
def test_flush_at_eof(wire: bytes, payloads: list[bytes]) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(wire) == []
    assert decoder.flush() == payloads
    assert decoder.flush() == []


def test_a_whole_event_after_held_input_joins_it() -> None:
    """A read that is one whole `data:` event takes the short path only when nothing is
    held: after a data line or a partial line it continues that event."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"data: b\n\n") == [b"a\nb"]
    assert decoder.feed(b"dat") == []
    assert decoder.feed(b"a: c\n\n") == [b"c"]
    assert decoder.feed(b"data: d\n\n") == [b"d"]


def test_an_overlong_single_event_is_refused() -> None:
    decoder = SSEDecoder(max_line=16)
    with pytest.raises(ValueError, match="maximum size"):
        decoder.feed(b"data: 0123456789abcdefghij\n\n")


def test_an_overlong_line_after_a_newline_in_the_same_chunk_is_refused() -> None:
    decoder = SSEDecoder(max_line=16)
    with pytest.raises(ValueError, match="maximum size"):
        decoder.feed(b"data: 1\n\ndata: 0123456789abcdefghij")


def test_an_overlong_complete_line_is_refused() -> None:
    decoder = SSEDecoder(max_line=16)
    with pytest.raises(ValueError, match="maximum size"):
        decoder.feed(b"data: 1\n\ndata: 0123456789abcdefghij\n\n")


def test_a_line_of_exactly_the_limit_passes() -> None:
    decoder = SSEDecoder(max_line=16)
    line = b"data: 0123456789"  # 16 bytes
    assert decoder.feed(line + b"\r") == []
    assert decoder.feed(b"\n\n") == [b"0123456789"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=12, max_size=12),
    st.data(),
)
def test_any_line_endings_and_any_splits_give_the_same_payloads(
    values: list[bytes], endings: list[bytes], data: st.DataObject
) -> None:
    wire = b""
    for position, value in enumerate(values):
        end = endings[position % len(endings)]
        wire += b"data: " + value + end + end
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    expected = list(values)
    assert _decode_in_pieces(wire, cuts) == expected


def test_an_overlong_line_is_refused() -> None:
    decoder = SSEDecoder(max_line=16)
    assert decoder.feed(b"data: 0123456789") == []
    with pytest.raises(ValueError, match="maximum size"):
        decoder.feed(b"x")


# -- encoding ------------------------------------------------------------------------------------

# (event, exact frame)
ENCODE_CASES: list[tuple[dict[str, Any], bytes]] = [
    ({"type": "ping"}, b'event: ping\ndata: {"type":"ping"}\n\n'),
    ({"type": "message_stop"}, b'event: message_stop\ndata: {"type":"message_stop"}\n\n'),
    (
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "é\n"}},
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"\xc3\xa9\\n"}}\n\n',
    ),
    (
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n',
    ),
]


@pytest.mark.parametrize(("event", "frame"), ENCODE_CASES, ids=[c[0]["type"] for c in ENCODE_CASES])
def test_encode_event(event: dict[str, Any], frame: bytes) -> None:
    assert encode_event(event) == frame


def test_encode_events_always_name_the_event() -> None:
    events = [event for event, _ in ENCODE_CASES]
    encoded = encode_events(events)
    assert encoded == b"".join(frame for _, frame in ENCODE_CASES)
    frames = encoded.split(b"\n\n")[:-1]
    assert len(frames) == len(events)
    for frame, event in zip(frames, events, strict=True):
        event_line, data_line = frame.split(b"\n")
        assert event_line == b"event: " + event["type"].encode()
        assert orjson.loads(data_line.removeprefix(b"data: ")) == event


def test_encode_then_decode_round_trip() -> None:
    events = [event for event, _ in ENCODE_CASES]
    decoder = SSEDecoder()
    payloads = decoder.feed(encode_events(events)) + decoder.flush()
    assert [orjson.loads(payload) for payload in payloads] == events


def test_encode_events_of_nothing() -> None:
    assert encode_events([]) == b""
