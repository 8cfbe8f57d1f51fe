"""Web fetch's aiohttp resolver: the address check at connect time (tools/fetch.py).

A module of its own because it subclasses aiohttp's resolver, and aiohttp is imported only
when a server tool first opens a session, not at start-up (0.2 s of it).
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from anthropic_router.tools.fetch import BlockedAddress, address_allowed, host_allowlisted


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then drops refused addresses; a host with none
    left fails to connect."""

    def __init__(self, allowlist: list[str]) -> None:
        self._inner = ThreadedResolver()
        self._allowlist = [entry.lower() for entry in allowlist]

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if host_allowlisted(host, port, self._allowlist):
            return found
        allowed = [entry for entry in found if address_allowed(entry["host"])]
        if not allowed:
            raise BlockedAddress(f"{host} resolves to a private or reserved address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
