"""What every provider offers the app: complete, open a stream, list models, close."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

JSON = dict[str, Any]


class UpstreamStream(Protocol):
    """An upstream stream whose status was 200: raw byte chunks until the end. Each read is
    bounded by STREAM_IDLE_TIMEOUT and by `deadline` (a monotonic instant, REQUEST_TIMEOUT):
    one bound per read, set by the stream, instead of one per layer."""

    def chunks(self, deadline: float | None = None) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class JsonAsStream(Exception):
    """`open_stream` found that the upstream answered a stream request with one JSON
    document: the relay replays `completion` as a stream."""

    def __init__(self, completion: JSON) -> None:
        super().__init__("upstream answered with JSON")
        self.completion = completion


class ChatProvider(Protocol):
    name: str

    def unsupported(self, body: JSON) -> list[str]:
        """Parameters of `body` this provider will not send (reported as dropped)."""
        ...

    def open(self) -> None: ...

    @property
    def is_open(self) -> bool: ...

    async def complete(self, body: JSON, headers: Mapping[str, str]) -> JSON: ...

    async def open_stream(self, body: JSON, headers: Mapping[str, str]) -> UpstreamStream: ...

    async def list_models(self) -> list[JSON]: ...

    async def aclose(self) -> None: ...
