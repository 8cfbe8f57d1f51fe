"""The MCP connector: the router as an MCP client of the servers a request names in
`mcp_servers`, with the official `mcp` SDK (Streamable HTTP, or SSE for URLs ending in
`/sse`).

Sessions live for one request. Each runs in a task of its own that enters and leaves the
SDK's transport and session contexts (anyio task groups must be left by the task that
entered them, which an async generator handing out SSE events cannot promise), and serves
tool calls sent to it through a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from anthropic_router.config import Settings
from anthropic_router.errors import ApiError, invalid_request
from anthropic_router.tools.fetch import BlockedAddress, address_allowed

JSON = dict[str, Any]


@dataclass(slots=True)
class McpTool:
    server: str
    name: str
    description: str
    schema: JSON


@dataclass
class McpConnection:
    """One open MCP session, served by its own task."""

    name: str
    url: str
    token: str | None
    # Connect only to addresses that pass the private-address check (tools/pinning.py);
    # False under MCP_SERVER_ALLOWLIST or WEB_FETCH_ALLOW_PRIVATE (see `address_guarded`).
    guarded: bool = True
    tools: list[McpTool] = field(default_factory=list)
    _backend: Any = None  # a pinning.GuardedBackend once a guarded session opens
    _calls: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    async def open(self, connect_timeout: float) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._serve(ready))
        try:
            async with asyncio.timeout(connect_timeout):
                await ready
        except TimeoutError:
            await self.close()
            self._raise_if_refused()
            raise invalid_request(
                f"MCP server '{self.name}' did not answer within MCP_CONNECT_TIMEOUT"
            ) from None
        except Exception as exc:
            await self.close()
            self._raise_if_refused()
            raise invalid_request(
                f"could not connect to MCP server '{self.name}': {_describe(exc)}"
            ) from None

    def _raise_if_refused(self) -> None:
        """The connect-time address check refused the host (its DNS answer changed since
        `check_server_url`): the same permission error as that check."""
        if self._backend is not None and self._backend.refused is not None:
            raise private_address_error(self._backend.refused)

    async def call(self, tool: str, arguments: JSON, timeout: float) -> tuple[list[str], bool]:
        """The tool's text content and whether it is an error."""
        result: asyncio.Future[tuple[list[str], bool]] = asyncio.get_running_loop().create_future()
        await self._calls.put((tool, arguments, timeout, result))
        return await result

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            await self._calls.put(None)
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(self._task)
            except Exception:  # it did not finish in time, or failed while closing
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        from mcp import ClientSession

        from anthropic_router.tools import pinning

        if self.guarded:
            self._backend = pinning.GuardedBackend()
        factory = pinning.client_factory(self._backend)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with (
                factory(headers=headers) as http,
                _transport(self.url, http, headers, factory) as streams,
                ClientSession(streams[0], streams[1]) as session,
            ):
                await session.initialize()
                listing = await session.list_tools()
                self.tools = [
                    McpTool(self.name, tool.name, tool.description or "", dict(tool.input_schema))
                    for tool in listing.tools
                ]
                ready.set_result(None)
                while (job := await self._calls.get()) is not None:
                    await _run_call(session, *job)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cut"))
            if not isinstance(exc, Exception):
                raise
        finally:
            _fail_pending(self._calls)


async def _run_call(
    session: Any, tool: str, arguments: JSON, timeout: float, result: asyncio.Future[Any]
) -> None:
    try:
        answer = await session.call_tool(tool, arguments, read_timeout_seconds=timeout)
    except Exception as exc:  # a protocol error (unknown tool, timeout) is the tool's error
        if not result.done():
            result.set_result(([f"MCP error: {_describe(exc)}"], True))
        return
    texts = [_content_text(item) for item in answer.content]
    if not texts and answer.structured_content is not None:
        import orjson

        texts = [orjson.dumps(answer.structured_content).decode()]
    if not result.done():
        result.set_result((texts, bool(answer.is_error)))


def _fail_pending(calls: asyncio.Queue[Any]) -> None:
    while not calls.empty():
        job = calls.get_nowait()
        if job is not None and not job[3].done():
            job[3].set_result((["MCP error: the server connection closed"], True))


