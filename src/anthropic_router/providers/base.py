"""What every provider offers the app: complete, open a stream, list models, close."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

JSON = dict[str, Any]


class UpstreamStream(Protocol):
    """An upstream stream whose status was 200: raw byte chunks until the end."""

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class ChatProvider(Protocol):
    name: str

    def open(self) -> None: ...

    @property
    def is_open(self) -> bool: ...

    async def complete(self, body: JSON, headers: Mapping[str, str]) -> JSON: ...

    async def open_stream(self, body: JSON, headers: Mapping[str, str]) -> UpstreamStream: ...

    async def list_models(self) -> list[JSON]: ...

    async def aclose(self) -> None: ...
