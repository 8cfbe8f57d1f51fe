"""Scripted replies of the fake upstream: plain bodies, SSE streams and network faults.

A reply writes itself to a `Connection`, a tiny interface the HTTP handler implements, so replies
know nothing of `http.server`.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .openai_chunks import JSON, chunk, completion_dict

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
DONE = b"data: [DONE]\n\n"


class Connection(Protocol):
    """The response side of one request. Writes raise OSError when the client has gone."""

    def send_body(self, status: int, headers: Mapping[str, str], body: bytes) -> None: ...

    def start_chunked(self, status: int, headers: Mapping[str, str]) -> None: ...

    def write_chunk(self, data: bytes) -> None: ...

    def end_chunked(self) -> None: ...

    def drop(self) -> None:
        """Close the socket now, whatever was sent so far."""

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the server is stopping and the reply should give up."""

    def wait_for_close(self, seconds: float) -> bool:
        """Wait up to `seconds` for the client to close the connection; True when it did."""


class Reply(ABC):
    @abstractmethod
    def send(self, conn: Connection) -> None: ...


@dataclass(frozen=True)
class Pause:
    """A stream item: wait this long before the next item."""

    seconds: float


StreamItem = JSON | str | bytes | Pause


def merge_headers(defaults: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """Defaults overridden by `extra`, case-insensitively (keys are lower-cased)."""
    merged = {k.lower(): v for k, v in defaults.items()}
    merged.update({k.lower(): v for k, v in (extra or {}).items()})
    return merged


def encode_item(item: JSON | str | bytes) -> bytes:
    """Dicts become `data: <json>` events; str and bytes are sent verbatim."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return b"data: " + json.dumps(item).encode() + b"\n\n"


@dataclass
class BodyReply(Reply):
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, conn: Connection) -> None:
        headers = merge_headers({"content-type": self.content_type}, self.headers)
        conn.send_body(self.status, headers, self.body)


@dataclass
class StreamReply(Reply):
    """Chunked transfer-encoding; `delay` is waited between items, `truncate` cuts the socket."""

    items: list[bytes | Pause]
    delay: float = 0.0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    truncate: bool = False

    def send(self, conn: Connection) -> None:
        conn.start_chunked(self.status, merge_headers(SSE_HEADERS, self.headers))
        for position, item in enumerate(self.items):
            if not conn.sleep(self._wait_before(position, item)):
                conn.drop()
                return
            if not isinstance(item, Pause):
                conn.write_chunk(item)
        if self.truncate:
            conn.drop()
        else:
            conn.end_chunked()

    def _wait_before(self, position: int, item: bytes | Pause) -> float:
        if isinstance(item, Pause):
            return item.seconds
        return self.delay if position > 0 else 0.0


@dataclass
class HangReply(Reply):
    """Read the request, send nothing for `seconds`, then close the socket."""

    seconds: float

    def send(self, conn: Connection) -> None:
        conn.sleep(self.seconds)
        conn.drop()


class CloseReply(Reply):
    """Close the socket without any response."""

    def send(self, conn: Connection) -> None:
        conn.drop()


@dataclass
class HangUntilClosedReply(Reply):
    """Send nothing and watch the socket: when the client closes it within `seconds`, the
    request is recorded as `disconnected` (a reply that notices a cancelled upstream call)."""

    seconds: float

    def send(self, conn: Connection) -> None:
        if conn.wait_for_close(self.seconds):
            raise ConnectionResetError("the client closed the connection")
        conn.drop()


@dataclass
class DelayedReply(Reply):
    """Send nothing for `seconds` (slow response headers), then `reply`."""

    seconds: float
    reply: Reply

    def send(self, conn: Connection) -> None:
        if conn.sleep(self.seconds):
            self.reply.send(conn)
        else:
            conn.drop()


@dataclass
class GatedReply(Reply):
    """Send nothing until the test sets `gate` (ordering by events, not by time), then
    `reply`; close the socket if it is not set within `timeout`."""

    gate: threading.Event
    reply: Reply
    timeout: float = 30.0

    def send(self, conn: Connection) -> None:
        if self.gate.wait(self.timeout):
            self.reply.send(conn)
        else:
            conn.drop()


@dataclass
class EndlessStreamReply(Reply):
    """An SSE stream that never ends: `head` once, then `item` every `interval` seconds until
    the client goes away (recorded as `disconnected`), the server stops or `max_seconds`."""

    head: list[bytes]
    item: bytes
    interval: float
    max_seconds: float

    def send(self, conn: Connection) -> None:
        conn.start_chunked(200, SSE_HEADERS)
        for data in self.head:
            conn.write_chunk(data)
        waited = 0.0
        while waited < self.max_seconds and conn.sleep(self.interval):
            conn.write_chunk(self.item)  # OSError once the client has gone
            waited += self.interval
        conn.drop()


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    return BodyReply(status, json.dumps(body).encode(), "application/json", dict(headers or {}))


def raw(
    status: int,
    body: bytes,
    content_type: str = "text/plain",
    headers: Mapping[str, str] | None = None,
) -> Reply:
    return BodyReply(status, body, content_type, dict(headers or {}))


def completion(
    text: str | None = None,
    tool_calls: list[JSON] | None = None,
    reasoning: str | None = None,
    finish_reason: str = "stop",
    usage: JSON | None = None,
    model: str = "test/model",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    extra_message_fields: JSON | None = None,
) -> Reply:
    """A `chat.completion` JSON reply (see `completion_dict`)."""
    body = completion_dict(
        text, tool_calls, reasoning, finish_reason, usage, model, extra_message_fields
    )
    return json_reply(body, status, headers)


def error(
    status: int,
    message: str,
    type_: str | None = None,
    headers: Mapping[str, str] | None = None,
    code: int | str | None = None,
) -> Reply:
    """An OpenAI error envelope; `code` defaults to the status, as OpenRouter sends it."""
    default_type = "invalid_request_error" if status < 500 else "server_error"
    envelope = {"message": message, "type": type_ or default_type, "code": code or status}
    return json_reply({"error": envelope}, status, headers)


def _stream_items(chunks: Iterable[StreamItem], done: bool) -> list[bytes | Pause]:
    items = [item if isinstance(item, Pause) else encode_item(item) for item in chunks]
    return [*items, DONE] if done else items


def sse(
    chunks: Iterable[StreamItem],
    delay: float = 0.0,
    headers: Mapping[str, str] | None = None,
    done: bool = True,
    status: int = 200,
) -> Reply:
    """An SSE stream of `chunks` (dict -> `data:` event, str/bytes verbatim, Pause waits)."""
    return StreamReply(_stream_items(chunks, done), delay, status, dict(headers or {}))


def truncated_sse(
    chunks: Iterable[StreamItem],
    delay: float = 0.0,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Stream `chunks`, then cut the connection mid-body: no [DONE], no final empty chunk."""
    items = _stream_items(chunks, done=False)
    return StreamReply(items, delay, 200, dict(headers or {}), truncate=True)


def hang(seconds: float) -> Reply:
    return HangReply(seconds)


def close_connection() -> Reply:
    return CloseReply()


def pause(seconds: float) -> Pause:
    return Pause(seconds)


def hang_until_closed(seconds: float) -> Reply:
    """Like `hang`, but records the request as `disconnected` as soon as the client closes."""
    return HangUntilClosedReply(seconds)


def delayed(seconds: float, reply: Reply) -> Reply:
    """`reply`, after `seconds` without any byte (slow response headers)."""
    return DelayedReply(seconds, reply)


def gated(gate: threading.Event, reply: Reply, timeout: float = 30.0) -> Reply:
    """`reply` once `gate` is set (see GatedReply)."""
    return GatedReply(gate, reply, timeout)


def endless_sse(
    head: Iterable[StreamItem] = (),
    item: JSON | str | bytes | None = None,
    interval: float = 0.05,
    max_seconds: float = 120.0,
) -> Reply:
    """A stream that never finishes: `head` chunks, then `item` (default: a one-character
    text delta) every `interval` seconds, with no finish reason and no [DONE]."""
    encoded_head = [encode_item(i) for i in head if not isinstance(i, Pause)]
    filler = encode_item(item if item is not None else chunk({"content": "x"}))
    return EndlessStreamReply(encoded_head, filler, interval, max_seconds)
