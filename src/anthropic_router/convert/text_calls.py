"""Tool calls a model wrote as text, recognised incrementally (`feed`/`finish`, like the
stream translator), so the streamed and the non-streamed answer are scanned by one code.

The formats, as their models' documentation and chat templates write them:

- `hermes`: `<tool_call>{"name": "...", "arguments": {...}}</tool_call>` (Hermes 2/3,
  Qwen2.5, and the many fine-tunes trained on the Hermes template).
- `qwen_xml`: `<tool_call><function=NAME><parameter=KEY>value</parameter></function>
  </tool_call>` (Qwen3-Coder's template), also without the `<tool_call>` wrapper.
- `function`: `<function=NAME>{"key": "value"}</function>` (Llama 3.1's custom-tool format).
- `fenced_json`: a ```json fence holding `{"name": ..., "arguments"|"parameters"|"input": ...}`.

Only calls naming a tool the request declared become calls; anything else (a fenced code
block, an XML example the model is explaining) comes out as the text it was. Text is
released as soon as it cannot be the start of a call; only a possible opener prefix and
trailing whitespace are held back between chunks.
"""

from __future__ import annotations

from typing import Any

import json_repair
import orjson

JSON = dict[str, Any]
# ("text", str) or ("call", tool name, input object, format name)
Piece = tuple[Any, ...]

_HERMES, _FUNCTION, _FENCE = "<tool_call>", "<function=", "```"
_OPENERS = (_HERMES, _FUNCTION, _FENCE)
_CLOSERS = {_HERMES: "</tool_call>", _FUNCTION: "</function>", _FENCE: "\n```"}
_LONGEST = max(map(len, _OPENERS))
_FENCE_INFOS = frozenset({"", "json", "jsonc", "json5", "tool_call", "tool_code", "tool"})
_MAX_CAPTURE = 2 * 1024 * 1024  # a call this long is text (a Write of a large file fits)
_ARGUMENT_KEYS = ("arguments", "parameters", "input", "args")
_NAME_KEYS = ("name", "tool", "tool_name", "function")


