"""`to_openai_request`: the top level of an Anthropic request -> an OpenAI/OpenRouter body.

Every case is a literal request in and the literal upstream body out, plus the exact list of
dropped-feature names the conversion reports.
"""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.options import RequestOptions
from anthropic_router.convert.request import to_openai_request

JSON = dict[str, Any]

HI = [{"role": "user", "content": "hi"}]
UP_HI = [{"role": "user", "content": "hi"}]
UPSTREAM = "up/model"

LONG_USER = "u" * 300
LONG_USER_DIGEST = "sha256:8b5089b44d9fefeafc563a34f6cb19fbdbe3814023622cb463bb4a74caba1c19"
# The user_id Claude Code sends: a ~140-character JSON string, under the 256 cap.
CLAUDE_CODE_USER = (
    '{"device_id":"' + "d" * 64 + '","account_uuid":"",'
    '"session_id":"0b9e6a55-3c1f-4a43-9a8e-8f5a1f0c2d11"}'
)
LONG_NAME = "a" * 100
LONG_NAME_UP = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_28165978"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
EMPTY_SCHEMA = {"type": "object", "properties": {}}


def req(**fields: Any) -> JSON:
    return {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": HI, **fields}


def convert(request: JSON, **options: Any) -> tuple[JSON, list[str], dict[str, str]]:
    conversion = to_openai_request(request, RequestOptions(upstream_model=UPSTREAM, **options))
    return conversion.body, conversion.report.dropped_names, conversion.tool_names


# (id, request, options, expected body, expected dropped)
CASES: list[tuple[str, JSON, JSON, JSON, list[str]]] = [
    (
        "minimal",
        req(),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100},
        [],
    ),
    (
        "max_tokens 0 (cache pre-warm) is not forwarded",
        req(max_tokens=0),
        {},
        {"model": UPSTREAM, "messages": UP_HI},
        [],
    ),
    (
        "stream adds stream_options.include_usage",
        req(stream=True),
        {},
        {
            "model": UPSTREAM,
            "messages": UP_HI,
            "max_tokens": 100,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        [],
    ),
    (
        "stream false is omitted",
        req(stream=False),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100},
        [],
    ),
    (
        "sampling parameters pass through",
        req(temperature=0.2, top_p=0.9, top_k=40),
        {},
        {
            "model": UPSTREAM,
            "messages": UP_HI,
            "max_tokens": 100,
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
        },
        [],
    ),
    (
        "temperature 0 is a value, not an absence",
        req(temperature=0),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, "temperature": 0},
        [],
    ),
    (
        "stop_sequences -> stop",
        req(stop_sequences=["END", "###"]),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, "stop": ["END", "###"]},
        [],
    ),
    (
        "empty stop strings are dropped",
        req(stop_sequences=["", "END"]),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, "stop": ["END"]},
        [],
    ),
    (
        "only empty stop strings: no stop",
        req(stop_sequences=[""]),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100},
        [],
    ),
    (
        "more than 4 stop sequences are cut to 4 and reported",
        req(stop_sequences=["a", "b", "c", "d", "e", "f"]),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, "stop": ["a", "b", "c", "d"]},
        ["stop_sequences:beyond-4"],
    ),
    (
        "exactly 4 stop sequences are kept",
        req(stop_sequences=["a", "b", "c", "d"]),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, "stop": ["a", "b", "c", "d"]},
        [],
    ),
    (
        "metadata.user_id -> user",
        req(metadata={"user_id": "user-42"}),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, "user": "user-42"},
        [],
    ),
    (
        "Claude Code's JSON user_id fits under the cap and is kept verbatim",
        req(metadata={"user_id": CLAUDE_CODE_USER}),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, "user": CLAUDE_CODE_USER},
        [],
    ),
    (
        "a user_id over 256 characters is hashed",
        req(metadata={"user_id": LONG_USER}),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, "user": LONG_USER_DIGEST},
        [],
    ),
    (
        "null or empty user_id is ignored",
        req(metadata={"user_id": None}),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100},
        [],
    ),
    (
        "empty metadata is ignored",
        req(metadata={"user_id": ""}),
        {},
        {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100},
        [],
    ),
]


