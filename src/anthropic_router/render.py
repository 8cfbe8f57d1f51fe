"""A relay's `Reply` as HTTP: the Message as JSON, or its events as SSE with `ping` frames
while the upstream is silent, and at shutdown an `overloaded_error` event instead of a cut."""

from __future__ import annotations

import asyncio
from typing import Any

from anthropic_router.convert.sse import encode_events
from anthropic_router.http import JSON_TYPE, SSE_HEADERS, Send, send_bytes, send_json
from anthropic_router.observability import Exchange
from anthropic_router.relay import Reply


class StreamDrain:
    """The streams being sent; at shutdown each is ended with an `overloaded_error` event
    (clients retry it) rather than cut."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    def close_all(self) -> None:
        self.closing = True
        for task in list(self.tasks):
            task.cancel()


SHUTDOWN_EVENT = encode_events(
    [
        {
            "type": "error",
            "error": {
                "type": "overloaded_error",
                "message": "anthropic-router is shutting down; retry the request",
            },
        }
    ]
)


async def send_reply(
    send: Send,
    reply: Reply,
    headers: list[tuple[bytes, bytes]],
    record: Exchange,
    ping_interval: float,
    drain: StreamDrain | None = None,
) -> None:
    """A relay's reply as HTTP: the Message as JSON, or its events as SSE with `ping`
    frames while the upstream is silent (long reasoning, queued providers), so idle
    timeouts of clients and intermediaries do not cut the stream."""
    if reply.encoded is not None:
        await _send_encoded(send, reply, [*headers, *reply.headers])
        record.status = 200
        return
    if reply.events is None:
        await send_json(send, 200, reply.message, [*headers, *reply.headers])
        record.status = 200
        return
    record.status = 200
    events = reply.events
    start = [*SSE_HEADERS, *headers, *reply.headers]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": start})
    except BaseException:
        await events.aclose()  # never started: its cleanup (upstream, MCP sessions) runs now
        raise
    pinger = _Pinger(send, ping_interval)
    task = asyncio.current_task(pinger.loop)  # the loop given: no getpid() (watchdog.py)
    if drain is not None and task is not None:
        drain.tasks.add(task)
    open_block: int | None = None  # for the drain: a block must close before the error
    try:
        async for batch in events:
            await send(
                {"type": "http.response.body", "body": encode_events(batch), "more_body": True}
            )
            pinger.sent_at = pinger.loop.time()
            open_block = _open_block(batch, open_block)
    except asyncio.CancelledError:
        if drain is None or not drain.closing or task is None:
            raise
        task.uncancel()  # our own shutdown drain, not the client going away
        record.error_type = "overloaded_error"
        record.error_message = "closed at shutdown"
        closing = b""
        if open_block is not None:
            closing = encode_events([{"type": "content_block_stop", "index": open_block}])
        body = closing + SHUTDOWN_EVENT
        await send({"type": "http.response.body", "body": body, "more_body": True})
    finally:
        pinger.close()
        if drain is not None and task is not None:
            drain.tasks.discard(task)
        await events.aclose()
    await send({"type": "http.response.body", "body": b""})


async def _send_encoded(send: Send, reply: Reply, headers: list[tuple[bytes, bytes]]) -> None:
    """A reply rendered in advance (a cache hit): one write, no encoding."""
    if reply.events is None:
        await send_bytes(send, 200, reply.encoded or b"", [JSON_TYPE, *headers])
        return
    await reply.events.aclose()
    start = [*SSE_HEADERS, *headers]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    await send({"type": "http.response.body", "body": reply.encoded, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _open_block(batch: list[dict[str, Any]], open_block: int | None) -> int | None:
    """The index of the block left open after `batch` (the last start or stop decides)."""
    for event in reversed(batch):
        kind = event["type"]
        if kind == "content_block_start":
            return int(event["index"])
        if kind == "content_block_stop":
            return None
    return open_block


_PING = encode_events([{"type": "ping"}])


class _Pinger:
    """A `ping` frame once the stream has been silent for `interval`. One timer handle per
    stream, re-armed from the time of the last write when it fires (like the Watchdog);
    a task exists only while a ping is being sent, not one per stream."""

    __slots__ = ("_handle", "_interval", "_send", "_sending", "loop", "sent_at")

    def __init__(self, send: Send, interval: float) -> None:
        self.loop = asyncio.get_running_loop()
        self._send, self._interval = send, interval
        self.sent_at = self.loop.time()
        self._sending: asyncio.Task[None] | None = None
        self._handle: asyncio.TimerHandle | None = self.loop.call_at(
            self.sent_at + interval, self._check
        )

    def _check(self) -> None:
        now = self.loop.time()
        due = self.sent_at + self._interval
        if now >= due:
            if self._sending is None:  # else the last ping is still waiting to be written
                self._sending = self.loop.create_task(self._ping())
            due = now + self._interval
        self._handle = self.loop.call_at(due, self._check)

    async def _ping(self) -> None:
        try:
            await self._send({"type": "http.response.body", "body": _PING, "more_body": True})
            self.sent_at = self.loop.time()
        finally:
            self._sending = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._sending is not None:
            self._sending.cancel()