class TextCallScanner:
    """Text in, `Piece`s out. `schemas` maps declared tool names to their input schemas."""

    __slots__ = ("_capture", "_closer", "_emitted_call", "_lead", "_mode", "_pending",
                 "_schemas", "_size", "_tail", "_tentative")  # fmt: skip

    def __init__(self, schemas: dict[str, JSON]) -> None:
        self._schemas = schemas
        self._mode = "text"  # "text" | "call" | "fence" (deciding) | "code" (a plain fence)
        self._pending = ""  # text mode: held-back whitespace and opener prefix
        self._lead = ""  # whitespace before the capture, given back if it is not a call
        self._capture: list[str] = []
        self._closer = ""
        self._tail = ""  # last characters of the capture, to find a closer split by chunks
        self._size = 0
        self._emitted_call = False
        # Fenced-JSON calls wait for what follows: they are calls only at the end of the
        # answer (or before another call), since prose after a fence means it was an example.
        self._tentative: list[tuple[str, list[Piece]]] = []

    def feed(self, text: str) -> list[Piece]:
        if (
            # Ordinary prose, the usual streamed chunk: nothing held, nothing that could open
            # a call, no trailing whitespace to hold back. It is all text, as _scan_text says.
            self._mode == "text"
            and not self._pending
            and not self._tentative
            and text
            and not text[-1].isspace()
            and "<" not in text
            and "`" not in text
        ):
            self._emitted_call = False
            return [("text", text)]
        out: list[Piece] = []
        rest = text
        while rest:
            if self._mode == "text":
                rest = self._scan_text(rest, out)
            elif self._mode == "code":
                rest = self._scan_code(rest, out)
            else:
                rest = self._scan_capture(rest, out)
        return out

    def finish(self) -> list[Piece]:
        """End of the text: an unclosed call (cut by max_tokens or a stop sequence) is still
        a call when it parses; held-back text is released."""
        out: list[Piece] = []
        if self._mode in ("call", "fence"):
            raw = "".join(self._capture)
            self._settle(raw, out)
        elif self._pending and not (self._ends_in_call() and not self._pending.strip()):
            self._text(self._pending, out)
        self._confirm(out)
        self._pending, self._mode, self._capture = "", "text", []
        return out

    def _ends_in_call(self) -> bool:
        return self._emitted_call or bool(self._tentative)

    def _confirm(self, out: list[Piece]) -> None:
        for _raw, calls in self._tentative:
            out.extend(calls)
            self._emitted_call = True
        self._tentative = []

    # -- text mode --------------------------------------------------------------------------

    def _scan_text(self, data: str, out: list[Piece]) -> str:
        buffer = self._pending + data if self._pending else data
        self._pending = ""
        if "<" not in buffer and "`" not in buffer:  # the hot path: ordinary prose
            self._release(buffer, 0, out)
            return ""
        found, opener = _earliest_opener(buffer)
        if found < 0:
            self._release(buffer, _opener_prefix(buffer), out)
            return ""
        before = buffer[:found]
        kept = before.rstrip()
        self._text(kept, out)
        self._lead = before[len(kept) :]
        self._begin_capture(opener)
        return buffer[found:]

    def _release(self, buffer: str, held: int, out: list[Piece]) -> None:
        """Emit `buffer` except its last `held` characters and the whitespace before them."""
        head = buffer[: len(buffer) - held] if held else buffer
        kept = head.rstrip()
        self._text(kept, out)
        self._pending = head[len(kept) :] + buffer[len(head) :]

    def _text(self, text: str, out: list[Piece]) -> None:
        if text and self._tentative:
            if not text.strip():  # whitespace after a fenced call: it waits with the call
                raw, calls = self._tentative[-1]
                self._tentative[-1] = (raw + text, calls)
                return
            tentative, self._tentative = self._tentative, []
            text = "".join(raw for raw, _calls in tentative) + text  # they were examples
        if text:
            if out and out[-1][0] == "text":
                out[-1] = ("text", out[-1][1] + text)
            else:
                out.append(("text", text))
            self._emitted_call = False

    def _begin_capture(self, opener: str) -> None:
        self._mode = "fence" if opener == _FENCE else "call"
        self._closer = _CLOSERS[opener]
        self._capture, self._tail, self._size = [], "", 0

    # -- capture mode -----------------------------------------------------------------------

    def _scan_capture(self, data: str, out: list[Piece]) -> str:
        window = self._tail + data
        start = len(self._tail)
        self._capture.append(data)
        self._size += len(data)
        if self._mode == "fence" and not self._decide_fence(out):
            return ""
        at = window.find(self._closer, max(0, start - len(self._closer) + 1))
        if at < 0:
            if self._size > _MAX_CAPTURE:
                self._abandon(out, code=False)
            else:
                self._tail = window[-(len(self._closer) - 1) :]
            return ""
        end = at + len(self._closer)
        consumed = end - start  # characters of `data` up to the end of the closer
        raw = "".join(self._capture)
        raw = raw[: len(raw) - len(data) + consumed]
        self._mode = "text"
        self._capture = []
        self._settle(raw, out)
        return data[consumed:]

    def _decide_fence(self, out: list[Piece]) -> bool:
        """A fence is captured only when its info string says JSON (or nothing) and its
        first character opens an object or a list; otherwise it is code, passed through."""
        raw = "".join(self._capture)
        newline = raw.find("\n")
        if newline < 0:
            if len(raw) > 40:  # an info string this long is not a JSON fence
                self._abandon(out, code=True)
                return False
            return False
        info = raw[len(_FENCE) : newline].strip().lower()
        body = raw[newline + 1 :].lstrip()
        if info not in _FENCE_INFOS:
            self._abandon(out, code=True)
            return False
        if not body:
            return False
        if body[0] == "`":  # an empty fence, already closed: plain text
            self._abandon(out, code=False)
            return False
        if body[0] not in "{[":
            self._abandon(out, code=True)
            return False
        self._mode = "call"
        self._capture = [raw]
        self._tail = ""
        return True

    def _abandon(self, out: list[Piece], *, code: bool) -> None:
        raw = "".join(self._capture)
        self._text(self._lead + raw, out)
        self._lead, self._capture = "", []
        if code:  # a plain code fence: pass its body through until it closes
            self._mode = "code"
            self._pending = ""
            closed = raw.find(_FENCE, len(_FENCE))
            if closed >= 0:
                self._mode = "text"
        else:
            self._mode = "text"

    def _settle(self, raw: str, out: list[Piece]) -> None:
        calls = parse_text_calls(raw, self._schemas)
        if calls and calls[0][3] == "fenced_json":
            self._tentative.append((self._lead + raw, calls))
        elif calls:
            self._confirm(out)
            out.extend(calls)
            self._emitted_call = True
        else:
            self._text(self._lead + raw, out)
        self._lead = ""

    # -- code mode (inside a fence that is not a call) -------------------------------------

    def _scan_code(self, data: str, out: list[Piece]) -> str:
        buffer = self._pending + data if self._pending else data
        self._pending = ""
        at = buffer.find(_FENCE)
        if at < 0:
            held = len(buffer) - len(buffer.rstrip("`"))
            self._text(buffer[: len(buffer) - held], out)
            self._pending = buffer[len(buffer) - held :]
            return ""
        self._text(buffer[: at + len(_FENCE)], out)
        self._mode = "text"
        return buffer[at + len(_FENCE) :]


