"""The server-tool loop: web search, web fetch and MCP tools run by the router, on any model.

`ServerToolLoop` wraps a `Relay`. A request without server tools passes straight through.
With them, the model is offered plain functions in their place; each model turn is one
`Call` through the inner relay (routing, retries and fallbacks as usual); the router runs
the calls and feeds the results back, until the model answers, calls a client tool (which
goes back to the client as `tool_use` with `stop_reason: tool_use`), or the loop reaches
SERVER_TOOL_MAX_ITERATIONS or the request's deadline (`stop_reason: pause_turn`, as
Anthropic does; the client sends the response back to continue).

The client sees Anthropic's blocks: `server_tool_use` + `web_search_tool_result` /
`web_fetch_tool_result`, `mcp_tool_use` + `mcp_tool_result`, cited text, and
`usage.server_tool_use`. A stream shows each turn's text and each tool block as it happens;
`send_reply`'s pings keep the connection alive while a tool runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from anthropic_router.config import Settings
from anthropic_router.convert.citations import cite_blocks
from anthropic_router.convert.server_tools import (
    MCP,
    ServerTool,
    add_usage,
    function_tool,
    mcp_function_name,
    new_tool_use_id,
    server_tool_usage,
    server_tool_use_block,
    split_tools,
    to_model_history,
)
from anthropic_router.convert.tool_stream import HeldCall, TurnEvents, block_events
from anthropic_router.errors import invalid_request
from anthropic_router.relay import Call, Relay, Reply
from anthropic_router.tools import mcp
from anthropic_router.tools.run import ToolRun

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("anthropic_router")

JSON = dict[str, Any]
Events = AsyncGenerator[list[JSON], None]

# Below this much time left before the deadline, no new model turn is started.
_TURN_MARGIN_SECONDS = 1.0


class ServerToolLoop:
    """A relay that runs server tools around the relay it wraps."""

    def __init__(self, inner: Relay, settings: Settings) -> None:
        self.inner = inner
        self.settings = settings
        self._search_session: aiohttp.ClientSession | None = None
        self._fetch_session: aiohttp.ClientSession | None = None

    def sessions(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        """HTTP sessions for search providers and for web fetch, opened on first use (aiohttp
        with them: 0.2 s of start-up that a router without server-tool requests never uses)."""
        import aiohttp

        from anthropic_router.tools.fetch import open_session

        if self._search_session is None or self._search_session.closed:
            self._search_session = aiohttp.ClientSession(trust_env=False)
        if self._fetch_session is None or self._fetch_session.closed:
            self._fetch_session = open_session(self.settings)
        return self._search_session, self._fetch_session

    async def aclose(self) -> None:
        for session in (self._search_session, self._fetch_session):
            if session is not None:
                await session.close()

    async def run(self, call: Call) -> Reply:
        tools, toolsets, client_tools = split_tools(call.request.get("tools"))
        servers = mcp.server_definitions(call.request)
        mcp.check_toolsets(toolsets, servers)
        if not tools and not servers:
            return await self.inner.run(call)
        if not self.settings.server_tools_enable:
            named = tools[0].config.get("type") if tools else f"mcp_servers ({servers[0]['name']})"
            raise invalid_request(
                f"server tool {named} is disabled on this router (SERVER_TOOLS_ENABLE=false)"
            )
        if self._native(call):
            return await self.inner.run(call)
        loop = _Loop(self, call, tools, toolsets, client_tools)
        await loop.connect(servers)
        try:
            if call.stream:
                return await loop.stream()
            return await loop.complete()
        except BaseException:
            await loop.close()
            raise

    def _native(self, call: Call) -> bool:
        """An Anthropic-native upstream runs server tools itself."""
        targets = call.route.targets
        return self.settings.server_tools_native_passthrough and all(
            target.wire == "anthropic" for target in targets
        )


class _Loop:
    """One client request's way through model turns and tool runs."""

    def __init__(
        self,
        owner: ServerToolLoop,
        call: Call,
        tools: list[ServerTool],
        toolsets: list[JSON],
        client_tools: list[JSON],
    ) -> None:
        self.owner, self.call, self.settings = owner, call, owner.settings
        self.deadline = call.deadline or time.monotonic() + self.settings.request_timeout
        call.deadline = self.deadline  # every turn and tool run shares it
        self.toolsets = toolsets
        self.client_tools = client_tools
        self.by_name: dict[str, ServerTool] = {tool.name: tool for tool in tools}
        self.definitions = [function_tool(tool) for tool in tools]
        self.connections: list[mcp.McpConnection] = []
        self.runner = ToolRun(owner, call, self.by_name)
        self.history = to_model_history(list(call.request["messages"]))
        self.usage: JSON = {}
        self.headers: list[tuple[bytes, bytes]] = []

    async def connect(self, servers: list[JSON]) -> None:
        """Open every named MCP server and offer its enabled tools (a 400 if one fails)."""
        for server in servers:
            await mcp.check_server_url(server["url"], self.settings)
            connection = mcp.McpConnection(
                server["name"],
                server["url"],
                server.get("authorization_token"),
                guarded=mcp.address_guarded(self.settings),
            )
            try:
                await connection.open(self.settings.mcp_connect_timeout)
            except BaseException:
                await self.close()
                raise
            self.connections.append(connection)
            self.runner.connections[server["name"]] = connection
            for tool in mcp.enabled_tools(server, self.toolsets, connection.tools):
                entry = ServerTool(
                    MCP,
                    mcp_function_name(tool.server, tool.name),
                    server=tool.server,
                    tool=tool.name,
                )
                self.by_name[entry.name] = entry
                self.definitions.append(function_tool(entry, tool.description, tool.schema))

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()
        self.connections = []

    def _turn_call(self, stream: bool, first: bool) -> Call:
        request = {key: value for key, value in self.call.request.items() if key != "mcp_servers"}
        request["messages"] = self.history
        request["tools"] = [*self.client_tools, *self.definitions]
        choice = request.get("tool_choice")
        if not first and isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            # A forced call is the first turn's; forcing every turn would never end.
            request["tool_choice"] = {"type": "auto"}
        request["stream"] = stream
        return self.call.derive(request=request, stream=stream, deadline=self.deadline)

    def _out_of_time(self) -> bool:
        return time.monotonic() > self.deadline - _TURN_MARGIN_SECONDS

    def _final_usage(self) -> JSON:
        usage = dict(self.usage)
        usage["server_tool_use"] = server_tool_usage(self.runner.searches, self.runner.fetches)
        return usage

    def _finish_record(self, stop_reason: str | None) -> None:
        record = self.call.record
        record.stop_reason = stop_reason
        record.usage = {k: v for k, v in self.usage.items() if isinstance(v, int)}

    # --- a whole Message ------------------------------------------------------------

    async def complete(self) -> Reply:
        content: list[JSON] = []
        first: JSON | None = None
        rounds = 0
        try:
            while True:
                reply = await self.owner.inner.run(self._turn_call(False, first is None))
                message = reply.message or {}
                if first is None:
                    first, self.headers = message, reply.headers
                add_usage(self.usage, message.get("usage"))
                stop, done = await self._whole_turn(message, content, rounds)
                if done:
                    break
                rounds += 1
        finally:
            await self.close()
        self._finish_record(stop)
        result = {**first, "content": content, "stop_reason": stop, "usage": self._final_usage()}
        if stop != "stop_sequence":
            result["stop_sequence"] = None
        return Reply(self.headers, message=result)

    async def _whole_turn(
        self, message: JSON, content: list[JSON], rounds: int
    ) -> tuple[str, bool]:
        """Run one turn's server calls; (stop reason, whether the response is done)."""
        blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
        calls = [b for b in blocks if b.get("type") == "tool_use" and b.get("name") in self.by_name]
        others = [b for b in blocks if b not in calls]
        shown = [b for b in others if b.get("type") != "tool_use"]
        content.extend(self._cited(shown))
        if not calls:
            content.extend(b for b in others if b.get("type") == "tool_use")
            return str(message.get("stop_reason") or "end_turn"), True
        if rounds >= self.settings.server_tool_max_iterations or self._out_of_time():
            return "pause_turn", True
        uses, results = [], []
        for block in calls:
            held = HeldCall(str(block.get("id", "")), str(block["name"]))
            use, result, model_result = await self.runner.run(held, block.get("input") or {})
            content.extend([use, result])
            uses.append(_model_use(use, held))
            results.append(model_result)
        client_calls = [b for b in others if b.get("type") == "tool_use"]
        if client_calls:
            content.extend(client_calls)
            return "tool_use", True
        self.history = [
            *self.history,
            {"role": "assistant", "content": [*shown, *uses]},
            {"role": "user", "content": results},
        ]
        return "", False

    def _cited(self, blocks: list[JSON]) -> list[JSON]:
        if not self.runner.sources:
            return blocks
        out: list[JSON] = []
        for block in blocks:
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                out.extend(cite_blocks(block["text"], self.runner.sources))
            else:
                out.append(block)
        return out

    # --- a stream ---------------------------------------------------------------------

    async def stream(self) -> Reply:
        """The first turn is opened before the reply is returned, so a failure to reach
        the model is an HTTP error rather than an error event."""
        reply = await self.owner.inner.run(self._turn_call(True, True))
        self.headers = reply.headers
        return Reply(self.headers, events=self._events(reply))

    async def _events(self, reply: Reply) -> Events:
        index, rounds, stop = 0, 0, "end_turn"
        current: Reply | None = reply
        try:
            while current is not None:
                turn = TurnEvents(
                    frozenset(self.by_name), index, dict(self.runner.sources), rounds == 0
                )
                async for batch in _events_of(current):
                    out = turn.feed(batch)
                    if out:
                        yield out
                current = None
                add_usage(self.usage, turn.usage)
                index = turn.next_index
                if turn.failed:
                    return
                stop, go_on = await self._decide(turn, rounds)
                if not go_on:
                    break
                async for batch in self._run_calls(turn, index):
                    index += len([e for e in batch if e["type"] == "content_block_start"])
                    yield batch
                if turn.client_calls:
                    stop = "tool_use"
                    break
                rounds += 1
                try:
                    current = await self.owner.inner.run(self._turn_call(True, False))
                except Exception as error:  # ApiError: no answer for the next turn
                    yield [_error_event(error)]
                    return
            self._finish_record(stop)
            delta = {"stop_reason": stop, "stop_sequence": None}
            yield [
                {"type": "message_delta", "delta": delta, "usage": self._final_usage()},
                {"type": "message_stop"},
            ]
        finally:
            if current is not None and current.events is not None:
                await current.events.aclose()
            await self.close()

    async def _decide(self, turn: TurnEvents, rounds: int) -> tuple[str, bool]:
        if not turn.calls:
            return turn.stop_reason or "end_turn", False
        if rounds >= self.settings.server_tool_max_iterations or self._out_of_time():
            return "pause_turn", False
        return "", True

    async def _run_calls(self, turn: TurnEvents, index: int) -> Events:
        uses, results = [], []
        for held in turn.calls:
            use_id = new_tool_use_id(self.by_name[held.name].kind)
            arguments = held.arguments()
            use = server_tool_use_block(self.by_name[held.name], use_id, arguments)
            yield block_events(index, use)
            index += 1
            _, result, model_result = await self.runner.run(held, arguments, use_id)
            yield block_events(index, result)
            index += 1
            uses.append(_model_use(use, held))
            results.append(model_result)
        self.history = [
            *self.history,
            {"role": "assistant", "content": [*turn_text(turn), *uses]},
            {"role": "user", "content": results},
        ]


def turn_text(turn: TurnEvents) -> list[JSON]:
    """What the model said and thought before its calls, for its next turn (thinking with
    its signature, which reasoning models want back with their tool calls)."""
    return [b for b in turn.said if b["type"] != "text" or str(b.get("text", "")).strip()]


def _model_use(use: JSON, held: HeldCall) -> JSON:
    """The model-facing tool_use of a server tool call (the client's id, the model's name)."""
    return {"type": "tool_use", "id": use["id"], "name": held.name, "input": use["input"]}


async def _events_of(reply: Reply) -> Events:
    if reply.events is None:
        from anthropic_router.convert.stream import message_events

        yield message_events(reply.message or {})
        return
    events = reply.events
    try:
        async for batch in events:
            yield batch
    finally:
        await events.aclose()


def _error_event(error: Exception) -> JSON:
    error_type = getattr(error, "error_type", "api_error")
    message = getattr(error, "message", None) or "the next model turn failed"
    return {"type": "error", "error": {"type": error_type, "message": message}}


__all__ = ["ServerToolLoop"]
