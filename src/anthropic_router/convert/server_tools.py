"""Server tools as the client sees them (Anthropic's blocks) and as the model sees them
(plain function tools and tool results). Pure: no I/O.

The router runs web search, web fetch and MCP tools itself for upstreams that have none.
The model is offered ordinary functions; its calls become `server_tool_use` /
`mcp_tool_use` blocks for the client, the results `web_search_tool_result`,
`web_fetch_tool_result` and `mcp_tool_result` blocks. History coming back from the client
is turned the other way, into tool_use / tool_result pairs the model understands.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = dict[str, Any]

WEB_SEARCH, WEB_FETCH, MCP = "web_search", "web_fetch", "mcp"

SEARCH_DESCRIPTION = (
    "Search the web for current information. Returns numbered results with title, URL and "
    "an excerpt. Cite a result by writing its marker, such as [1], right after the sentence "
    "that uses it."
)
FETCH_DESCRIPTION = (
    "Fetch the full text of a web page or PDF by URL. Only URLs given by the user or found "
    "in earlier search or fetch results can be fetched."
)
_QUERY_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "The search query"}},
    "required": ["query"],
}
_URL_SCHEMA = {
    "type": "object",
    "properties": {"url": {"type": "string", "description": "The URL to fetch"}},
    "required": ["url"],
}

# Result block type by server tool name (history expansion).
RESULT_TYPES = {"web_search_tool_result": WEB_SEARCH, "web_fetch_tool_result": WEB_FETCH}


@dataclass(slots=True)
class ServerTool:
    """One server tool the client asked for: its kind, the name the model calls it by,
    and the client's configuration (max_uses, domains, ...)."""

    kind: str
    name: str
    config: JSON = field(default_factory=dict)
    # MCP only: which server and which of its tools.
    server: str = ""
    tool: str = ""


def server_tool_kind(tool: Any) -> str | None:
    """`web_search` / `web_fetch` for Anthropic's dated server tool types, `mcp` for an
    `mcp_toolset`, None for client tools (custom tools and client-run Anthropic tools)."""
    if not isinstance(tool, dict):
        return None
    kind = tool.get("type")
    if not isinstance(kind, str):
        return None
    if kind.startswith("web_search_"):
        return WEB_SEARCH
    if kind.startswith("web_fetch_"):
        return WEB_FETCH
    if kind == "mcp_toolset":
        return MCP
    return None


def split_tools(tools: Any) -> tuple[list[ServerTool], list[JSON], list[JSON]]:
    """(web search/fetch tools, mcp_toolset entries, client tools) of a request's `tools`."""
    server: list[ServerTool] = []
    toolsets: list[JSON] = []
    client: list[JSON] = []
    for tool in tools if isinstance(tools, list) else []:
        kind = server_tool_kind(tool)
        if kind == MCP:
            toolsets.append(tool)
        elif kind is not None:
            server.append(ServerTool(kind, str(tool.get("name") or kind), dict(tool)))
        else:
            client.append(tool)
    return server, toolsets, client


def function_tool(tool: ServerTool, description: str = "", schema: JSON | None = None) -> JSON:
    """The plain tool definition the model is offered for a server tool."""
    if tool.kind == WEB_SEARCH:
        return {"name": tool.name, "description": SEARCH_DESCRIPTION, "input_schema": _QUERY_SCHEMA}
    if tool.kind == WEB_FETCH:
        return {"name": tool.name, "description": FETCH_DESCRIPTION, "input_schema": _URL_SCHEMA}
    return {
        "name": tool.name,
        "description": description,
        "input_schema": schema or {"type": "object", "properties": {}},
    }


def mcp_function_name(server: str, tool: str) -> str:
    """The model-facing name of an MCP tool; unique across servers."""
    return f"mcp__{server}__{tool}"


def new_tool_use_id(kind: str) -> str:
    prefix = "mcptoolu_" if kind == MCP else "srvtoolu_"
    return prefix + secrets.token_hex(12)


# --- client-facing blocks -------------------------------------------------------------


def server_tool_use_block(tool: ServerTool, use_id: str, arguments: JSON) -> JSON:
    if tool.kind == MCP:
        return {
            "type": "mcp_tool_use",
            "id": use_id,
            "name": tool.tool,
            "server_name": tool.server,
            "input": arguments,
        }
    return {"type": "server_tool_use", "id": use_id, "name": tool.kind, "input": arguments}


@dataclass(slots=True)
class SearchResult:
    url: str
    title: str
    snippet: str = ""
    page_age: str | None = None


def seal(data: JSON) -> str:
    """An opaque string for `encrypted_content` / `encrypted_index`. Clients must send it
    back unchanged; the router reads it again when the result returns in the history."""
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def unseal(text: Any) -> JSON:
    if not isinstance(text, str):
        return {}
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}  # a result sealed by someone else (Anthropic itself): no text to recover
    return data if isinstance(data, dict) else {}


def web_search_result_block(use_id: str, results: list[SearchResult]) -> JSON:
    content = [
        {
            "type": "web_search_result",
            "url": result.url,
            "title": result.title,
            "encrypted_content": seal({"u": result.url, "t": result.title, "s": result.snippet}),
            "page_age": result.page_age,
        }
        for result in results
    ]
    return {"type": "web_search_tool_result", "tool_use_id": use_id, "content": content}


def web_search_error_block(use_id: str, code: str) -> JSON:
    return {
        "type": "web_search_tool_result",
        "tool_use_id": use_id,
        "content": {"type": "web_search_tool_result_error", "error_code": code},
    }


