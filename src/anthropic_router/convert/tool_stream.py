"""One model turn's events, rewritten into the one stream the client sees. Pure.

The server-tool loop runs several model turns for one client response. Each turn's stream
is fed here: its `message_start`, `message_delta` and `message_stop` are kept back (the
loop writes one of each for the whole response), block indices continue where the last
turn stopped, the model's calls of server tools are held until complete (the loop turns
them into `server_tool_use` / `mcp_tool_use` blocks and runs them), text is cut at citation
markers, and everything else passes through as it comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from anthropic_router.convert.citations import CitationSplitter
from anthropic_router.convert.server_tools import SearchResult

JSON = dict[str, Any]


@dataclass(slots=True)
class HeldCall:
    """A call of a server tool by the model, collected from its stream."""

    id: str
    name: str
    partial_json: str = ""

    def arguments(self) -> JSON:
        try:
            value = orjson.loads(self.partial_json) if self.partial_json.strip() else {}
        except orjson.JSONDecodeError:
            return {"_unparsed": self.partial_json}
        return value if isinstance(value, dict) else {"_unparsed": self.partial_json}


@dataclass
class TurnEvents:
    """`feed(events) -> events` for one turn. `next_index` is the client-stream index the
    turn's first block gets; read it back after the turn for the next one."""

    server_names: frozenset[str]
    next_index: int
    sources: dict[int, SearchResult] = field(default_factory=dict)
    first_turn: bool = False
    message_start: JSON | None = None
    usage: JSON = field(default_factory=dict)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    calls: list[HeldCall] = field(default_factory=list)
    client_calls: int = 0
    failed: bool = False
    # What the model said and thought (signatures kept), for its next turn's history.
    said: list[JSON] = field(default_factory=list)
    # The upstream index of the open block -> how it is relayed.
    _mode: str = ""
    _held: HeldCall | None = None
    _splitter: CitationSplitter | None = None
    _open_index: int | None = None  # our index of the open text/other block

    def feed(self, events: list[JSON]) -> list[JSON]:
        out: list[JSON] = []
        for event in events:
            self._feed(event, out)
        return out

    def _feed(self, event: JSON, out: list[JSON]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.usage.update(message.get("usage") or {})
            if self.first_turn:
                self.message_start = event
                out.append(event)
        elif kind == "content_block_start":
            self._start(event.get("content_block") or {}, out)
        elif kind == "content_block_delta":
            self._delta(event.get("delta") or {}, out)
        elif kind == "content_block_stop":
            self._stop(out)
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            self.stop_sequence = delta.get("stop_sequence")
            self.usage.update(event.get("usage") or {})
        elif kind == "error":
            self.failed = True
            out.append(event)
        # ping and message_stop: the loop writes its own

    def _start(self, block: JSON, out: list[JSON]) -> None:
        kind = block.get("type")
        if kind in ("text", "thinking", "redacted_thinking"):
            self.said.append(dict(block))
        if kind == "tool_use" and block.get("name") in self.server_names:
            self._mode = "held"
            self._held = HeldCall(str(block.get("id", "")), str(block["name"]))
            return
        if kind == "tool_use":
            self.client_calls += 1
        if kind == "text" and self.sources:
            self._mode = "cited"
            self._splitter = CitationSplitter(self.sources)
            self._open_index = None
            return
        self._mode = "plain"
        self._open(block, out)

    def _open(self, block: JSON, out: list[JSON]) -> None:
        self._open_index = self.next_index
        self.next_index += 1
        out.append(
            {"type": "content_block_start", "index": self._open_index, "content_block": block}
        )

    def _close(self, out: list[JSON]) -> None:
        if self._open_index is not None:
            out.append({"type": "content_block_stop", "index": self._open_index})
            self._open_index = None

    def _delta(self, delta: JSON, out: list[JSON]) -> None:
        self._note(delta)
        if self._mode == "held" and self._held is not None:
            self._held.partial_json += str(delta.get("partial_json", ""))
        elif self._mode == "cited" and self._splitter is not None:
            if delta.get("type") == "text_delta":
                self._cited(self._splitter.feed(str(delta.get("text", ""))), out)
        elif self._open_index is not None:
            out.append({"type": "content_block_delta", "index": self._open_index, "delta": delta})

    def _note(self, delta: JSON) -> None:
        if not self.said or self._mode == "held":
            return
        block, kind = self.said[-1], delta.get("type")
        if kind == "text_delta" and block["type"] == "text":
            block["text"] = block.get("text", "") + str(delta.get("text", ""))
        elif kind == "thinking_delta" and block["type"] == "thinking":
            block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
        elif kind == "signature_delta" and block["type"] == "thinking":
            block["signature"] = str(delta.get("signature", ""))

    def _cited(self, pieces: list[tuple[str, Any]], out: list[JSON]) -> None:
        for kind, value in pieces:
            if self._open_index is None:
                self._open({"type": "text", "text": ""}, out)
            index = self._open_index
            if kind == "text":
                delta = {"type": "text_delta", "text": value}
                out.append({"type": "content_block_delta", "index": index, "delta": delta})
                continue
            for citation in value:
                delta = {"type": "citations_delta", "citation": citation}
                out.append({"type": "content_block_delta", "index": index, "delta": delta})
            self._close(out)

    def _stop(self, out: list[JSON]) -> None:
        if self._mode == "held" and self._held is not None:
            self.calls.append(self._held)
            self._held = None
        elif self._mode == "cited" and self._splitter is not None:
            rest = self._splitter.finish()
            if rest:
                self._cited(rest, out)
            self._splitter = None
            self._close(out)
        else:
            self._close(out)
        self._mode = ""


def block_events(index: int, block: JSON) -> list[JSON]:
    """A whole block as events: tool-use blocks stream their input as one JSON delta,
    result blocks arrive whole in `content_block_start` (as Anthropic sends them)."""
    if block["type"] in ("server_tool_use", "mcp_tool_use"):
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
        return [
            {"type": "content_block_start", "index": index, "content_block": start},
            {"type": "content_block_delta", "index": index, "delta": delta},
            {"type": "content_block_stop", "index": index},
        ]
    return [
        {"type": "content_block_start", "index": index, "content_block": block},
        {"type": "content_block_stop", "index": index},
    ]
