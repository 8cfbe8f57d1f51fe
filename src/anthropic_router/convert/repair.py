"""Tool-call repair: what models other than Claude get wrong about tool calls, set right.

Three failure shapes, each named in `ToolRepair.repairs` (the `x-anthropic-router-repaired`
header and the exchange record):

- `tool_arguments`: arguments that are not valid JSON (trailing commas, single quotes, raw
  newlines in strings, cut at max_tokens, markdown fences) repaired by `json_repair`;
  `tool_arguments:double_encoded` for an object sent as a JSON string inside the string;
  `tool_arguments:unrepairable` when nothing could be made of them (the input then carries
  the text as `raw_input`, so the client's schema check tells the model, instead of `{}`).
- `text_tool_call:<format>`: a call the model wrote as text, in one of the documented
  formats (see `text_calls.py`), for a tool the request declared.
- Arguments are checked against the tool's `input_schema`; a call that does not validate
  is still passed on (Claude Code reports the error to the model itself) but is counted in
  `ToolRepair.invalid`.

Pure: the caller decides whether repair is on and logs what was collected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import json_repair
import orjson
from jsonschema import exceptions as schema_exceptions
from jsonschema import validators

from anthropic_router.convert.ids import new_tool_id, to_upstream_tool_name
from anthropic_router.convert.text_calls import TextCallScanner

JSON = dict[str, Any]

_FENCE = "```"


def repair_arguments(text: str) -> tuple[JSON, str | None]:
    """Tool arguments as an object, and the repair it took (None: valid as sent)."""
    stripped = text.strip()
    if not stripped:
        return {}, None
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return _repaired(stripped)
    if isinstance(value, dict):
        return value, None
    if isinstance(value, str):
        inner, repair = repair_arguments(value)
        if repair != "tool_arguments:unrepairable":
            return inner, "tool_arguments:double_encoded"
    # Valid JSON that is not an object (a list, a number): the old behaviour, no repair.
    return {"value": value}, None


def _repaired(text: str) -> tuple[JSON, str | None]:
    try:
        value = json_repair.repair_json(text, return_objects=True)
    except (ValueError, RecursionError):  # the library's own failures on hostile input
        value = None
    if isinstance(value, str) and value.strip()[:1] in ("{", '"'):
        inner, repair = repair_arguments(value)  # a JSON string inside the string
        if repair != "tool_arguments:unrepairable":
            return inner, "tool_arguments:double_encoded"
    if isinstance(value, dict) and (value or text.startswith(("{", _FENCE))):
        return value, "tool_arguments"
    return {"raw_input": text}, "tool_arguments:unrepairable"


@dataclass(slots=True)
class ToolRepair:
    """One exchange's repair context: the declared tools and what was repaired."""

    schemas: dict[str, JSON]  # client tool name -> input_schema (may be empty)
    repairs: dict[str, None] = field(default_factory=dict)
    # "tool: path: keyword" of the first error (no values: they are message content)
    invalid: list[str] = field(default_factory=list)
    _validators: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_request(cls, request: JSON) -> ToolRepair | None:
        """None when the request declares no client tool: there is nothing to repair to."""
        schemas: JSON = {}
        for tool in request.get("tools") or []:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            if tool.get("type") in (None, "custom") or "input_schema" in tool:
                schema = tool.get("input_schema")
                schemas[tool["name"]] = schema if isinstance(schema, dict) else {}
        return cls(schemas) if schemas else None

    parse = staticmethod(repair_arguments)

    @property
    def names(self) -> list[str]:
        return list(self.repairs)

    def note(self, repair: str | None) -> None:
        if repair is not None:
            self.repairs[repair] = None

    def arguments(self, text: str) -> JSON:
        tool_input, repair = repair_arguments(text)
        self.note(repair)
        return tool_input

    def scanner(self) -> TextCallScanner:
        """A scanner that knows each tool by its client name and by the name the upstream
        saw (long or unsafe names are rewritten; see `ids.to_upstream_tool_name`)."""
        declared = dict(self.schemas)
        for name, schema in self.schemas.items():
            declared.setdefault(to_upstream_tool_name(name), schema)
        return TextCallScanner(declared)

    def client_name(self, name: str) -> str:
        if name in self.schemas:
            return name
        return next((n for n in self.schemas if to_upstream_tool_name(n) == name), name)

    def check(self, name: str, tool_input: JSON) -> None:
        """Validate `tool_input` against the tool's schema; a failure is only counted."""
        validator = self._validator(name)
        if validator is None:
            return
        try:
            error = next(iter(validator.iter_errors(tool_input)), None)
        except (schema_exceptions.SchemaError, LookupError, TypeError, ValueError):
            return  # a schema that cannot be evaluated checks nothing (refs, bad patterns)
        except Exception:  # referencing's Unresolvable and friends: not ours to fail on
            return
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            self.invalid.append(f"{name}: {where}: {error.validator}")

    def _validator(self, name: str) -> Any:
        if name in self._validators:
            return self._validators[name]
        schema = self.schemas.get(name)
        validator = None
        if schema:
            try:
                cls = validators.validator_for(schema)
                cls.check_schema(schema)
                validator = cls(schema)
            except (schema_exceptions.SchemaError, TypeError, ValueError):
                validator = None
        self._validators[name] = validator
        return validator

    def message(self, message: JSON) -> JSON:
        """A converted Message with text-written calls turned into tool_use blocks and every
        tool input checked. `stop_reason` becomes tool_use when calls were found in text."""
        content: list[JSON] = []
        found = False
        for block in message["content"]:
            if block.get("type") == "text" and block.get("text"):
                blocks = self.text_blocks(block["text"])
                found = found or any(b["type"] == "tool_use" for b in blocks)
                content.extend(blocks)
            else:
                content.append(block)
        for block in content:
            if block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
                self.check(block["name"], block["input"])
        if not found:
            return {**message, "content": content}
        stop = message.get("stop_reason")
        if stop in ("end_turn", "stop_sequence", None):
            stop = "tool_use"
        return {**message, "content": content, "stop_reason": stop, "stop_sequence": None}

    def text_blocks(self, text: str) -> list[JSON]:
        scanner = self.scanner()
        pieces = scanner.feed(text) + scanner.finish()
        if not any(piece[0] == "call" for piece in pieces):
            return [{"type": "text", "text": text}]
        blocks: list[JSON] = []
        for piece in pieces:
            if piece[0] == "call":
                self.note(f"text_tool_call:{piece[3]}")
                blocks.append(tool_use_block(self.client_name(piece[1]), piece[2]))
            elif piece[1].strip():
                if blocks and blocks[-1]["type"] == "text":
                    blocks[-1]["text"] += piece[1]
                else:
                    blocks.append({"type": "text", "text": piece[1]})
        return _trim_texts(blocks)


def tool_use_block(name: str, tool_input: JSON) -> JSON:
    return {"type": "tool_use", "id": new_tool_id(), "name": name, "input": tool_input}


def _trim_texts(blocks: list[JSON]) -> list[JSON]:
    """Whitespace that only separated a call from its neighbours is not an answer."""
    for block in blocks:
        if block["type"] == "text":
            block["text"] = block["text"].strip("\n")
    return [b for b in blocks if b["type"] != "text" or b["text"].strip()]