def _earliest_opener(buffer: str) -> tuple[int, str]:
    best, best_opener = -1, ""
    for opener in _OPENERS:
        at = buffer.find(opener)
        if at >= 0 and (best < 0 or at < best):
            best, best_opener = at, opener
    return best, best_opener


def _opener_prefix(buffer: str) -> int:
    """Length of the longest suffix of `buffer` that could begin an opener."""
    for size in range(min(len(buffer), _LONGEST - 1), 0, -1):
        suffix = buffer[-size:]
        if any(opener.startswith(suffix) for opener in _OPENERS):
            return size
    return 0


# -- parsing one captured call ---------------------------------------------------------------


def parse_text_calls(raw: str, schemas: dict[str, JSON]) -> list[Piece]:
    """The calls in one captured span (`raw` starts with its opener), or [] when it is not
    a call of a declared tool."""
    if raw.startswith(_HERMES):
        inner = _between(raw, _HERMES, _CLOSERS[_HERMES]).strip()
        if inner.startswith(_FUNCTION):
            return _function_tag(inner, schemas, "qwen_xml")
        return _json_calls(inner, schemas, "hermes")
    if raw.startswith(_FUNCTION):
        return _function_tag(raw, schemas, "function")
    if raw.startswith(_FENCE):
        newline = raw.find("\n")
        body = raw[newline + 1 :] if newline >= 0 else ""
        body = body[: body.rfind(_FENCE)] if body.rstrip().endswith(_FENCE) else body
        return _json_calls(body.strip(), schemas, "fenced_json")
    return []


def _between(raw: str, opener: str, closer: str) -> str:
    inner = raw[len(opener) :]
    at = inner.rfind(closer)
    return inner[:at] if at >= 0 else inner


def _json_calls(text: str, schemas: dict[str, JSON], fmt: str) -> list[Piece]:
    value = _loads(text)
    items = value if isinstance(value, list) else [value]
    calls: list[Piece] = []
    for item in items:
        call = _json_call(item, schemas, fmt)
        if call is None:
            return []  # one item that is not a call: the whole span is text
        calls.append(call)
    return calls


def _json_call(item: Any, schemas: dict[str, JSON], fmt: str) -> Piece | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):  # OpenAI's own shape, written out as text
        item = item["function"]
    written = next((item[k] for k in _NAME_KEYS if isinstance(item.get(k), str)), None)
    name = _declared(written, schemas)
    if name is None:
        return None
    arguments: Any = next((item[k] for k in _ARGUMENT_KEYS if k in item), {})
    if isinstance(arguments, str):
        arguments = _loads(arguments) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        return None
    return ("call", name, arguments, fmt)


def _declared(written: Any, schemas: dict[str, JSON]) -> str | None:
    if not isinstance(written, str):
        return None
    name = written.strip()
    if name in schemas:
        return name
    bare = name.removeprefix("functions.")  # the OpenAI namespace some models write
    return bare if bare in schemas else None


def _function_tag(text: str, schemas: dict[str, JSON], fmt: str) -> list[Piece]:
    close = text.find(">")
    if close < 0:
        return []
    name = _declared(text[len(_FUNCTION) : close], schemas)
    if name is None:
        return []
    body = _between(text[close:], ">", _CLOSERS[_FUNCTION]).strip()
    if not body:
        return [("call", name, {}, fmt)]
    if body[0] == "{":
        value = _loads(body)
        return [("call", name, value, fmt)] if isinstance(value, dict) else []
    if body.startswith("<parameter="):
        return [("call", name, _parameters(body, schemas[name]), "qwen_xml")]
    return []


def _parameters(body: str, schema: JSON) -> JSON:
    """`<parameter=KEY>value</parameter>` pairs; a value is JSON unless the schema says the
    parameter is a string (Qwen3-Coder's own parser converts the same way)."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    result: JSON = {}
    for part in body.split("<parameter=")[1:]:
        close = part.find(">")
        if close < 0:
            continue
        key = part[:close].strip()
        value = part[close + 1 :]
        end = value.rfind("</parameter>")
        value = value[:end] if end >= 0 else value
        value = value.removeprefix("\n").removesuffix("\n")
        kind = (properties.get(key) or {}).get("type") if isinstance(properties, dict) else None
        result[key] = value if kind == "string" else _parameter_value(value)
    return result


def _parameter_value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json_repair.repair_json(text, return_objects=True)
    except (ValueError, RecursionError):
        return None
