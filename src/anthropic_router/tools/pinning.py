"""The MCP connector's HTTP client, pinned to addresses that passed the private-address check.

`mcp.check_server_url` resolves a server's host before the session opens, but the client
resolves it again when it connects: a hostile DNS server could answer a public address to
the check and 127.0.0.1 to the connect (DNS rebinding). So the MCP SDK's httpx2 client gets
a network backend that resolves the host itself, checks every address it got, and connects
to one of those IP addresses. httpcore2 still sends the original hostname in the Host header
and as the TLS server name, and verifies the certificate against it. Web fetch does the
same through its aiohttp resolver (tools/fetch.py `GuardedResolver`).

Imported when an MCP session opens (httpx2 and httpcore2 are not start-up imports).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import anyio
import httpcore2
import httpx2

from anthropic_router.tools.fetch import BlockedAddress, address_allowed
from anthropic_router.tools.mcp import checked_addresses


class AddressRefused(httpcore2.ConnectError):
    """The host resolved to a private or reserved address at connect time. A ConnectError,
    so httpx2 and the MCP SDK treat it as a failed connection."""


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """Connects only to checked addresses. `refused` names the last host it refused, so the
    connector can answer with the same permission error as the check before connecting.
    `allowed` decides which addresses pass (the tests accept loopback with it)."""

    def __init__(self, allowed: Callable[[str], bool] = address_allowed) -> None:
        self._inner = httpcore2.AnyIOBackend()
        self._allowed = allowed
        self.refused: str | None = None

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await checked_addresses(host, port, self._allowed)
        except BlockedAddress:
            self.refused = host
            raise AddressRefused(f"{host} resolves to a private or reserved address") from None
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore2.ConnectError(f"{host} does not resolve: {exc}") from None
        failure: Exception = httpcore2.ConnectError(f"{host} has no address")
        for address in addresses:  # in the resolver's order, like a plain connect
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("the MCP connector does not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's default transport with its connection pool on a GuardedBackend (the
    transport takes no network backend itself; its pool does)."""

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__()
        if not isinstance(getattr(self, "_pool", None), httpcore2.AsyncConnectionPool):
            # Never fall back to the unguarded pool if httpx2 changes its internals.
            raise RuntimeError("httpx2.AsyncHTTPTransport has no connection pool to replace")
        limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def client_factory(backend: GuardedBackend | None) -> Any:
    """An `httpx_client_factory` for the MCP SDK's transports: httpx2 clients whose every
    connection goes through `backend` (None: a plain client, no address check)."""

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers=headers,
            timeout=timeout or httpx2.Timeout(30, read=300),
            auth=auth,
            transport=PinnedTransport(backend) if backend is not None else None,
        )

    return factory
