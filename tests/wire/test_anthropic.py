"""`parse_messages_request`: every invalid body is an `invalid_request_error` naming the field;
everything a newer client may add (fields, block types, roles, cache_control keys) passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from anthropic_router.convert.options import RequestOptions
from anthropic_router.convert.request import to_openai_request
from anthropic_router.errors import ApiError
from anthropic_router.wire.anthropic import parse_messages_request

JSON = dict[str, Any]


def body(**fields: Any) -> JSON:
    base: JSON = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not _MISSING}


_MISSING = object()


def with_message(message: Any) -> JSON:
    return body(messages=[{"role": "user", "content": "hi"}, message])


def with_blocks(*blocks: Any) -> JSON:
    return body(messages=[{"role": "user", "content": list(blocks)}])


# (id, request body, exact error message)
INVALID: list[tuple[str, Any, str]] = [
    ("body is a list", [], "request body must be a JSON object"),
    ("body is a string", "hello", "request body must be a JSON object"),
    ("body is null", None, "request body must be a JSON object"),
    ("body is a number", 5, "request body must be a JSON object"),
    ("missing model", body(model=_MISSING), "model: Field required"),
    ("model not a string", body(model=5), "model: Input should be a non-empty string"),
    ("empty model", body(model=""), "model: Input should be a non-empty string"),
    ("blank model", body(model="   "), "model: Input should be a non-empty string"),
    ("null model", body(model=None), "model: Input should be a non-empty string"),
    ("missing max_tokens", body(max_tokens=_MISSING), "max_tokens: Field required"),
    (
        "max_tokens as a string",
        body(max_tokens="100"),
        "max_tokens: Input should be a non-negative integer",
    ),
    (
        "max_tokens float",
        body(max_tokens=1.5),
        "max_tokens: Input should be a non-negative integer",
    ),
    (
        "max_tokens boolean",
        body(max_tokens=True),
        "max_tokens: Input should be a non-negative integer",
    ),
    (
        "max_tokens negative",
        body(max_tokens=-1),
        "max_tokens: Input should be a non-negative integer",
    ),
    (
        "max_tokens null",
        body(max_tokens=None),
        "max_tokens: Input should be a non-negative integer",
    ),
    ("missing messages", body(messages=_MISSING), "messages: Field required"),
    (
        "messages an object",
        body(messages={"role": "user"}),
        "messages: Input should be a valid list",
    ),
    ("messages a string", body(messages="hi"), "messages: Input should be a valid list"),
    ("messages null", body(messages=None), "messages: Input should be a valid list"),
    ("messages empty", body(messages=[]), "messages: at least one message is required"),
    ("message not an object", with_message("hi"), "messages.1: Input should be an object"),
    ("message without role", with_message({"content": "x"}), "messages.1.role: Field required"),
    (
        "message role not a string",
        with_message({"role": 1, "content": "x"}),
        "messages.1.role: Field required",
    ),
    (
        "message without content",
        with_message({"role": "assistant"}),
        "messages.1.content: Input should be a string or a list of blocks",
    ),
    (
        "message content a number",
        with_message({"role": "assistant", "content": 5}),
        "messages.1.content: Input should be a string or a list of blocks",
    ),
    (
        "message content an object",
        with_message({"role": "assistant", "content": {"type": "text", "text": "x"}}),
        "messages.1.content: Input should be a string or a list of blocks",
    ),
    (
        "block not an object",
        with_blocks({"type": "text", "text": "a"}, "b"),
        "messages.0.content.1: Input should be a block with a string `type`",
    ),
    (
        "block without type",
        with_blocks({"text": "a"}),
        "messages.0.content.0: Input should be a block with a string `type`",
    ),
    (
        "block type not a string",
        with_blocks({"type": 3, "text": "a"}),
        "messages.0.content.0: Input should be a block with a string `type`",
    ),
    ("system a number", body(system=5), "system: Input should be a string or a list of blocks"),
    (
        "system a list of strings",
        body(system=["x"]),
        "system: Input should be a string or a list of blocks",
    ),
    (
        "system an object",
        body(system={"type": "text"}),
        "system: Input should be a string or a list of blocks",
    ),
    ("stream a string", body(stream="true"), "stream: Input should be a boolean"),
    ("stream a number", body(stream=1), "stream: Input should be a boolean"),
    ("temperature a string", body(temperature="0.5"), "temperature: Input should be a number"),
    ("temperature a boolean", body(temperature=True), "temperature: Input should be a number"),
    ("top_p a string", body(top_p="x"), "top_p: Input should be a number"),
    ("top_k a float", body(top_k=1.5), "top_k: Input should be an integer"),
    ("top_k a boolean", body(top_k=False), "top_k: Input should be an integer"),
    (
        "stop_sequences a string",
        body(stop_sequences="END"),
        "stop_sequences: Input should be a list of strings",
    ),
    (
        "stop_sequences with a number",
        body(stop_sequences=["a", 1]),
        "stop_sequences: Input should be a list of strings",
    ),
    ("tools an object", body(tools={"name": "f"}), "tools: Input should be a list of objects"),
    ("tools with a string", body(tools=["f"]), "tools: Input should be a list of objects"),
    ("tool without name", body(tools=[{"input_schema": {}}]), "tools.0.name: Field required"),
    (
        "tool with empty name",
        body(tools=[{"name": "a"}, {"name": ""}]),
        "tools.1.name: Field required",
    ),
    ("tool name not a string", body(tools=[{"name": 5}]), "tools.0.name: Field required"),
    (
        "tool input_schema not an object",
        body(tools=[{"name": "a"}, {"name": "b", "input_schema": "object"}]),
        "tools.1.input_schema: Input should be an object",
    ),
    ("tool_choice a string", body(tool_choice="auto"), "tool_choice: Input should be an object"),
    (
        "tool_choice without type",
        body(tool_choice={"name": "f"}),
        "tool_choice: Input should be an object",
    ),
    ("thinking a boolean", body(thinking=True), "thinking: Input should be an object"),
    (
        "thinking without type",
        body(thinking={"budget_tokens": 2048}),
        "thinking: Input should be an object",
    ),
    ("metadata a string", body(metadata="user"), "metadata: Input should be an object"),
    ("output_config a list", body(output_config=[]), "output_config: Input should be an object"),
]


@pytest.mark.parametrize(
    ("request_body", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid(request_body: Any, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_messages_request(request_body)
    error = caught.value
    assert (error.error_type, error.status, error.message) == (
        "invalid_request_error",
        400,
        message,
    )
    assert error.body() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }


# (id, request body) - all accepted and returned unchanged
TOLERATED: list[tuple[str, JSON]] = [
    ("minimal", body()),
    (
        "unknown top-level fields",
        body(
            context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            service_tier="auto",
            container="c",
            some_future_field={"x": 1},
            provider={"order": ["a"]},
        ),
    ),
    (
        "unknown block types",
        with_blocks(
            {"type": "mid_conv_system", "text": "x"},
            {"type": "future_block", "payload": [1, 2]},
            {"type": "text", "text": "hi"},
        ),
    ),
    ("unknown roles", with_message({"role": "developer", "content": "be nice"})),
    (
        "role system inside messages",
        with_message({"role": "system", "content": "agents and skills"}),
    ),
    (
        "extra cache_control keys",
        with_blocks(
            {
                "type": "text",
                "text": "hi",
                "cache_control": {"type": "ephemeral", "ttl": "1h", "scope": "global"},
            }
        ),
    ),
    ("extra keys on messages", with_message({"role": "assistant", "content": "x", "id": "m1"})),
    ("max_tokens 0 (cache pre-warm)", body(max_tokens=0)),
    (
        "empty content list and empty string",
        body(messages=[{"role": "user", "content": []}, {"role": "assistant", "content": ""}]),
    ),
    ("integer temperature and top_p", body(temperature=1, top_p=1)),
    (
        "null optional fields",
        body(system=None, stream=None, tools=None, tool_choice=None, metadata=None),
    ),
    (
        "server tools without input_schema",
        body(
            tools=[
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                {
                    "name": "f",
                    "input_schema": {"type": "object"},
                    "strict": True,
                    "defer_loading": False,
                },
            ]
        ),
    ),
    (
        "every optional field well-formed",
        body(
            max_tokens=4096,
            system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            stream=True,
            temperature=0.5,
            top_p=0.9,
            top_k=5,
            stop_sequences=["END"],
            tools=[{"name": "f"}],
            tool_choice={"type": "tool", "name": "f", "disable_parallel_tool_use": True},
            thinking={"type": "enabled", "budget_tokens": 2048, "display": "omitted"},
            metadata={"user_id": None},
            output_config={"effort": "xhigh", "format": {"type": "json_schema", "schema": {}}},
        ),
    ),
    (
        "thinking types the router does not know",
        body(thinking={"type": "some_new_mode"}, tool_choice={"type": "some_new_choice"}),
    ),
]


@pytest.mark.parametrize("request_body", [c[1] for c in TOLERATED], ids=[c[0] for c in TOLERATED])
def test_tolerated(request_body: JSON) -> None:
    snapshot = copy.deepcopy(request_body)
    assert parse_messages_request(request_body) is request_body
    assert request_body == snapshot


def test_max_tokens_not_required_for_count_tokens() -> None:
    request_body = body(max_tokens=_MISSING)
    assert parse_messages_request(request_body, require_max_tokens=False) is request_body


def test_max_tokens_still_type_checked_when_present_for_count_tokens() -> None:
    # count_tokens does not read max_tokens: a bad value there is ignored like any other field.
    request_body = body(max_tokens="x")
    assert parse_messages_request(request_body, require_max_tokens=False) is request_body


_READ_TOOL = {
    "name": "Read",
    "description": "Reads a file from the local filesystem.",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path"},
            "offset": {"type": "number"},
            "limit": {"type": "number"},
        },
        "required": ["file_path"],
        "additionalProperties": False,
    },
}
_SYSTEM = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
    {
        "type": "text",
        "text": "You are an interactive CLI tool that helps users with software engineering.",
        "cache_control": {"type": "ephemeral"},
    },
]
# Request shapes Claude Code sends (written from docs/13 and the protocol reference, section
# 1, not copied from captures): the agent turn with thinking, tools, a tool loop in the
# history and cache breakpoints; the small model's side call; count_tokens without max_tokens.
CLAUDE_CODE_SHAPES = [
    pytest.param(
        {
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 32000,
            "stream": True,
            "system": _SYSTEM,
            "tools": [_READ_TOOL],
            "metadata": {"user_id": "user_0f3a_account__session_5d1e"},
            "thinking": {"type": "enabled", "budget_tokens": 31999},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                        {
                            "type": "text",
                            "text": "read setup.py",
                            "cache_control": {"type": "ephemeral"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Read it.", "signature": "EqQBCkYIBxgC"},
                        {"type": "text", "text": "Reading it."},
                        {
                            "type": "tool_use",
                            "id": "toolu_01A09q90qw90lq917835lq9",
                            "name": "Read",
                            "input": {"file_path": "/repo/setup.py"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                            "content": [{"type": "text", "text": "from setuptools import setup"}],
                        }
                    ],
                },
            ],
        },
        True,
        id="agent-turn-with-tool-loop",
    ),
    pytest.param(
        {
            "model": "claude-haiku-4-5-20251001",
            "max_tokens": 512,
            "system": [{"type": "text", "text": "Summarize this coding conversation in a title."}],
            "messages": [{"role": "user", "content": "read setup.py"}],
            "temperature": 0,
            "metadata": {"user_id": "user_0f3a_account__session_5d1e"},
        },
        True,
        id="side-call-title",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5-20250929",
            "messages": [{"role": "user", "content": "count me"}],
            "tools": [_READ_TOOL],
        },
        False,
        id="count-tokens",
    ),
]


@pytest.mark.parametrize(("request_body", "require_max_tokens"), CLAUDE_CODE_SHAPES)
def test_claude_code_request_shapes_parse_and_convert(
    request_body: JSON, require_max_tokens: bool
) -> None:
    """The shapes Claude Code sends are accepted and convert without error."""
    parsed = parse_messages_request(request_body, require_max_tokens=require_max_tokens)
    for options in (
        RequestOptions(
            upstream_model="anthropic/claude-sonnet-4.5",
            cache_control=True,
            signed_thinking_only=True,
        ),
        RequestOptions(upstream_model="openai/gpt-4o"),
    ):
        conversion = to_openai_request(dict(parsed), options)
        assert conversion.body["messages"]
        for message in conversion.body["messages"]:
            assert message["role"] in ("system", "user", "assistant", "tool")
            content = message.get("content")
            assert content is None or content not in ("", [])
