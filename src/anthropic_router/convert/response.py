"""OpenAI chat completion -> Anthropic Message (non-streaming)."""

from __future__ import annotations

from typing import Any

from anthropic_router.convert.common import (
    anthropic_usage,
    content_list_parts,
    matched_stop_sequence,
    parse_arguments,
    reasoning_parts,
    stop_reason_for,
    upstream_error,
)
from anthropic_router.convert.ids import new_message_id, to_anthropic_tool_id
from anthropic_router.convert.repair import ToolRepair
from anthropic_router.errors import ApiError

JSON = dict[str, Any]


def to_anthropic_message(
    completion: JSON,
    *,
    model: str,
    tool_names: dict[str, str] | None = None,
    stop_sequences: list[str] | None = None,
    repair: ToolRepair | None = None,
) -> JSON:
    """`model` is the name the client asked for: clients compare it with what they sent.
    With `repair`, broken arguments and calls written as text are set right (see repair.py)."""
    if "error" in completion and not completion.get("choices"):
        raise upstream_error(completion["error"])
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ApiError("api_error", "upstream returned no choices")
    choice = choices[0]
    if choice.get("finish_reason") == "error":
        # OpenRouter can answer 200 with a failed generation and partial text; a partial
        # answer passed off as complete would mislead the client, so it is an error.
        raise upstream_error(choice.get("error") or completion.get("error") or "generation failed")
    message = choice.get("message") or {}
    content = _content_blocks(message, tool_names or {}, repair)
    made_calls = any(block["type"] == "tool_use" for block in content)
    stop_sequence = matched_stop_sequence(choice, stop_sequences or [])
    stop_reason = (
        "stop_sequence"
        if stop_sequence
        else stop_reason_for(choice.get("finish_reason"), made_tool_calls=made_calls)
    )
    if message.get("refusal") and not message.get("content"):
        stop_reason = "refusal"
    result = {
        "id": _message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": anthropic_usage(completion.get("usage")),
    }
    return repair.message(result) if repair is not None else result


def _message_id(upstream_id: Any) -> str:
    if isinstance(upstream_id, str) and upstream_id:
        return upstream_id if upstream_id.startswith("msg_") else "msg_" + upstream_id
    return new_message_id()


def _content_blocks(
    message: JSON, tool_names: dict[str, str], repair: ToolRepair | None
) -> list[JSON]:
    blocks: list[JSON] = []
    for part in reasoning_parts(message):
        part.pop("index", None)
        blocks.append(part)
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        blocks.extend(_content_list(content))
    if message.get("refusal") and not content:
        blocks.append({"type": "text", "text": str(message["refusal"])})
    seen_ids: set[str] = set()
    for call in message.get("tool_calls") or []:
        block = _tool_use(call, tool_names, repair)
        while block["id"] in seen_ids:  # some providers repeat ids across parallel calls
            block["id"] += "_"
        seen_ids.add(block["id"])
        blocks.append(block)
    return blocks


def _content_list(items: list[Any]) -> list[JSON]:
    """Databricks returns content as a list of `reasoning` and `text` items. A signature
    sent alone (empty text) belongs to the unsigned thinking block just before it."""
    blocks: list[JSON] = []
    for part in content_list_parts(items):
        last = blocks[-1] if blocks else None
        if (
            part["type"] == "thinking"
            and not part["thinking"]
            and last is not None
            and last["type"] == "thinking"
            and not last["signature"]
        ):
            last["signature"] = part["signature"]
        else:
            blocks.append(part)
    return blocks


def _tool_use(call: JSON, tool_names: dict[str, str], repair: ToolRepair | None) -> JSON:
    function = call.get("function") or {}
    name = str(function.get("name") or "")
    arguments = function.get("arguments")
    parse = parse_arguments if repair is None else repair.arguments
    tool_input = arguments if isinstance(arguments, dict) else parse(str(arguments or ""))
    return {
        "type": "tool_use",
        "id": to_anthropic_tool_id(call.get("id")),
        "name": tool_names.get(name, name),
        "input": tool_input,
    }
