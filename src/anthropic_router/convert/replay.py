"""A complete Message as the stream that would have carried it, and the reverse: the events
of a stream accumulated into the Message (what the SDK's accumulator builds).

The response cache uses both: an answer fetched without streaming can serve a stream
request, and a stream recorded as it passed can serve a non-stream request. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

JSON = dict[str, Any]

# The empty form each block kind opens with in `content_block_start` (protocol.md 2.4).
_EMPTY_STARTS: dict[str, JSON] = {
    "text": {"type": "text", "text": ""},
    "thinking": {"type": "thinking", "thinking": "", "signature": ""},
}


def replay_events(message: JSON) -> list[JSON]:
    """The event sequence of `message`: message_start (usage with output_tokens 0), every
    block with its real structure (text and its citations, thinking and its signature,
    tool_use input as `input_json_delta`), then message_delta and message_stop."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 0}
    events: list[JSON] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        events.append(
            {"type": "content_block_start", "index": index, "content_block": _start(block)}
        )
        for delta in _deltas(block):
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    events.append({"type": "message_delta", "delta": delta, "usage": message["usage"]})
    events.append({"type": "message_stop"})
    return events


def _start(block: JSON) -> JSON:
    kind = block.get("type")
    if kind in _EMPTY_STARTS:
        return dict(_EMPTY_STARTS[kind])
    if kind in ("tool_use", "server_tool_use"):
        return {**block, "input": {}}
    return block  # redacted_thinking and result blocks arrive whole in their start


def _deltas(block: JSON) -> list[JSON]:
    kind = block.get("type")
    if kind == "text":
        deltas: list[JSON] = [{"type": "text_delta", "text": block["text"]}]
        for citation in block.get("citations") or ():
            deltas.append({"type": "citations_delta", "citation": citation})
        return deltas
    if kind == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return deltas
    if kind in ("tool_use", "server_tool_use"):
        partial = orjson.dumps(block.get("input") or {}).decode()
        return [{"type": "input_json_delta", "partial_json": partial}]
    return []


# The delta that grows each kind of block, and the field it grows (None: tool input JSON).
_GROWS: dict[str, tuple[str, str | None]] = {
    "text": ("text_delta", "text"),
    "thinking": ("thinking_delta", "thinking"),
    "tool_use": ("input_json_delta", None),
    "server_tool_use": ("input_json_delta", None),
}


class MessageAccumulator:
    """Feeds on a stream's events and builds the Message they describe.

    `message` is the Message once the stream is complete (message_stop seen, no error, every
    delta understood); None otherwise, so a cut, failed or unfamiliar stream is never taken
    for a whole answer.

    Runs on every event of every recorded stream, so the common event (a text, thinking or
    tool-input delta of the open block) takes one test and one list append; the pieces are
    joined when the block stops (or when the Message is asked for)."""

    __slots__ = (
        "_blocks",
        "_delta_seen",
        "_field",
        "_grows",
        "_message",
        "_open",
        "_partial",
        "_parts",
        "_stopped",
        "_usable",
    )

    def __init__(self) -> None:
        self._message: JSON | None = None
        self._blocks: list[JSON] = []
        self._partial: dict[int, list[str]] = {}  # tool input of blocks no longer open
        self._delta_seen = False
        self._stopped = False
        self._usable = True
        self._open = -1  # the open block's index, and what its deltas grow
        self._grows = ""
        self._field: str | None = None
        self._parts: list[str] = []

    @property
    def message(self) -> JSON | None:
        if not (self._stopped and self._usable and self._message is not None):
            return None
        try:
            self._merge_text()
        except TypeError:  # a delta whose text was not a string
            self._usable = False
            return None
        return {**self._message, "content": self._blocks}

    def feed(self, events: list[JSON]) -> None:
        if not self._usable:
            return
        parts = self._parts
        grows, field, open_ = self._grows, self._field or "partial_json", self._open
        try:
            for event in events:
                if event["type"] == "content_block_delta" and event["index"] == open_:
                    delta = event["delta"]
                    if delta["type"] == grows:
                        parts.append(delta[field])  # a non-string fails the join
                        continue
                self._event(event)
                if not self._usable:
                    return
                grows, field, open_ = self._grows, self._field or "partial_json", self._open
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            self._usable = False

    def _event(self, event: JSON) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self._message = {**event["message"], "content": []}
        elif kind == "content_block_start":
            self._block_start(event)
        elif kind == "content_block_delta":
            self._delta(event["index"], event["delta"])
        elif kind == "content_block_stop":
            self._block_stop(event["index"])
        elif kind == "message_delta":
            self._message_delta(event)
        elif kind == "message_stop":
            self._stopped = self._delta_seen
        elif kind != "ping":
            self._usable = False  # `error`, or an event this code does not know

    def _block_start(self, event: JSON) -> None:
        if self._message is None or event["index"] != len(self._blocks):
            raise ValueError("block index out of order")
        self._close_open()
        block = dict(event["content_block"])
        self._blocks.append(block)
        self._open = event["index"]
        self._grows, self._field = _GROWS.get(block.get("type"), ("", None))  # type: ignore[arg-type]

    def _delta(self, index: int, delta: JSON) -> None:
        """A delta off the fast path: citations, signatures, or one for a closed block."""
        block = self._blocks[index]
        kind = delta["type"]
        if kind == "text_delta":
            block["text"] += delta["text"]
        elif kind == "citations_delta":
            block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        elif kind == "thinking_delta":
            block["thinking"] += delta["thinking"]
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "input_json_delta":
            self._partial.setdefault(index, []).append(delta["partial_json"])
        else:
            raise ValueError(f"unknown delta {kind}")

    def _merge_text(self) -> None:
        """The open block's text or thinking pieces added to it (tool input waits for stop)."""
        if self._parts and self._field is not None:
            block = self._blocks[self._open]
            block[self._field] += "".join(self._parts)
            self._parts.clear()

    def _close_open(self) -> None:
        if self._open < 0:
            return
        self._merge_text()
        if self._parts:  # tool input of a block that was never stopped: kept for its stop
            self._partial.setdefault(self._open, []).extend(self._parts)
            self._parts.clear()
        self._open, self._grows, self._field = -1, "", None

    def _block_stop(self, index: int) -> None:
        block = self._blocks[index]
        if index == self._open:
            self._merge_text()
            pieces = self._parts[:]  # the list itself stays: `feed` holds it
            self._parts.clear()
            self._open, self._grows, self._field = -1, "", None
        else:
            pieces = []
        pieces = [*self._partial.pop(index, ()), *pieces]
        if block.get("type") in ("tool_use", "server_tool_use"):
            text = "".join(pieces)
            block["input"] = orjson.loads(text) if text.strip() else {}

    def _message_delta(self, event: JSON) -> None:
        message = self._message
        if message is None:
            raise ValueError("message_delta before message_start")
        delta = event.get("delta") or {}
        self._delta_seen = True
        message["stop_reason"] = delta.get("stop_reason")
        message["stop_sequence"] = delta.get("stop_sequence")
        usage = event.get("usage")
        if isinstance(usage, dict):
            counts = {name: value for name, value in usage.items() if value is not None}
            message["usage"] = {**(message.get("usage") or {}), **counts}