def web_fetch_result_block(
    use_id: str, url: str, document: JSON, retrieved_at: str | None = None
) -> JSON:
    content: JSON = {"type": "web_fetch_result", "url": url, "content": document}
    if retrieved_at:
        content["retrieved_at"] = retrieved_at
    return {"type": "web_fetch_tool_result", "tool_use_id": use_id, "content": content}


def web_fetch_error_block(use_id: str, code: str) -> JSON:
    return {
        "type": "web_fetch_tool_result",
        "tool_use_id": use_id,
        "content": {"type": "web_fetch_tool_result_error", "error_code": code},
    }


def text_document(text: str, title: str | None, citations: bool) -> JSON:
    document: JSON = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": text},
    }
    if title:
        document["title"] = title
    if citations:
        document["citations"] = {"enabled": True}
    return document


def pdf_document(data: bytes, title: str | None, citations: bool) -> JSON:
    document: JSON = {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(data).decode(),
        },
    }
    if title:
        document["title"] = title
    if citations:
        document["citations"] = {"enabled": True}
    return document


def mcp_result_block(use_id: str, texts: list[str], is_error: bool) -> JSON:
    return {
        "type": "mcp_tool_result",
        "tool_use_id": use_id,
        "is_error": is_error,
        "content": [{"type": "text", "text": text} for text in texts],
    }


# --- what the model reads -------------------------------------------------------------


def search_results_text(results: list[SearchResult], first_marker: int) -> str:
    """Numbered results for the model; markers continue across searches so [n] is unique
    within one response."""
    if not results:
        return "No results."
    lines = []
    for offset, result in enumerate(results):
        lines.append(f"[{first_marker + offset}] {result.title}\nURL: {result.url}")
        if result.page_age:
            lines.append(f"Published: {result.page_age}")
        if result.snippet:
            lines.append(result.snippet)
        lines.append("")
    return "\n".join(lines).strip()


def result_text(block: JSON) -> tuple[str, bool]:
    """The model-facing text of a result block (ours, or one returned in the history), and
    whether it is an error."""
    kind = block.get("type")
    content = block.get("content")
    if kind == "web_search_tool_result":
        if isinstance(content, dict):
            return f"Search error: {content.get('error_code', 'unavailable')}", True
        results = []
        for item in content if isinstance(content, list) else []:
            if isinstance(item, dict):
                sealed = unseal(item.get("encrypted_content"))
                url, title = str(item.get("url", "")), str(item.get("title", ""))
                results.append(SearchResult(url, title, str(sealed.get("s", "")), None))
        return search_results_text(results, 1), False
    if kind == "web_fetch_tool_result":
        if isinstance(content, dict) and content.get("type") == "web_fetch_tool_result_error":
            return f"Fetch error: {content.get('error_code', 'unavailable')}", True
        return _fetched_text(content), False
    if kind == "mcp_tool_result":
        return _mcp_text(content), bool(block.get("is_error"))
    return "", False


def _fetched_text(content: Any) -> str:
    if not isinstance(content, dict):
        return ""
    document: JSON = content.get("content") or {}
    source: JSON = document.get("source") or {} if isinstance(document, dict) else {}
    if not isinstance(document, dict) or not isinstance(source, dict):
        return ""
    header = f"URL: {content.get('url', '')}"
    if document.get("title"):
        header += f"\nTitle: {document['title']}"
    if source.get("type") == "text":
        return f"{header}\n\n{source.get('data', '')}"
    return f"{header}\n\n(a {source.get('media_type', 'binary')} document)"


def _mcp_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = [str(item.get("text", "")) for item in content or [] if isinstance(item, dict)]
    return "\n".join(texts)


def to_model_history(messages: list[JSON]) -> list[JSON]:
    """The client's history with server tool blocks turned into tool_use/tool_result pairs.

    Anthropic keeps a server tool's use and result in one assistant message; a model behind
    an OpenAI-style API needs the call in an assistant message and its result in the next
    user message, so such an assistant message is split at each result."""
    out: list[JSON] = []
    for message in messages:
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            out.append(message)
            continue
        out.extend(_split_assistant(content))
    return out


def _split_assistant(content: list[Any]) -> list[JSON]:
    out: list[JSON] = []
    current: list[JSON] = []
    results: list[JSON] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("server_tool_use", "mcp_tool_use"):
            if results:  # a use after results: the results' user turn comes first
                out += _flush(current, results)
                current, results = [], []
            name = block.get("name", "")
            if kind == "mcp_tool_use":
                name = mcp_function_name(str(block.get("server_name", "")), str(name))
            use = {"type": "tool_use", "id": block.get("id"), "name": name}
            current.append({**use, "input": block.get("input") or {}})
        elif kind in ("web_search_tool_result", "web_fetch_tool_result", "mcp_tool_result"):
            text, is_error = result_text(block)
            result = {"type": "tool_result", "tool_use_id": block.get("tool_use_id")}
            results.append({**result, "content": text or "(empty)", "is_error": is_error})
        else:
            if results:
                out += _flush(current, results)
                current, results = [], []
            current.append(_without_citations(block))
    out += _flush(current, results)
    return out


def _flush(assistant: list[JSON], results: list[JSON]) -> list[JSON]:
    out = []
    if assistant:
        out.append({"role": "assistant", "content": assistant})
    if results:
        out.append({"role": "user", "content": results})
    return out


def _without_citations(block: JSON) -> JSON:
    if block.get("type") == "text" and "citations" in block:
        return {key: value for key, value in block.items() if key != "citations"}
    return block


def server_tool_usage(searches: int, fetches: int) -> JSON:
    return {"web_search_requests": searches, "web_fetch_requests": fetches}


def add_usage(total: JSON, usage: Any) -> None:
    """Add one model turn's token counts to the running total of a looped response."""
    if not isinstance(usage, dict):
        return
    for key, value in usage.items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
