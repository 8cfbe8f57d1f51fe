"""Server-sent events: a decoder from bytes to `data:` payloads and an encoder for Anthropic."""

from __future__ import annotations

from typing import Any

import orjson


def encode_event(event: dict[str, Any]) -> bytes:
    """One SSE frame. The `event:` line is always present: Claude Code and the SDKs ignore
    frames without it."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def encode_events(events: list[dict[str, Any]]) -> bytes:
    return b"".join(encode_event(event) for event in events)


class SSEDecoder:
    """Turns arbitrary byte chunks into the `data` payloads of complete events.

    Buffers across chunk boundaries, accepts `\\n` and `\\r\\n`, and skips `:` comments such as
    OpenRouter's `: OPENROUTER PROCESSING` keep-alives.
    """

    def __init__(self, max_line: int = 64 * 1024 * 1024) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._max_line = max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        if b"\n" not in chunk:
            if len(self._buffer) > self._max_line:
                raise ValueError("SSE line exceeds the maximum size")
            return []
        *lines, self._buffer = self._buffer.split(b"\n")
        payloads: list[bytes] = []
        for line in lines:
            self._line(line.rstrip(b"\r"), payloads)
        return payloads

    def flush(self) -> list[bytes]:
        """End of stream: whatever is buffered counts as a complete event."""
        payloads: list[bytes] = []
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r"), payloads)
            self._buffer = b""
        self._line(b"", payloads)
        return payloads

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
