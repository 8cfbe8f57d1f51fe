"""OpenAI chat-completion chunks -> Anthropic stream events, incrementally.

`StreamTranslator.feed(chunk)` returns the events a chunk produces, `finish()` the closing
ones; like httpx's decoders it holds just enough state to keep the Anthropic grammar:
`message_start` first (with a usage object), block indices dense from 0, one open block at a
time, `message_delta` held until usage has arrived, and nothing after `message_stop` or an
`error` event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from anthropic_router.convert.common import (
    anthropic_usage,
    content_list_parts,
    has_usage,
    matched_stop_sequence,
    reasoning_parts,
    stop_reason_for,
    upstream_error,
)
from anthropic_router.convert.ids import new_message_id, new_tool_id, to_anthropic_tool_id
from anthropic_router.convert.repair import ToolRepair
from anthropic_router.convert.text_calls import Piece, TextCallScanner
from anthropic_router.errors import ApiError

JSON = dict[str, Any]


@dataclass(slots=True)
class _ToolSlot:
    index: int  # the Anthropic block index
    upstream_id: str | None
    saw_arguments: bool = False
    held_empty_object: bool = False
    name: str = ""
    buffer: list[str] = field(default_factory=list)  # arguments held for repair
    # A call that began while another tool block was open: its block waits, with all its
    # fragments, until the open one is closed (upstreams may interleave 0, 1, 0, 1).
    pending: list[str] | None = None
    block: JSON | None = None


@dataclass(slots=True)
class _Open:
    kind: str  # "text" | "thinking" | "tool_use"
    index: int
    key: Any = None  # reasoning_details index or upstream tool-call index
    signed: bool = False  # a thinking block that got its signature takes no more text
    slot: _ToolSlot | None = None  # a tool block's call, whose held arguments close with it


@dataclass(slots=True)
class StreamTranslator:
    model: str
    message_id: str = field(default_factory=new_message_id)
    tool_names: dict[str, str] = field(default_factory=dict)
    stop_sequences: list[str] = field(default_factory=list)
    # For `message_start`, which clients (Claude Code's context meter) read before the end:
    # an estimate, since OpenAI-style upstreams report prompt tokens only with the last chunk.
    input_tokens: int = 0
    done: bool = False
    failed: ApiError | None = None
    dropped: list[str] = field(default_factory=list)
    usage: JSON | None = None
    stop_reason: str | None = None
    # Called with the streamed output text when the upstream sent no usage (llama-cpp-python
    # never does): returns OpenAI-style usage, and `usage_estimated` says so. Injected so
    # conversion stays pure (the relay passes tokens.estimate_usage bound to the request).
    estimate: Callable[[str], JSON] | None = None
    usage_estimated: bool = False
    _output: list[str] = field(default_factory=list)
    # Tool-call repair (TOOL_CALL_REPAIR): arguments are held until their block closes and
    # repaired there; text is scanned for calls written as text. None: relayed as they come.
    repair: ToolRepair | None = None
    _scanner: TextCallScanner | None = None
    _text_calls: int = 0
    _started: bool = False
    _open: _Open | None = None
    _next_index: int = 0
    _tools: dict[Any, _ToolSlot] = field(default_factory=dict)
    _tool_ids: set[str] = field(default_factory=set)
    _waiting: list[_ToolSlot] = field(default_factory=list)
    _finish_reason: str | None = None
    _finished_choice: bool = False
    _stop_sequence: str | None = None

    def start(self) -> list[JSON]:
        """`message_start` (estimated input tokens; the real counts arrive with the last chunk,
        in `message_delta`) and a ping."""
        if self._started:
            return []
        self._started = True
        message: JSON = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.input_tokens,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def feed_data(self, payload: bytes) -> list[JSON]:
        """One SSE `data:` payload: a JSON chunk or `[DONE]`."""
        if payload[:1] != b"{":  # not the usual chunk: `[DONE]`, blank, or malformed
            stripped = payload.strip()
            if stripped == b"[DONE]":
                return self.finish()
            if not stripped:
                return []
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return self.fail(ApiError("api_error", "upstream sent a malformed stream chunk"))
        if not isinstance(chunk, dict):
            return self.fail(ApiError("api_error", "upstream sent a malformed stream chunk"))
        return self.feed(chunk)

    def feed(self, chunk: JSON) -> list[JSON]:
        if self.done:
            return []
        events = self.start()
        try:
            self._feed(chunk, events)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError):
            # A chunk of an unexpected shape (`"function": 5`): keep what it produced, then
            # end with an error event rather than a cut stream.
            error = ApiError("api_error", "upstream sent a stream chunk of unexpected shape")
            events.extend(self.fail(error))
        return events

    def _feed(self, chunk: JSON, events: list[JSON]) -> None:
        if chunk.get("error"):
            events.extend(self.fail(upstream_error(chunk["error"])))
            return
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage  # cumulative where sent on every chunk: keep the last
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        finish_reason = choice.get("finish_reason")
        if finish_reason == "error":
            events.extend(self.fail(upstream_error(choice.get("error") or "generation failed")))
            return
        if not self._finished_choice:
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, events)
            if finish_reason:
                self._finished_choice = True
                self._finish_reason = finish_reason
                self._stop_sequence = matched_stop_sequence(choice, self.stop_sequences)
                self._flush_text(events)
                self._close(events)
                self._release_waiting(events)

    def finish(self) -> list[JSON]:
        """End of the upstream stream: close the open block, then message_delta and stop."""
        if self.done:
            return []
        events = self.start()
        self._flush_text(events)
        self._close(events)
        self._release_waiting(events)
        made_calls = bool(self._tools) or self._text_calls > 0
        if self._stop_sequence:
            self.stop_reason = "stop_sequence"
        else:
            self.stop_reason = stop_reason_for(self._finish_reason, made_tool_calls=made_calls)
        if self.estimate is not None and not has_usage(self.usage):
            self.usage = self.estimate("".join(self._output))
            self.usage_estimated = True
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": self._stop_sequence},
                "usage": anthropic_usage(self.usage),
            }
        )
        events.append({"type": "message_stop"})
        self.done = True
        return events

    def end_of_input(self) -> list[JSON]:
        """The upstream closed the connection. Without a finish reason the answer is cut
        short, and passing it off as complete would lose data silently: report an error."""
        if self.done:
            return []
        if self._finished_choice:
            return self.finish()
        return self.fail(
            ApiError("api_error", "upstream stream ended before the answer was complete")
        )

    def fail(self, error: ApiError) -> list[JSON]:
        """Close the open block and emit an `error` event; no `message_stop` follows."""
        if self.done:
            return []
        events = self.start()
        self._flush_text(events)
        self._close(events)
        events.append(
            {"type": "error", "error": {"type": error.error_type, "message": error.message}}
        )
        self.failed = error
        self.done = True
        return events

    # -- deltas ---------------------------------------------------------------------------

    def _delta(self, delta: JSON, events: list[JSON]) -> None:
        if "reasoning" in delta or "reasoning_details" in delta or "reasoning_content" in delta:
            for part in reasoning_parts(delta):
                self._reasoning(part, events)
        content = delta.get("content")
        if isinstance(content, str):
            if content:
                self._text(content, events)
        elif isinstance(content, list):
            self._content_list(content, events)
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            for position, call in enumerate(tool_calls):
                if isinstance(call, dict):
                    self._tool_call(position, call, events)

    def _text(self, text: str, events: list[JSON]) -> None:
        if self.repair is None:
            self._emit_text(text, events)
            return
        if self._scanner is None:
            self._scanner = self.repair.scanner()
        self._pieces(self._scanner.feed(text), events)

    def _flush_text(self, events: list[JSON]) -> None:
        """Text held by the call scanner goes out before anything that follows it."""
        if self._scanner is not None:
            self._pieces(self._scanner.finish(), events)

    def _pieces(self, pieces: list[Piece], events: list[JSON]) -> None:
        for piece in pieces:
            if piece[0] == "text":
                self._emit_text(piece[1], events)
            else:
                self._text_call(piece[1], piece[2], piece[3], events)

    def _text_call(self, name: str, tool_input: JSON, fmt: str, events: list[JSON]) -> None:
        """A call the model wrote as text, as the tool_use block it meant."""
        assert self.repair is not None
        name = self.tool_names.get(name) or self.repair.client_name(name)
        self.repair.note(f"text_tool_call:{fmt}")
        self.repair.check(name, tool_input)
        block = {"type": "tool_use", "id": new_tool_id(), "name": name, "input": {}}
        self._begin("tool_use", block, None, events)
        self._json_delta(self._next_index - 1, orjson.dumps(tool_input).decode(), events)
        self._close(events)
        self._text_calls += 1

    def _emit_text(self, text: str, events: list[JSON]) -> None:
        opened = self._open
        if opened is None or opened.kind != "text":
            self._begin("text", {"type": "text", "text": ""}, None, events)
            opened = self._open
        assert opened is not None
        self._output.append(text)
        delta = {"type": "text_delta", "text": text}
        events.append({"type": "content_block_delta", "index": opened.index, "delta": delta})

    def _reasoning(self, part: JSON, events: list[JSON]) -> None:
        self._flush_text(events)
        if part["type"] == "redacted_thinking":
            self._close(events)
            self._begin("redacted_thinking", part, None, events)
            self._close(events)
            return
        opened = self._thinking_block(part, events)
        if part["thinking"]:
            self._output.append(part["thinking"])
            delta = {"type": "thinking_delta", "thinking": part["thinking"]}
            events.append({"type": "content_block_delta", "index": opened.index, "delta": delta})
        if part["signature"]:
            opened.signed = True
            delta = {"type": "signature_delta", "signature": part["signature"]}
            events.append({"type": "content_block_delta", "index": opened.index, "delta": delta})

    def _thinking_block(self, part: JSON, events: list[JSON]) -> _Open:
        """The open thinking block `part` continues, or a new one: after another kind of
        block, on a new reasoning_details index, or for text that follows a signature."""
        key = part.get("index", 0)
        opened = self._open
        if (
            opened is None
            or opened.kind != "thinking"
            or opened.key != key
            or (opened.signed and part["thinking"])
        ):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            self._begin("thinking", block, key, events)
            opened = self._open
        assert opened is not None
        return opened

    def _content_list(self, items: list[Any], events: list[JSON]) -> None:
        """Databricks streams content as a list of `reasoning` / `text` items: summary text
        and signatures extend the open thinking block, text items the open text block."""
        for part in content_list_parts(items):
            if part["type"] == "text":
                self._text(part["text"], events)
            else:
                self._reasoning(part, events)

    def _tool_call(self, position: int, call: JSON, events: list[JSON]) -> None:
        self._flush_text(events)
        key = call.get("index", position)
        slot = self._tools.get(key)
        call_id = call.get("id")
        if slot is None or (call_id and slot.upstream_id and call_id != slot.upstream_id):
            slot = self._open_tool(key, call, events)
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        if not isinstance(arguments, str) or not arguments:
            return
        self._tool_arguments(slot, arguments, events)

    def _open_tool(self, key: Any, call: JSON, events: list[JSON]) -> _ToolSlot:
        tool_id = to_anthropic_tool_id(call.get("id"))
        while tool_id in self._tool_ids:  # some providers repeat ids across parallel calls
            tool_id += "_"
        self._tool_ids.add(tool_id)
        name = str((call.get("function") or {}).get("name") or "")
        name = self.tool_names.get(name, name)
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        opened = self._open
        if self._waiting or (opened is not None and opened.kind == "tool_use"):
            # Another call is streaming: this one may still interleave with it, so its block
            # waits (index given when it is emitted) instead of closing the open one.
            slot = _ToolSlot(
                index=-1, upstream_id=call.get("id"), name=name, pending=[], block=block
            )
            self._waiting.append(slot)
        else:
            self._begin("tool_use", block, key, events)
            slot = _ToolSlot(index=self._next_index - 1, upstream_id=call.get("id"), name=name)
            self._hold(slot)
        self._tools[key] = slot
        return slot

    def _tool_arguments(self, slot: _ToolSlot, arguments: str, events: list[JSON]) -> None:
        if slot.pending is not None:
            slot.pending.append(arguments)
            return
        opened = self._open
        if opened is None or opened.kind != "tool_use" or opened.index != slot.index:
            # Fragments for a tool whose block was closed by text or thinking in between
            # cannot be placed in Anthropic's one-block-at-a-time grammar.
            self.dropped.append("tool_arguments:interleaved")
            return
        if not slot.saw_arguments and arguments == "{}":
            # Databricks opens with "{}" and then sends the real arguments: hold it back.
            slot.held_empty_object = True
            return
        if slot.held_empty_object and not arguments.lstrip().startswith("{"):
            self._arguments_out(slot, "{}", events)
        slot.held_empty_object = False
        slot.saw_arguments = True
        self._arguments_out(slot, arguments, events)

    def _arguments_out(self, slot: _ToolSlot, fragment: str, events: list[JSON]) -> None:
        if self.repair is None:
            self._json_delta(slot.index, fragment, events)
        else:
            slot.buffer.append(fragment)

    def _repaired_arguments(self, slot: _ToolSlot, events: list[JSON]) -> None:
        """The held arguments of a closing tool block, repaired if they must be: one delta."""
        assert self.repair is not None
        text = "".join(slot.buffer)
        slot.buffer.clear()
        if slot.held_empty_object and not text:
            text = "{}"
        tool_input, repair = ToolRepair.parse(text)
        self.repair.note(repair)
        self.repair.check(slot.name, tool_input)
        as_sent = repair is None and (not text.strip() or text.lstrip().startswith("{"))
        fragment = text if as_sent else orjson.dumps(tool_input).decode()
        if fragment.strip():
            self._json_delta(slot.index, fragment, events)

    def _release_waiting(self, events: list[JSON]) -> None:
        """Emit the waiting tool calls in the order they began, each with all its fragments."""
        waiting, self._waiting = self._waiting, []
        for slot in waiting:
            fragments, block = slot.pending or [], slot.block or {}
            slot.pending = slot.block = None
            self._begin("tool_use", block, None, events)
            slot.index = self._next_index - 1
            self._hold(slot)
            for fragment in fragments:
                self._tool_arguments(slot, fragment, events)
            self._close(events)

    def _json_delta(self, index: int, fragment: str, events: list[JSON]) -> None:
        self._output.append(fragment)
        delta = {"type": "input_json_delta", "partial_json": fragment}
        events.append({"type": "content_block_delta", "index": index, "delta": delta})

    # -- blocks ---------------------------------------------------------------------------

    def _begin(self, kind: str, block: JSON, key: Any, events: list[JSON]) -> None:
        self._close(events)
        if self._waiting and kind != "tool_use":
            self._release_waiting(events)
        index = self._next_index
        self._next_index += 1
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        self._open = _Open(kind=kind, index=index, key=key)

    def _hold(self, slot: _ToolSlot) -> None:
        """The open block is `slot`'s: with repair on, its arguments go out when it closes."""
        if self._open is not None:
            self._open.slot = slot

    def _close(self, events: list[JSON]) -> None:
        opened = self._open
        if opened is not None and opened.slot is not None and self.repair is not None:
            self._repaired_arguments(opened.slot, events)
        if self._open is not None:
            events.append({"type": "content_block_stop", "index": self._open.index})
            self._open = None


def message_events(message: JSON) -> list[JSON]:
    """A complete Anthropic Message as the event sequence a stream would have carried: for
    upstreams that answer a stream request with one JSON document (and for cached answers)."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 0}
    events: list[JSON] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        events.extend(_block_events(index, block))
    events.append(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message["stop_reason"],
                "stop_sequence": message["stop_sequence"],
            },
            "usage": message["usage"],
        }
    )
    events.append({"type": "message_stop"})
    return events


def _block_events(index: int, block: JSON) -> list[JSON]:
    kind = block["type"]
    if kind == "text":
        start: JSON = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": block["text"]}]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "tool_use":
        start = {**block, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
        ]
    else:
        start, deltas = block, []
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]
