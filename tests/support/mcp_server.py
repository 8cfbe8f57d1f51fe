"""A real MCP server built with the official `mcp` SDK, on 127.0.0.1 in a thread: two tools,
`add` (works) and `explode` (always fails), over Streamable HTTP at `/mcp`, or with
`transport="sse"` over the SSE transport at `/sse`. It records the
Authorization header of each HTTP request so tests can check the token reached it."""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from .router import free_port


def build_server() -> MCPServer:
    server = MCPServer("router-test-tools")

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails, with the reason in the error."""
        raise ToolError(f"exploded: {reason}")

    return server


class McpTestServer:
    def __init__(self, transport: str = "streamable-http") -> None:
        self.port = free_port()
        self.transport = transport
        self.authorizations: list[str | None] = []
        server = build_server()
        app = server.sse_app() if transport == "sse" else server.streamable_http_app()
        self._app = self._recording(app)
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _recording(self, app: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                value = headers.get(b"authorization")
                self.authorizations.append(value.decode() if value else None)
            await app(scope, receive, send)

        return wrapped

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    @property
    def url(self) -> str:
        path = "/sse" if self.transport == "sse" else "/mcp"
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> McpTestServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)
