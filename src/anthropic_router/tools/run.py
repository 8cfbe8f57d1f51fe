"""Running one server tool call: limits, the tool itself, the blocks for the client and the
result for the model, and its timing and outcome in the exchange record."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from anthropic_router.convert.server_tools import (
    MCP,
    WEB_FETCH,
    WEB_SEARCH,
    SearchResult,
    ServerTool,
    mcp_result_block,
    new_tool_use_id,
    pdf_document,
    search_results_text,
    server_tool_use_block,
    text_document,
    web_fetch_error_block,
    web_fetch_result_block,
    web_search_error_block,
    web_search_result_block,
)
from anthropic_router.convert.tool_stream import HeldCall
from anthropic_router.relay import Call
from anthropic_router.tools import fetch as web
from anthropic_router.tools.search import ToolFailure, search

if TYPE_CHECKING:
    from anthropic_router.tools.loop import ServerToolLoop
    from anthropic_router.tools.mcp import McpConnection

log = logging.getLogger("anthropic_router")

JSON = dict[str, Any]

_URL = re.compile(r"https?://[^\s\"'<>\\]+")
_CHARS_PER_TOKEN = 4  # for max_content_tokens, which Anthropic calls approximate


def normalize_url(url: str) -> str:
    return url.split("#", 1)[0].rstrip("/.,;:)]}")


def conversation_urls(messages: Any) -> set[str]:
    """Every URL that appears in the conversation: user text, tool results, earlier search
    and fetch results. Web fetch may fetch only these (Anthropic's rule)."""
    text = orjson.dumps(messages).decode()
    return {normalize_url(match) for match in _URL.findall(text)}


class ToolRun:
    """The tool runs of one client request: use counts, citation sources, known URLs."""

    def __init__(self, owner: ServerToolLoop, call: Call, by_name: dict[str, ServerTool]) -> None:
        self.owner, self.call, self.settings = owner, call, owner.settings
        self.by_name = by_name
        self.connections: dict[str, McpConnection] = {}
        self.searches = 0
        self.fetches = 0
        self.uses: Counter[str] = Counter()
        self.sources: dict[int, SearchResult] = {}
        self.known_urls = conversation_urls(call.request.get("messages"))

    async def run(
        self, held: HeldCall, arguments: JSON, use_id: str | None = None
    ) -> tuple[JSON, JSON, JSON]:
        """(the client's use block, its result block, the model's tool_result)."""
        tool = self.by_name[held.name]
        use_id = use_id or new_tool_use_id(tool.kind)
        use = server_tool_use_block(tool, use_id, arguments)
        started = time.monotonic()
        result, text, is_error, outcome = await self._bounded(tool, use_id, arguments)
        self._note(tool, outcome, started)
        model_result = {
            "type": "tool_result",
            "tool_use_id": use_id,
            "content": text or "(empty)",
            "is_error": is_error,
        }
        return use, result, model_result

    async def _bounded(
        self, tool: ServerTool, use_id: str, arguments: JSON
    ) -> tuple[JSON, str, bool, str]:
        limit = tool.config.get("max_uses")
        self.uses[tool.name] += 1
        if isinstance(limit, int) and self.uses[tool.name] > limit:
            return self._failed(tool, use_id, ToolFailure("max_uses_exceeded"))
        try:
            async with asyncio.timeout_at(self.owner_deadline()):
                if tool.kind == WEB_SEARCH:
                    return await self._search(tool, use_id, arguments)
                if tool.kind == WEB_FETCH:
                    return await self._fetch(tool, use_id, arguments)
                return await self._mcp(tool, use_id, arguments)
        except ToolFailure as failure:
            return self._failed(tool, use_id, failure)
        except TimeoutError:
            code = "url_not_accessible" if tool.kind == WEB_FETCH else "unavailable"
            return self._failed(tool, use_id, ToolFailure(code, "the request's deadline passed"))
        except Exception:  # a bug or an unexpected library error: the tool's error, not a 500
            fields = {"request_id": self.call.record.request_id, "tool": tool.name}
            log.exception("server tool failed", extra={"fields": fields})
            code = "url_not_accessible" if tool.kind == WEB_FETCH else "unavailable"
            return self._failed(tool, use_id, ToolFailure(code, "the tool failed unexpectedly"))

    def owner_deadline(self) -> float:
        deadline = self.call.deadline  # set by the loop
        return deadline if deadline is not None else time.monotonic() + 600

    def _failed(
        self, tool: ServerTool, use_id: str, failure: ToolFailure
    ) -> tuple[JSON, str, bool, str]:
        if tool.kind == WEB_SEARCH:
            block = web_search_error_block(use_id, failure.code)
        elif tool.kind == WEB_FETCH:
            block = web_fetch_error_block(use_id, failure.code)
        else:
            block = mcp_result_block(use_id, [failure.detail], True)
        return block, f"Error ({failure.code}): {failure.detail}", True, failure.code

    async def _search(
        self, tool: ServerTool, use_id: str, arguments: JSON
    ) -> tuple[JSON, str, bool, str]:
        query = arguments.get("query")
        if not isinstance(query, str):
            raise ToolFailure("invalid_tool_input", "query must be a string")
        session, _ = self.owner.sessions()
        results = await search(session, self.settings, query, tool.config, self.call.client_key)
        self.searches += 1
        first = len(self.sources) + 1
        for offset, result in enumerate(results):
            self.sources[first + offset] = result
            self.known_urls.add(normalize_url(result.url))
        text = search_results_text(results, first)
        return web_search_result_block(use_id, results), text, False, "ok"

    async def _fetch(
        self, tool: ServerTool, use_id: str, arguments: JSON
    ) -> tuple[JSON, str, bool, str]:
        url = arguments.get("url")
        if not isinstance(url, str):
            raise ToolFailure("invalid_tool_input", "url must be a string")
        settings = self.settings
        web.check_url(
            url, tool.config, settings.web_fetch_allow_private, settings.web_fetch_private_allowlist
        )
        if normalize_url(url) not in self.known_urls:
            raise ToolFailure(
                "url_not_in_prior_context",
                "only URLs from the user's messages or earlier results can be fetched",
            )
        _, session = self.owner.sessions()
        page = await web.fetch(session, self.settings, url, tool.config)
        self.fetches += 1
        self.known_urls.add(normalize_url(page.url))
        citations = bool((tool.config.get("citations") or {}).get("enabled"))
        limit = tool.config.get("max_content_tokens") or self.settings.web_fetch_max_content_tokens
        if page.pdf:
            document = pdf_document(page.pdf, page.title, citations)
            text = await asyncio.to_thread(web.pdf_text, page.pdf)
        else:
            text = page.text[: int(limit) * _CHARS_PER_TOKEN]
            document = text_document(text, page.title, citations)
        retrieved = datetime.now(UTC).isoformat(timespec="seconds")
        block = web_fetch_result_block(use_id, page.url, document, retrieved)
        model_text = f"URL: {page.url}\n" + (f"Title: {page.title}\n" if page.title else "")
        return block, model_text + "\n" + (text or "(no text)"), False, "ok"

    async def _mcp(
        self, tool: ServerTool, use_id: str, arguments: JSON
    ) -> tuple[JSON, str, bool, str]:
        connection = self.connections[tool.server]
        texts, is_error = await connection.call(
            tool.tool, arguments, self.settings.mcp_call_timeout
        )
        block = mcp_result_block(use_id, texts, is_error)
        return block, "\n".join(texts), is_error, "error" if is_error else "ok"

    def _note(self, tool: ServerTool, outcome: str, started: float) -> None:
        entry = {
            "tool": tool.kind if tool.kind != MCP else f"mcp:{tool.server}",
            "outcome": outcome,
            "ms": round((time.monotonic() - started) * 1000, 3),
        }
        self.call.record.server_tools.append(entry)
