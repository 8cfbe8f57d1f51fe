"""One stored answer: the Message as JSON bytes (made once, when the answer is stored) and
its SSE replay (made on the first stream hit, or when the entry is written to Redis), so a
miss renders one form and a hit only swaps in a fresh message id.

The memory store keeps an entry as a flat tuple of bytes (stores.py), which the garbage
collector stops tracking, so a full store adds nothing to a full collection.
`to_bytes`/`from_bytes` is the form a shared store (Redis) keeps; large entries are
compressed there (zlib at its fastest level: the stdlib's codec, a few hundred MB/s).
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass, replace
from typing import Any

import orjson

from anthropic_router.convert.replay import replay_events
from anthropic_router.convert.sse import encode_events

JSON = dict[str, Any]
Header = tuple[bytes, bytes]

# Stands in for the message id in the stored bytes. It is the first value of both forms
# (the Message's first key, the first event's message's first key), so replacing its first
# occurrence can never touch the content.
ID_SLOT = b"msg_00000000response0cache0id"
_FORMAT = b"RC1"
_PLAIN, _ZLIB = b"p", b"z"
_LENGTHS = struct.Struct(">III")
COMPRESS_OVER = 16 * 1024
OVERHEAD = 256  # bytes counted per entry beyond its bodies (the key, the row, the meta)


@dataclass(frozen=True, slots=True)
class Entry:
    """`meta` holds what the exchange record and headers need: served headers, backend,
    upstream model, stop reason, usage, and when it was stored (epoch seconds). `sse_body`
    is b"" until the replay is rendered (`with_sse`)."""

    meta: JSON
    json_body: bytes
    sse_body: bytes = b""

    @property
    def size(self) -> int:
        """The bytes it holds (its meta counted in OVERHEAD): what the store's limit counts."""
        return len(self.json_body) + len(self.sse_body) + OVERHEAD

    @property
    def headers(self) -> list[Header]:
        return [(name.encode(), value.encode()) for name, value in self.meta["headers"]]

    def age(self) -> int:
        return max(0, int(time.time() - self.meta["stored_at"]))

    def with_sse(self) -> Entry:
        """This entry with its SSE replay rendered (itself when it already has it)."""
        if self.sse_body:
            return self
        return replace(self, sse_body=encode_events(replay_events(orjson.loads(self.json_body))))


def make_entry(message: JSON, headers: list[Header], record: JSON) -> Entry:
    """The entry for a complete `message`; `record` has backend, upstream_model."""
    slotted = dict(message)
    slotted["id"] = ID_SLOT.decode()  # keeps the id's place, first, when it came first
    meta = {
        **record,
        "headers": [[name.decode(), value.decode()] for name, value in headers],
        "stop_reason": message.get("stop_reason"),
        "usage": message.get("usage"),
        "stored_at": time.time(),
    }
    json_body = orjson.dumps(slotted)
    if not json_body.startswith(b'{"id":"' + ID_SLOT):
        json_body = orjson.dumps({"id": slotted.pop("id"), **slotted})
    # The replay must be one the Message can make: checked now, rendered when first wanted.
    _check_replayable(slotted)
    return Entry(meta, json_body)


_GROWN = {"text": "text", "thinking": "thinking"}  # the string each block's delta carries


def _check_replayable(message: JSON) -> None:
    """Raises (KeyError, TypeError, AttributeError) for a Message `replay_events` could not
    replay: the fields it reads, checked without rendering anything."""
    if not isinstance(message["usage"], dict):
        raise TypeError("usage is not an object")
    if "stop_reason" not in message or "stop_sequence" not in message:
        raise KeyError("stop_reason")
    for block in message["content"]:
        field = _GROWN.get(block.get("type"))
        if field is not None and not isinstance(block[field], str):
            raise TypeError(f"{field} is not a string")


def to_bytes(entry: Entry) -> bytes:
    entry = entry.with_sse()  # other routers read it: both forms, rendered once, here
    meta = orjson.dumps(entry.meta)
    packed = _LENGTHS.pack(len(meta), len(entry.json_body), len(entry.sse_body))
    body = packed + meta + entry.json_body + entry.sse_body
    if len(body) > COMPRESS_OVER:
        return _FORMAT + _ZLIB + zlib.compress(body, 1)
    return _FORMAT + _PLAIN + body


def from_bytes(data: bytes) -> Entry | None:
    """The entry, or None for bytes this version cannot read (another format, damage)."""
    if data[:3] != _FORMAT:
        return None
    try:
        body = zlib.decompress(data[4:]) if data[3:4] == _ZLIB else data[4:]
        meta_len, json_len, sse_len = _LENGTHS.unpack_from(body)
        start = _LENGTHS.size
        meta = orjson.loads(body[start : start + meta_len])
        start += meta_len
        json_body = body[start : start + json_len]
        sse_body = body[start + json_len : start + json_len + sse_len]
    except (zlib.error, struct.error, orjson.JSONDecodeError):
        return None
    if len(sse_body) != sse_len or not isinstance(meta, dict):
        return None
    return Entry(meta, json_body, sse_body)