def _content_text(item: Any) -> str:
    kind = getattr(item, "type", "")
    if kind == "text":
        return str(item.text)
    if kind == "resource":
        resource = item.resource
        return str(getattr(resource, "text", "") or f"(resource {resource.uri})")
    return f"({kind} content)"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    text = str(exc).split("\n", 1)[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.asynccontextmanager
async def _transport(url: str, http: Any, headers: JSON, factory: Any) -> Any:
    if urlsplit(url).path.rstrip("/").endswith("/sse"):
        from mcp.client.sse import sse_client

        async with sse_client(url, headers=headers, httpx_client_factory=factory) as streams:
            yield streams
    else:
        from mcp.client.streamable_http import streamable_http_client

        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


# --- which servers a request may name -------------------------------------------------


def server_definitions(request: JSON) -> list[JSON]:
    servers = request.get("mcp_servers")
    if servers is None:
        return []
    if not isinstance(servers, list):
        raise invalid_request("mcp_servers: Input should be a valid list")
    names: set[str] = set()
    for index, server in enumerate(servers):
        if not isinstance(server, dict) or not isinstance(server.get("url"), str):
            raise invalid_request(f"mcp_servers.{index}.url: Field required")
        name = server.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_request(f"mcp_servers.{index}.name: Field required")
        if name in names:
            raise invalid_request(f"mcp_servers: duplicate server name '{name}'")
        names.add(name)
    return servers


def check_toolsets(toolsets: list[JSON], servers: list[JSON]) -> None:
    """Each `mcp_toolset` must name a server of `mcp_servers` (Anthropic answers 400)."""
    names = {server["name"] for server in servers}
    for toolset in toolsets:
        name = toolset.get("mcp_server_name")
        if name not in names:
            raise invalid_request(
                f"mcp_toolset names MCP server '{name}', which is not in mcp_servers"
            )


def address_guarded(settings: Settings) -> bool:
    """Whether MCP connections are checked against private and reserved addresses: not when
    MCP_SERVER_ALLOWLIST (URL prefixes) decides instead, nor under WEB_FETCH_ALLOW_PRIVATE."""
    return not settings.mcp_server_allowlist and not settings.web_fetch_allow_private


async def check_server_url(url: str, settings: Settings) -> None:
    """MCP_SERVER_ALLOWLIST (URL prefixes) when set; otherwise web fetch's address rules,
    checked here for a clear error up front and again at connect time (tools/pinning.py)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_request(f"MCP server URL must be http(s): {url[:200]}")
    if settings.mcp_server_allowlist:
        if not any(url.startswith(prefix) for prefix in settings.mcp_server_allowlist):
            raise ApiError(
                "permission_error", f"MCP server URL is not in MCP_SERVER_ALLOWLIST: {url[:200]}"
            )
        return
    if not address_guarded(settings):
        return
    host = parts.hostname
    try:
        await checked_addresses(host, parts.port or 443)
    except BlockedAddress:
        raise private_address_error(host) from None
    except OSError:
        raise invalid_request(f"MCP server host does not resolve: {host}") from None


async def checked_addresses(
    host: str, port: int, allowed: Callable[[str], bool] = address_allowed
) -> list[str]:
    """The addresses `host` resolves to, when `allowed` accepts every one (by default: all are
    public); BlockedAddress when one is refused (a host that mixes public and private
    addresses is refused), OSError when it does not resolve."""
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        addresses = [host]
    except ValueError:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(entry[4][0]) for entry in found))
    if not addresses:
        raise OSError(f"{host} has no address")
    if not all(allowed(address) for address in addresses):
        raise BlockedAddress(f"{host} resolves to a private or reserved address")
    return addresses


def private_address_error(host: str) -> ApiError:
    return ApiError(
        "permission_error",
        f"MCP server {host} is a private or reserved address "
        "(set MCP_SERVER_ALLOWLIST to allow it)",
    )


def enabled_tools(server: JSON, toolsets: list[JSON], tools: list[McpTool]) -> list[McpTool]:
    """The server's tools the request enables: `tool_configuration` (mcp-client-2025-04-04)
    or the `mcp_toolset` naming the server (mcp-client-2025-11-20)."""
    configuration = server.get("tool_configuration") or {}
    if configuration.get("enabled") is False:
        return []
    allowed = configuration.get("allowed_tools")
    toolset = next((t for t in toolsets if t.get("mcp_server_name") == server["name"]), None)
    default_on = True
    configs: JSON = {}
    if toolset is not None:
        default_on = (toolset.get("default_config") or {}).get("enabled", True) is not False
        configs = toolset.get("configs") or {}
    kept = []
    for tool in tools:
        if isinstance(allowed, list) and tool.name not in allowed:
            continue
        if (configs.get(tool.name) or {}).get("enabled", default_on) is False:
            continue
        kept.append(tool)
    return kept