@pytest.mark.parametrize(
    ("request_body", "options", "expected", "dropped"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_top_level(request_body: JSON, options: JSON, expected: JSON, dropped: list[str]) -> None:
    body, reported, _ = convert(request_body, **options)
    assert body == expected
    assert reported == dropped


# -- tools -----------------------------------------------------------------------------------

WEATHER = {"name": "get_weather", "description": "Weather for a city", "input_schema": SCHEMA}
UP_WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": SCHEMA, "description": "Weather for a city"},
}

# (id, request tools + tool_choice fields, expected tool fields of the body, dropped, tool_names)
TOOL_CASES: list[tuple[str, JSON, JSON, list[str], dict[str, str]]] = [
    (
        "custom tool",
        {"tools": [WEATHER]},
        {"tools": [UP_WEATHER]},
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "explicit custom type, strict, no description",
        {"tools": [{"type": "custom", "name": "f", "input_schema": SCHEMA, "strict": True}]},
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": SCHEMA, "strict": True},
                }
            ]
        },
        [],
        {"f": "f"},
    ),
    (
        "strict false is forwarded as false",
        {"tools": [{"name": "f", "input_schema": SCHEMA, "strict": False}]},
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": SCHEMA, "strict": False},
                }
            ]
        },
        [],
        {"f": "f"},
    ),
    (
        "missing input_schema becomes an empty object schema",
        {"tools": [{"name": "ping"}]},
        {"tools": [{"type": "function", "function": {"name": "ping", "parameters": EMPTY_SCHEMA}}]},
        [],
        {"ping": "ping"},
    ),
    (
        "a name over 64 characters is shortened with a hash and mapped back",
        {"tools": [{"name": LONG_NAME, "input_schema": SCHEMA}]},
        {"tools": [{"type": "function", "function": {"name": LONG_NAME_UP, "parameters": SCHEMA}}]},
        [],
        {LONG_NAME_UP: LONG_NAME},
    ),
    (
        "a name with unsafe characters is sanitised with a hash",
        {"tools": [{"name": "my.tool", "input_schema": SCHEMA}]},
        {
            "tools": [
                {"type": "function", "function": {"name": "my_tool_bca2c361", "parameters": SCHEMA}}
            ]
        },
        [],
        {"my_tool_bca2c361": "my.tool"},
    ),
    (
        "server tools are dropped and reported, custom tools kept",
        {
            "tools": [
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                WEATHER,
                {"type": "bash_20250124", "name": "bash"},
                {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
            ]
        },
        {"tools": [UP_WEATHER]},
        ["tool:web_search_20250305", "tool:bash_20250124", "tool:text_editor_20250728"],
        {"get_weather": "get_weather"},
    ),
    (
        "only server tools: no tools and no tool_choice",
        {
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "any"},
        },
        {},
        ["tool:web_search_20250305"],
        {},
    ),
    (
        "tool_choice auto",
        {"tools": [WEATHER], "tool_choice": {"type": "auto"}},
        {"tools": [UP_WEATHER], "tool_choice": "auto"},
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "tool_choice any -> required",
        {"tools": [WEATHER], "tool_choice": {"type": "any"}},
        {"tools": [UP_WEATHER], "tool_choice": "required"},
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "tool_choice tool -> named function",
        {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}},
        {
            "tools": [UP_WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "tool_choice tool with a long name uses the upstream name",
        {
            "tools": [{"name": LONG_NAME, "input_schema": SCHEMA}],
            "tool_choice": {"type": "tool", "name": LONG_NAME},
        },
        {
            "tools": [
                {"type": "function", "function": {"name": LONG_NAME_UP, "parameters": SCHEMA}}
            ],
            "tool_choice": {"type": "function", "function": {"name": LONG_NAME_UP}},
        },
        [],
        {LONG_NAME_UP: LONG_NAME},
    ),
    (
        "tool_choice none",
        {"tools": [WEATHER], "tool_choice": {"type": "none"}},
        {"tools": [UP_WEATHER], "tool_choice": "none"},
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "disable_parallel_tool_use with auto",
        {"tools": [WEATHER], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        {"tools": [UP_WEATHER], "tool_choice": "auto", "parallel_tool_calls": False},
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "disable_parallel_tool_use with any",
        {"tools": [WEATHER], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
        {"tools": [UP_WEATHER], "tool_choice": "required", "parallel_tool_calls": False},
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "disable_parallel_tool_use with tool",
        {
            "tools": [WEATHER],
            "tool_choice": {
                "type": "tool",
                "name": "get_weather",
                "disable_parallel_tool_use": True,
            },
        },
        {
            "tools": [UP_WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "disable_parallel_tool_use false adds nothing",
        {"tools": [WEATHER], "tool_choice": {"type": "auto", "disable_parallel_tool_use": False}},
        {"tools": [UP_WEATHER], "tool_choice": "auto"},
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "disable_parallel_tool_use is meaningless with none",
        {"tools": [WEATHER], "tool_choice": {"type": "none", "disable_parallel_tool_use": True}},
        {"tools": [UP_WEATHER], "tool_choice": "none"},
        [],
        {"get_weather": "get_weather"},
    ),
    (
        "empty tools list",
        {"tools": []},
        {},
        [],
        {},
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected", "dropped", "tool_names"),
    [case[1:] for case in TOOL_CASES],
    ids=[case[0] for case in TOOL_CASES],
)
def test_tools(
    fields: JSON, expected: JSON, dropped: list[str], tool_names: dict[str, str]
) -> None:
    body, reported, names = convert(req(**fields))
    assert body == {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, **expected}
    assert reported == dropped
    assert names == tool_names


# -- thinking / effort / output format -------------------------------------------------------

# (id, request fields, expected extra body fields)
REASONING_CASES: list[tuple[str, JSON, JSON]] = [
    (
        "enabled with a budget",
        {"max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048}},
        {"max_tokens": 4096, "reasoning": {"max_tokens": 2048}},
    ),
    (
        "Claude Code's haiku/sonnet-4.5 shape: budget one below max_tokens",
        {"max_tokens": 32000, "thinking": {"type": "enabled", "budget_tokens": 31999}},
        {"max_tokens": 32000, "reasoning": {"max_tokens": 31999}},
    ),
    (
        "budget equal to max_tokens is clamped below it",
        {"max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 4096}},
        {"max_tokens": 4096, "reasoning": {"max_tokens": 4095}},
    ),
    (
        "budget above max_tokens is clamped below it",
        {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 50000}},
        {"max_tokens": 2000, "reasoning": {"max_tokens": 1999}},
    ),
    (
        "a clamped budget under 1024 becomes an effort",
        {"max_tokens": 1024, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"max_tokens": 1024, "reasoning": {"effort": "low"}},
    ),
    (
        "a budget under 1024 becomes an effort",
        {"max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 500}},
        {"max_tokens": 4096, "reasoning": {"effort": "low"}},
    ),
    (
        "enabled budget wins over output_config.effort",
        {
            "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "output_config": {"effort": "high"},
        },
        {"max_tokens": 4096, "reasoning": {"max_tokens": 2048}},
    ),
    (
        "enabled without a budget just enables reasoning",
        {"thinking": {"type": "enabled"}},
        {"max_tokens": 100, "reasoning": {"enabled": True}},
    ),
    (
        "adaptive without effort",
        {"thinking": {"type": "adaptive"}},
        {"max_tokens": 100, "reasoning": {"enabled": True}},
    ),
    (
        "adaptive + output_config.effort (Claude Code's opus shape)",
        {
            "max_tokens": 64000,
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"},
        },
        {"max_tokens": 64000, "reasoning": {"effort": "high"}},
    ),
    (
        "adaptive + effort max passes through (OpenRouter accepts max)",
        {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
        {"max_tokens": 100, "reasoning": {"effort": "max"}},
    ),
    (
        "display omitted -> exclude",
        {"thinking": {"type": "adaptive", "display": "omitted"}},
        {"max_tokens": 100, "reasoning": {"enabled": True, "exclude": True}},
    ),
    (
        "display omitted with a budget",
        {
            "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048, "display": "omitted"},
        },
        {"max_tokens": 4096, "reasoning": {"max_tokens": 2048, "exclude": True}},
    ),
    (
        "display summarized adds nothing",
        {"thinking": {"type": "adaptive", "display": "summarized"}},
        {"max_tokens": 100, "reasoning": {"enabled": True}},
    ),
    (
        "disabled: reasoning explicitly off",
        {"thinking": {"type": "disabled"}},
        {"max_tokens": 100, "reasoning": {"enabled": False}},
    ),
    (
        "disabled ignores output_config.effort",
        {"thinking": {"type": "disabled"}, "output_config": {"effort": "low"}},
        {"max_tokens": 100, "reasoning": {"enabled": False}},
    ),
    (
        "output_config.format json_schema -> response_format",
        {
            "output_config": {
                "format": {
                    "type": "json_schema",
                    "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
                }
            }
        },
        {
            "max_tokens": 100,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "output",
                    "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
                    "strict": True,
                },
            },
        },
    ),
    (
        "Claude Code's title request: thinking disabled + format",
        {
            "thinking": {"type": "disabled"},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        },
        {
            "max_tokens": 100,
            "reasoning": {"enabled": False},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True},
            },
        },
    ),
    (
        "beta output_format -> response_format",
        {"output_format": {"type": "json_schema", "schema": {"type": "object"}}},
        {
            "max_tokens": 100,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True},
            },
        },
    ),
    (
        "effort and format together",
        {
            "thinking": {"type": "adaptive"},
            "output_config": {
                "effort": "medium",
                "format": {"type": "json_schema", "schema": {"type": "object"}},
            },
        },
        {
            "max_tokens": 100,
            "reasoning": {"effort": "medium"},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True},
            },
        },
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [case[1:] for case in REASONING_CASES],
    ids=[case[0] for case in REASONING_CASES],
)
def test_reasoning_and_output(fields: JSON, expected: JSON) -> None:
    body, reported, _ = convert(req(**fields))
    assert body == {"model": UPSTREAM, "messages": UP_HI, **expected}
    assert reported == []


# -- cache_control, extensions, toggles, defaults, unknown fields ----------------------------

# (id, request fields, options, expected extra body fields, dropped)
EXTENSION_CASES: list[tuple[str, JSON, JSON, JSON, list[str]]] = [
    (
        "top-level cache_control kept (type/ttl only) when the target honours it",
        {"cache_control": {"type": "ephemeral", "ttl": "1h", "scope": "global"}},
        {"cache_control": True},
        {"cache_control": {"type": "ephemeral", "ttl": "1h"}},
        [],
    ),
    (
        "top-level cache_control dropped and reported otherwise",
        {"cache_control": {"type": "ephemeral"}},
        {},
        {},
        ["cache_control"],
    ),
    (
        "OpenRouter fields are forwarded",
        {
            "provider": {"order": ["anthropic"], "allow_fallbacks": False},
            "models": ["a/b", "c/d"],
            "plugins": [{"id": "file-parser", "pdf": {"engine": "native"}}],
            "session_id": "s-1",
            "min_p": 0.1,
            "top_a": 0.2,
            "repetition_penalty": 1.1,
            "transforms": ["middle-out"],
            "route": "fallback",
            "prompt_cache_key": "k",
            "verbosity": "low",
        },
        {},
        {
            "provider": {"order": ["anthropic"], "allow_fallbacks": False},
            "models": ["a/b", "c/d"],
            "plugins": [{"id": "file-parser", "pdf": {"engine": "native"}}],
            "session_id": "s-1",
            "min_p": 0.1,
            "top_a": 0.2,
            "repetition_penalty": 1.1,
            "transforms": ["middle-out"],
            "route": "fallback",
            "prompt_cache_key": "k",
            "verbosity": "low",
        },
        [],
    ),
    (
        "OpenAI fields are forwarded",
        {
            "frequency_penalty": 0.5,
            "presence_penalty": -0.5,
            "seed": 7,
            "logit_bias": {"50256": -100},
            "logprobs": True,
            "top_logprobs": 3,
            "parallel_tool_calls": False,
            "n": 1,
        },
        {},
        {
            "frequency_penalty": 0.5,
            "presence_penalty": -0.5,
            "seed": 7,
            "logit_bias": {"50256": -100},
            "logprobs": True,
            "top_logprobs": 3,
            "parallel_tool_calls": False,
            "n": 1,
        },
        [],
    ),
    (
        "OpenRouter fields off: dropped and reported",
        {"provider": {"order": ["x"]}, "min_p": 0.1, "seed": 3},
        {"openrouter_fields": False},
        {"seed": 3},
        ["field:provider", "field:min_p"],
    ),
    (
        "OpenAI fields off: dropped and reported",
        {"seed": 3, "frequency_penalty": 0.1, "min_p": 0.1},
        {"openai_fields": False},
        {"min_p": 0.1},
        ["field:seed", "field:frequency_penalty"],
    ),
    (
        "Anthropic-only fields are reported by name",
        {
            "service_tier": "auto",
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "container": "c-1",
            "mcp_servers": [],
            "inference_geo": "us",
        },
        {},
        {},
        ["service_tier", "context_management", "container", "mcp_servers", "inference_geo"],
    ),
    (
        "unknown fields are reported",
        {"foo": 1, "stream_options": {"include_usage": True}},
        {},
        {},
        ["field:foo", "field:stream_options"],
    ),
    (
        "defaults fill gaps",
        {},
        {"defaults": {"min_p": 0.05, "provider": {"sort": "price"}}},
        {"min_p": 0.05, "provider": {"sort": "price"}},
        [],
    ),
    (
        "defaults never override the client's values",
        {"temperature": 0.2, "min_p": 0.3, "provider": {"order": ["a"]}},
        {"defaults": {"temperature": 0.9, "min_p": 0.05, "provider": {"sort": "price"}}},
        {"temperature": 0.2, "min_p": 0.3, "provider": {"order": ["a"]}},
        [],
    ),
    (
        "defaults never override converted fields",
        {"stop_sequences": ["END"], "thinking": {"type": "adaptive"}},
        {"defaults": {"stop": ["X"], "reasoning": {"effort": "low"}}},
        {"stop": ["END"], "reasoning": {"enabled": True}},
        [],
    ),
]


@pytest.mark.parametrize(
    ("fields", "options", "expected", "dropped"),
    [case[1:] for case in EXTENSION_CASES],
    ids=[case[0] for case in EXTENSION_CASES],
)
def test_extensions(fields: JSON, options: JSON, expected: JSON, dropped: list[str]) -> None:
    body, reported, _ = convert(req(**fields), **options)
    assert body == {"model": UPSTREAM, "messages": UP_HI, "max_tokens": 100, **expected}
    assert reported == dropped


def test_claude_code_request_shape() -> None:
    """The top-level keys Claude Code 2.1.197 sends, end to end."""
    request = {
        "model": "claude-opus-4-8",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>date</system-reminder>"},
                    {"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.abc;"},
            {
                "type": "text",
                "text": "You are a Claude agent.",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "tools": [{"name": "Bash", "description": "Run", "input_schema": SCHEMA}],
        "metadata": {"user_id": CLAUDE_CODE_USER},
        "max_tokens": 64000,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "stream": True,
    }
    body, reported, names = convert(request, cache_control=True)
    assert body == {
        "model": UPSTREAM,
        "messages": [
            {
                "role": "system",
                "content": [
                    {
                        "type": "text",
                        "text": "x-anthropic-billing-header: cc_version=2.1.197.abc;",
                    },
                    {
                        "type": "text",
                        "text": "You are a Claude agent.",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>date</system-reminder>"},
                    {"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}},
                ],
            },
        ],
        "max_tokens": 64000,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": CLAUDE_CODE_USER,
        "tools": [
            {
                "type": "function",
                "function": {"name": "Bash", "parameters": SCHEMA, "description": "Run"},
            }
        ],
        "reasoning": {"effort": "high"},
    }
    assert reported == ["context_management"]
    assert names == {"Bash": "Bash"}


def test_request_is_not_mutated() -> None:
    request = req(
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        tools=[WEATHER],
        stop_sequences=["a", "b", "c", "d", "e"],
    )
    snapshot = repr(request)
    convert(request, cache_control=True)
    assert repr(request) == snapshot
