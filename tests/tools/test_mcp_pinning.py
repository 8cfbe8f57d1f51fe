"""The MCP connector's DNS-rebinding guard (tools/pinning.py), at the seam it adds: the network
backend under the MCP SDK's httpx2 client resolves the host itself, checks every address and
connects to a checked one. Real DNS on this machine cannot answer differently between
`check_server_url` and the connect, so these tests skip that check and go straight to the
connect: `localhost` stands for a host whose answer turned into loopback. The servers are
real: the official SDK's MCP server on 127.0.0.1 (both transports) and a TLS server."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpcore2
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from anthropic_router.errors import ApiError
from anthropic_router.tools.mcp import McpConnection
from anthropic_router.tools.pinning import AddressRefused, GuardedBackend, client_factory
from support.mcp_server import McpTestServer
from support.router import free_port
from support.tls import self_signed

pytestmark = pytest.mark.anyio

TRANSPORTS = ["streamable-http", "sse"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=TRANSPORTS)
def server(request: pytest.FixtureRequest) -> Iterator[McpTestServer]:
    with McpTestServer(request.param) as running:
        yield running


def _by_name(server: McpTestServer) -> str:
    """The server's URL with the host name `localhost` instead of its address."""
    return server.url.replace("127.0.0.1", "localhost")


class Loopback:
    """An address policy that accepts loopback and records what it was asked: the stand-in
    for a public address, which this machine cannot serve."""

    def __init__(self) -> None:
        self.checked: list[str] = []

    def __call__(self, address: str) -> bool:
        self.checked.append(address)
        return ipaddress.ip_address(address).is_loopback


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::ffff:127.0.0.1"])
async def test_backend_refuses_a_loopback_answer(server: McpTestServer, host: str) -> None:
    plain = await httpcore2.AnyIOBackend().connect_tcp("127.0.0.1", server.port)
    await plain.aclose()  # the port is open: only the check stands in the way
    backend = GuardedBackend()
    with pytest.raises(AddressRefused, match="private or reserved"):
        await backend.connect_tcp(host, server.port, timeout=5)
    assert backend.refused == host


async def test_session_refused_at_connect_is_the_403_of_the_check(server: McpTestServer) -> None:
    """A host that passed `check_server_url` and then resolves to loopback: the client gets
    the permission error it would have got from the check, and the server sees nothing."""
    before = len(server.authorizations)
    connection = McpConnection("rebound", _by_name(server), "test-mcp-token", guarded=True)
    with pytest.raises(ApiError) as raised:
        await connection.open(10)
    error = raised.value
    assert (error.status, error.error_type) == (403, "permission_error")
    assert error.message == (
        "MCP server localhost is a private or reserved address "
        "(set MCP_SERVER_ALLOWLIST to allow it)"
    )
    assert len(server.authorizations) == before


async def test_pinned_client_runs_a_session_on_the_checked_address(
    server: McpTestServer,
) -> None:
    """Through the guarded transport, with loopback accepted: the session works on both
    transports, every connection went to an address the policy accepted, by host name."""
    policy = Loopback()
    factory = client_factory(GuardedBackend(policy))
    headers = {"Authorization": "Bearer test-mcp-token"}
    url = _by_name(server)
    async with _streams(url, factory, headers) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        assert sorted(tool.name for tool in (await s.list_tools()).tools) == ["add", "explode"]
        answer = await s.call_tool("add", {"a": 2, "b": 40})
    assert [item.text for item in answer.content if item.type == "text"] == ["42"]
    assert policy.checked and all(ipaddress.ip_address(a).is_loopback for a in policy.checked)
    assert "Bearer test-mcp-token" in server.authorizations


async def test_unguarded_connection_reaches_loopback(server: McpTestServer) -> None:
    """MCP_SERVER_ALLOWLIST or WEB_FETCH_ALLOW_PRIVATE: no address check, as before."""
    connection = McpConnection("calc", _by_name(server), None, guarded=False)
    await connection.open(10)
    try:
        assert sorted(tool.name for tool in connection.tools) == ["add", "explode"]
        assert await connection.call("add", {"a": 1, "b": 2}, 10) == (["3"], False)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def _streams(url: str, factory: Any, headers: dict[str, str]) -> AsyncIterator[Any]:
    """The SDK transport the connector picks for `url`, on clients from `factory`."""
    if url.endswith("/sse"):
        async with sse_client(url, headers=headers, httpx_client_factory=factory) as streams:
            yield streams
    else:
        async with (
            factory(headers=headers) as http,
            streamable_http_client(url, http_client=http) as streams,
        ):
            yield streams


async def test_pinned_tls_keeps_the_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connected to the checked IP, the request still names the host: the server gets
    `localhost` as the TLS server name and in the Host header (the certificate, trusted
    through SSL_CERT_FILE, is verified for it), and without the loopback policy it is refused."""
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate
    seen: dict[str, object] = {}
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    def record_sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        seen["sni"] = name

    tls.sni_callback = record_sni  # type: ignore[assignment]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen["head"] = head.decode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    port = free_port()
    listener = await asyncio.start_server(answer, "127.0.0.1", port, ssl=tls)
    try:
        policy = Loopback()
        async with client_factory(GuardedBackend(policy))() as http:
            response = await http.get(f"https://localhost:{port}/check")
        assert (response.status_code, response.text) == (200, "ok")
        with pytest.raises(httpx2.ConnectError, match="private or reserved"):
            async with client_factory(GuardedBackend())() as http:
                await http.get(f"https://localhost:{port}/check")
    finally:
        listener.close()
        await listener.wait_closed()
    assert seen["sni"] == "localhost"
    assert f"host: localhost:{port}" in str(seen["head"]).lower()
    assert policy.checked == ["127.0.0.1"]
