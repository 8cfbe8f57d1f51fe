"""Server-sent events: a decoder from bytes to `data:` payloads and an encoder for Anthropic."""

from __future__ import annotations

from typing import Any

import orjson

_PREFIXES: dict[str, bytes] = {}  # event type -> b"event: <type>\ndata: " (a dozen types)


def _prefix(kind: str) -> bytes:
    prefix = _PREFIXES.get(kind)
    if prefix is None:
        prefix = b"event: " + kind.encode() + b"\ndata: "
        if len(_PREFIXES) < 64:  # the types are the protocol's; never grow without bound
            _PREFIXES[kind] = prefix
    return prefix


def encode_event(event: dict[str, Any]) -> bytes:
    """One SSE frame. The `event:` line is always present: Claude Code and the SDKs ignore
    frames without it."""
    return _prefix(str(event["type"])) + orjson.dumps(event) + b"\n\n"


def encode_events(events: list[dict[str, Any]]) -> bytes:
    # On every relayed chunk: the prefix of each type is built once (about 0.5 µs an event).
    return b"".join(
        [_prefix(str(event["type"])) + orjson.dumps(event) + b"\n\n" for event in events]
    )


class SSEDecoder:
    """Turns arbitrary byte chunks into the `data` payloads of complete events.

    Buffers across chunk boundaries, accepts the three line endings the SSE spec allows
    (`\n`, `\r\n` and a lone `\r`, also when a `\r\n` pair is split between chunks),
    skips `:` comments such as OpenRouter's `: OPENROUTER PROCESSING` keep-alives, and
    refuses any line longer than `max_line` bytes wherever it falls in a chunk.
    """

    def __init__(self, max_line: int = 64 * 1024 * 1024) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._max_line = max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        if (
            # The usual read, one whole `data: {...}` event and nothing held: its payload
            # without the line loop (about half the decoder's time on a relayed chunk).
            not self._buffer
            and chunk.endswith(b"\n\n")
            and chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and not self._data
            and b"\r" not in chunk
            and len(chunk) - 2 <= self._max_line
        ):
            return [chunk[6:-2]]
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = _normalise_line_endings(buffer)
        if b"\n" not in buffer:
            self._buffer = buffer
            self._check(buffer)
            return []
        *lines, self._buffer = buffer.split(b"\n")
        self._check(self._buffer)
        # `_line`, inlined: this loop runs for every line of every relayed chunk.
        payloads: list[bytes] = []
        data = self._data
        if len(buffer) > self._max_line:  # else no line of it can be too long
            max_line = self._max_line
            if any(len(line) > max_line for line in lines):
                raise ValueError("SSE line exceeds the maximum size")
        for line in lines:
            if not line:
                if data:
                    payloads.append(b"\n".join(data))
                    data = self._data = []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
        return payloads

    def flush(self) -> list[bytes]:
        """End of stream: whatever is buffered counts as a complete event."""
        payloads: list[bytes] = []
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r"), payloads)
            self._buffer = b""
        self._line(b"", payloads)
        return payloads

    def _check(self, pending: bytes) -> None:
        # A trailing `\r` kept back for a possible `\n` is not part of the line.
        if len(pending) - pending.endswith(b"\r") > self._max_line:
            raise ValueError("SSE line exceeds the maximum size")

    def _line(self, line: bytes, payloads: list[bytes]) -> None:
        if not line:
            if self._data:
                payloads.append(b"\n".join(self._data))
                self._data = []
            return
        if line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
        # `event:`, `id:`, `retry:` and `:` comments carry nothing an OpenAI stream needs.


def _normalise_line_endings(buffer: bytes) -> bytes:
    """`\r\n` and lone `\r` become `\n`. A `\r` at the very end stays: the `\n` that
    may complete it is still on its way."""
    held = buffer.endswith(b"\r")
    body = buffer[:-1] if held else buffer
    body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return body + b"\r" if held else body
