"""The Anthropic Messages request, checked once at the edge.

Only the fields we read are checked, and only for type: unknown fields, block types and roles
pass (new Claude Code versions add them every month; strict models are what breaks peers).
Errors name the field the way the real API does: `messages.1.content: ...`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from anthropic_router.errors import invalid_request

JSON = dict[str, Any]


class MessagesRequest(TypedDict, total=False):
    model: str
    max_tokens: int
    messages: list[JSON]
    system: str | list[JSON]
    stream: bool
    temperature: float
    top_p: float
    top_k: int
    stop_sequences: list[str]
    tools: list[JSON]
    tool_choice: JSON
    thinking: JSON
    metadata: JSON
    output_config: JSON


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_object_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


_OPTIONAL_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "system": (lambda v: isinstance(v, str) or _is_object_list(v), "a string or a list of blocks"),
    "stream": (lambda v: isinstance(v, bool), "a boolean"),
    "temperature": (_is_number, "a number"),
    "top_p": (_is_number, "a number"),
    "top_k": (_is_int, "an integer"),
    "stop_sequences": (_is_str_list, "a list of strings"),
    "tools": (_is_object_list, "a list of objects"),
    "tool_choice": (lambda v: isinstance(v, dict) and isinstance(v.get("type"), str), "an object"),
    "thinking": (lambda v: isinstance(v, dict) and isinstance(v.get("type"), str), "an object"),
    "metadata": (lambda v: isinstance(v, dict), "an object"),
    "output_config": (lambda v: isinstance(v, dict), "an object"),
}


def parse_messages_request(
    body: Any, *, require_max_tokens: bool = True, interleaved_thinking: bool = False
) -> MessagesRequest:
    """Check `body` and return it typed; raise `invalid_request_error` naming the bad field.
    `interleaved_thinking` (the `interleaved-thinking-*` beta) lets a thinking budget exceed
    `max_tokens`, as Anthropic allows there."""
    if not isinstance(body, dict):
        raise invalid_request("request body must be a JSON object")
    _check_model(body)
    if require_max_tokens:
        _check_max_tokens(body)
    for name, (check, expected) in _OPTIONAL_FIELDS.items():
        value = body.get(name)
        if value is not None and not check(value):
            raise invalid_request(f"{name}: Input should be {expected}")
    _check_messages(body)
    _check_tools(body.get("tools") or [])
    _check_thinking(body, require_max_tokens and not interleaved_thinking)
    return body  # type: ignore[return-value]


def _check_model(body: JSON) -> None:
    if "model" not in body:
        raise invalid_request("model: Field required")
    if not isinstance(body["model"], str) or not body["model"].strip():
        raise invalid_request("model: Input should be a non-empty string")


def _check_max_tokens(body: JSON) -> None:
    if "max_tokens" not in body:
        raise invalid_request("max_tokens: Field required")
    value = body["max_tokens"]
    if not _is_int(value) or value < 0:
        raise invalid_request("max_tokens: Input should be a non-negative integer")


def _check_messages(body: JSON) -> None:
    if "messages" not in body:
        raise invalid_request("messages: Field required")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise invalid_request("messages: Input should be a valid list")
    if not messages:
        raise invalid_request("messages: at least one message is required")
    for index, message in enumerate(messages):
        _check_message(index, message)


def _check_message(index: int, message: Any) -> None:
    where = f"messages.{index}"
    if not isinstance(message, dict):
        raise invalid_request(f"{where}: Input should be an object")
    if not isinstance(message.get("role"), str):
        raise invalid_request(f"{where}.role: Field required")
    content = message.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid_request(f"{where}.content: Input should be a string or a list of blocks")
    for block_index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid_request(
                f"{where}.content.{block_index}: Input should be a block with a string `type`"
            )


def _check_tools(tools: list[JSON]) -> None:
    for index, tool in enumerate(tools):
        if tool.get("type") == "mcp_toolset":  # names a server, not a tool (MCP connector)
            continue
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid_request(f"tools.{index}.name: Field required")
        schema = tool.get("input_schema")
        if schema is not None and not isinstance(schema, dict):
            raise invalid_request(f"tools.{index}.input_schema: Input should be an object")


MIN_THINKING_BUDGET = 1024


def _check_thinking(body: JSON, below_max_tokens: bool) -> None:
    """Anthropic's rules for `thinking.type: enabled`: an integer budget of at least 1,024
    tokens, below `max_tokens`."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise invalid_request("thinking.enabled.budget_tokens: Input should be a valid integer")
    if budget < MIN_THINKING_BUDGET:
        raise invalid_request(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{MIN_THINKING_BUDGET}"
        )
    max_tokens = body.get("max_tokens")
    if below_max_tokens and isinstance(max_tokens, int) and budget >= max_tokens:
        raise invalid_request("`max_tokens` must be greater than `thinking.budget_tokens`")
