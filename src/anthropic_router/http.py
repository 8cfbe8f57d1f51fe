"""The few ASGI primitives the app needs: read a body, send JSON, send an SSE stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from anthropic_router.errors import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ClientDisconnected(Exception):
    pass


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class BodyBudget:
    """The bytes of request bodies held at once, across all requests of a process
    (MAX_INFLIGHT_BODY_BYTES): past it new bytes are refused with a 529, which clients retry,
    instead of MAX_CONCURRENT_REQUESTS x MAX_REQUEST_BODY exhausting the machine's memory."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        if self.used + size > self.limit:
            raise ApiError(
                "overloaded_error",
                "the router is reading too many large request bodies at once; retry shortly",
                retry_after="1",
            )
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size


async def read_body(receive: Receive, limit: int, budget: BodyBudget | None = None) -> bytes:
    """The whole body, at most `limit` bytes; with a `budget`, its bytes are taken from it
    as they arrive, and the caller gives back `len(body)` when done with it."""
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            if size + len(chunk) > limit:
                raise ApiError("request_too_large", f"request body exceeds {limit} bytes")
            if budget is not None:
                budget.take(len(chunk))
            size += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)
    except BaseException:
        if budget is not None:
            budget.give(size)
        raise


def parse_json(body: bytes) -> Any:
    if not body:
        raise ApiError("invalid_request_error", "request body is empty; expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError("invalid_request_error", f"request body is not valid JSON: {exc}") from None


async def send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]]) -> None:
    await send_bytes(send, status, orjson.dumps(data), [JSON_TYPE, *headers])
