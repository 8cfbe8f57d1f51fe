"""Local OpenAI-compatible servers (llama.cpp, llama-cpp-python, vLLM, Ollama, LM Studio, and
an unknown one): each server profile as data, and the request shapes it produces. Literal
Anthropic requests in, literal upstream bodies and reports out."""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.options import RequestOptions
from anthropic_router.convert.profiles import (
    SERVER_RULES,
    TOOL_CHOICE_FORMS,
    Capabilities,
    check_overrides,
    profile_for,
    server_name,
)
from anthropic_router.convert.request import to_openai_request

JSON = dict[str, Any]

SERVERS = ("generic", "llama-cpp-python", "llama.cpp", "vllm", "ollama", "lmstudio")
# What every openai_compatible target has, whatever the server (BACKEND_RULES).
BACKEND = {"pdf": False, "openrouter_fields": False, "reasoning_style": "effort"}

# (server, the fields that differ from Capabilities() besides BACKEND)
PROFILES: list[tuple[str, JSON]] = [
    ("generic", {"assistant_tool_content": "empty", "flatten_text": True}),
    (
        "llama-cpp-python",
        {
            "assistant_tool_content": "empty",
            "flatten_text": True,
            "tool_choice_forms": frozenset({"auto", "none", "function"}),
            "stream_usage": "never",
            "stream_auto_tools": False,
            "reasoning_style": "none",
            "vision": False,
            "request_id_format": "uuid",
        },
    ),
    (
        "llama.cpp",
        {"tool_choice_forms": frozenset({"auto", "none", "required"}), "reasoning_echo": True},
    ),
    ("vllm", {}),
    ("ollama", {"assistant_tool_content": "empty", "tool_choice_forms": frozenset({"auto"})}),
    (
        "lmstudio",
        {
            "assistant_tool_content": "empty",
            "tool_choice_forms": frozenset({"auto", "none", "required"}),
        },
    ),
]


@pytest.mark.parametrize(("server", "differences"), PROFILES)
def test_server_profile_table(server: str, differences: JSON) -> None:
    expected = Capabilities(**{**BACKEND, **differences})
    assert profile_for("qwen2.5-coder:7b", "openai_compatible", server=server) == expected


def test_every_server_has_a_row() -> None:
    assert {row[0] for row in PROFILES} == set(SERVER_RULES) == set(SERVERS)


def test_no_server_is_the_generic_profile() -> None:
    assert profile_for("m", "openai_compatible") == profile_for(
        "m", "openai_compatible", {}, "generic"
    )


def test_local_servers_keep_max_tokens_for_openai_family_names() -> None:
    # A local model named like an OpenAI reasoning model: local servers only read max_tokens
    # (llama-cpp-python ignores max_completion_tokens, so the answer would be unbounded).
    assert (
        profile_for(
            "o3-mini-distill", "openai_compatible", server="llama-cpp-python"
        ).max_tokens_field
        == "max_tokens"
    )
    assert profile_for("o3-mini", "openai_compatible").max_tokens_field == "max_completion_tokens"


def test_route_capabilities_override_the_server_profile() -> None:
    caps = profile_for(
        "m",
        "openai_compatible",
        {"assistant_tool_content": "omit", "vision": True},
        "llama-cpp-python",
    )
    assert caps.assistant_tool_content == "omit" and caps.vision is True
    assert caps.stream_usage == "never"  # the rest of the profile stays


def test_the_server_profile_only_applies_to_openai_compatible() -> None:
    assert profile_for("m", "openrouter", server="llama-cpp-python") == profile_for(
        "m", "openrouter"
    )


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("llama.cpp", "llama.cpp"),
        ("llamacpp", "llama.cpp"),
        ("llama-server", "llama.cpp"),
        ("llama_cpp_python", "llama-cpp-python"),
        (" vLLM ", "vllm"),
        ("Ollama", "ollama"),
        ("lm-studio", "lmstudio"),
        ("LM_Studio", "lmstudio"),
        ("unknown", "generic"),
    ],
)
def test_server_names_and_aliases(value: str, name: str) -> None:
    assert server_name(value) == name


def test_an_unknown_server_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown local server 'tgi' \(one of: generic, "):
        server_name("tgi")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"assistant_tool_content": "omit"}, {"assistant_tool_content": "omit"}),
        ({"flatten_text": False}, {"flatten_text": False}),
        ({"stream_usage": "always"}, {"stream_usage": "always"}),
        ({"stream_auto_tools": False}, {"stream_auto_tools": False}),
        (
            {"tool_choice_forms": ["auto", "function"]},
            {"tool_choice_forms": frozenset({"auto", "function"})},
        ),
    ],
)
def test_new_capabilities_can_be_overridden(overrides: JSON, expected: JSON) -> None:
    assert check_overrides(overrides) == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"assistant_tool_content": None}, "must be one of: null, empty, omit"),
        ({"stream_usage": "sometimes"}, "must be one of: include_usage, always, never"),
        (
            {"tool_choice_forms": ["auto", "any"]},
            "must be a list of: auto, function, none, required",
        ),
        ({"tool_choice_forms": "auto"}, "must be a list of"),
        ({"flatten_text": "yes"}, "must be true or false"),
    ],
)
def test_bad_new_capabilities_name_the_key(overrides: JSON, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_overrides(overrides)


# -- request shapes --------------------------------------------------------------------------

READ = {
    "name": "Read",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}
BASH = {
    "name": "Bash",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}
UP_READ = {"type": "function", "function": {"name": "Read", "parameters": READ["input_schema"]}}
UP_BASH = {"type": "function", "function": {"name": "Bash", "parameters": BASH["input_schema"]}}
CALL = {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a.txt"}}
UP_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "Read", "arguments": '{"path":"a.txt"}'},
}
# A Claude Code tool loop: a reminder block and the prompt, the call, its result, more text.
LOOP = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "<system-reminder>be brief</system-reminder>"},
            {"type": "text", "text": "read a.txt"},
        ],
    },
    {"role": "assistant", "content": [CALL]},
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "hello"}],
    },
]
PARTS = [
    {"type": "text", "text": "<system-reminder>be brief</system-reminder>"},
    {"type": "text", "text": "read a.txt"},
]
FLAT = "<system-reminder>be brief</system-reminder>\n\nread a.txt"
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "hello"}


def convert(request: JSON, server: str, model: str = "qwen2.5-coder") -> tuple[JSON, list[str]]:
    caps = profile_for(model, "openai_compatible", server=server)
    options = RequestOptions(upstream_model=model, openrouter_fields=False, capabilities=caps)
    conversion = to_openai_request(
        {"model": "claude-sonnet-4-5", "max_tokens": 64, **request}, options
    )
    return conversion.body, conversion.report.dropped_names


# (server, the assistant tool-call turn as sent, the first user turn's content)
HISTORY: list[tuple[str, JSON, Any]] = [
    ("generic", {"role": "assistant", "content": "", "tool_calls": [UP_CALL]}, FLAT),
    ("llama-cpp-python", {"role": "assistant", "content": "", "tool_calls": [UP_CALL]}, FLAT),
    ("llama.cpp", {"role": "assistant", "content": None, "tool_calls": [UP_CALL]}, PARTS),
    ("vllm", {"role": "assistant", "content": None, "tool_calls": [UP_CALL]}, PARTS),
    ("ollama", {"role": "assistant", "content": "", "tool_calls": [UP_CALL]}, PARTS),
    ("lmstudio", {"role": "assistant", "content": "", "tool_calls": [UP_CALL]}, PARTS),
]


@pytest.mark.parametrize(("server", "assistant", "first_user"), HISTORY)
def test_tool_loop_history_per_server(server: str, assistant: JSON, first_user: Any) -> None:
    body, dropped = convert({"messages": LOOP, "tools": [READ]}, server)
    assert body["messages"] == [
        {"role": "user", "content": first_user},
        assistant,
        RESULT,
    ]
    assert dropped == []


def test_omitted_content_leaves_the_key_out() -> None:
    caps = profile_for("m", "openai_compatible", {"assistant_tool_content": "omit"}, "generic")
    conversion = to_openai_request(
        {"model": "x", "max_tokens": 8, "messages": LOOP, "tools": [READ]},
        RequestOptions(upstream_model="m", openrouter_fields=False, capabilities=caps),
    )
    assert conversion.body["messages"][1] == {"role": "assistant", "tool_calls": [UP_CALL]}


@pytest.mark.parametrize("server", ["generic", "llama-cpp-python"])
def test_flattening_keeps_parts_where_they_mean_something(server: str) -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    body, _ = convert(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]},
        server,
    )
    content = body["messages"][0]["content"]
    if profile_for("m", "openai_compatible", server=server).vision:
        assert content == [
            {"type": "text", "text": "what?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ]
    else:  # images are a text placeholder there, so the whole turn is text again
        assert isinstance(content, str) and content.startswith("what?\n\n[Image")


ANY = {"type": "any"}
NAMED = {"type": "tool", "name": "Read"}
NONE = {"type": "none"}
AUTO = {"type": "auto"}
FN_READ = {"type": "function", "function": {"name": "Read"}}
FN_BASH = {"type": "function", "function": {"name": "Bash"}}

# (server, tools, Anthropic tool_choice, expected tools sent, expected tool_choice, dropped)
TOOL_CHOICES: list[tuple[str, list[JSON], JSON, list[JSON] | None, Any, list[str]]] = [
    ("generic", [READ, BASH], NAMED, [UP_READ, UP_BASH], FN_READ, []),
    ("generic", [READ, BASH], ANY, [UP_READ, UP_BASH], "required", []),
    # llama-cpp-python asserts on "required": one tool is that tool by name...
    ("llama-cpp-python", [BASH], ANY, [UP_BASH], FN_BASH, []),
    # ...several cannot be forced there, so auto is what it gets, reported.
    ("llama-cpp-python", [READ, BASH], ANY, [UP_READ, UP_BASH], None, ["tool_choice"]),
    ("llama-cpp-python", [READ, BASH], NAMED, [UP_READ, UP_BASH], FN_READ, []),
    ("llama-cpp-python", [READ, BASH], NONE, [UP_READ, UP_BASH], "none", []),
    # llama.cpp reads a tool_choice object as "auto": "required" with only that tool.
    ("llama.cpp", [READ, BASH], NAMED, [UP_READ], "required", []),
    ("llama.cpp", [READ, BASH], ANY, [UP_READ, UP_BASH], "required", []),
    ("vllm", [READ, BASH], NAMED, [UP_READ, UP_BASH], FN_READ, []),
    ("lmstudio", [READ, BASH], NAMED, [UP_READ], "required", []),
    # Ollama ignores tool_choice: "none" is no tools, a forced call cannot be had.
    ("ollama", [READ, BASH], NONE, None, None, []),
    ("ollama", [READ, BASH], NAMED, [UP_READ, UP_BASH], None, ["tool_choice"]),
    ("ollama", [READ, BASH], ANY, [UP_READ, UP_BASH], None, ["tool_choice"]),
    ("ollama", [READ, BASH], AUTO, [UP_READ, UP_BASH], "auto", []),
]


@pytest.mark.parametrize(
    ("server", "tools", "choice", "sent_tools", "sent_choice", "dropped"), TOOL_CHOICES
)
def test_tool_choice_per_server(
    server: str,
    tools: list[JSON],
    choice: JSON,
    sent_tools: list[JSON] | None,
    sent_choice: Any,
    dropped: list[str],
) -> None:
    body, reported = convert(
        {"messages": [{"role": "user", "content": "go"}], "tools": tools, "tool_choice": choice},
        server,
    )
    assert body.get("tools") == sent_tools
    assert body.get("tool_choice") == sent_choice
    assert reported == dropped


def test_tool_choice_forms_cover_every_anthropic_choice() -> None:
    assert {"auto", "none", "required", "function"} == TOOL_CHOICE_FORMS


def test_parallel_tool_calls_go_with_the_tools_when_none_drops_them() -> None:
    choice = {"type": "none", "disable_parallel_tool_use": True}
    body, _ = convert(
        {"messages": [{"role": "user", "content": "go"}], "tools": [READ], "tool_choice": choice},
        "ollama",
    )
    assert "tools" not in body and "parallel_tool_calls" not in body


# (server, tools in the request, tool_choice, expected stream fields)
STREAMS: list[tuple[str, bool, JSON | None, JSON]] = [
    ("generic", False, None, {"stream": True, "stream_options": {"include_usage": True}}),
    ("vllm", True, None, {"stream": True, "stream_options": {"include_usage": True}}),
    ("llama.cpp", True, None, {"stream": True, "stream_options": {"include_usage": True}}),
    ("ollama", True, None, {"stream": True, "stream_options": {"include_usage": True}}),
    ("lmstudio", False, None, {"stream": True, "stream_options": {"include_usage": True}}),
    # llama-cpp-python never sends streamed usage: no stream_options asked...
    ("llama-cpp-python", False, None, {"stream": True}),
    # ...cannot stream an automatic tool call: unstreamed, the relay replays it as SSE...
    ("llama-cpp-python", True, None, {}),
    ("llama-cpp-python", True, AUTO, {}),
    # ...but streams a forced one.
    ("llama-cpp-python", True, NAMED, {"stream": True}),
]


@pytest.mark.parametrize(("server", "with_tools", "choice", "expected"), STREAMS)
def test_stream_fields_per_server(
    server: str, with_tools: bool, choice: JSON | None, expected: JSON
) -> None:
    request: JSON = {"messages": [{"role": "user", "content": "go"}], "stream": True}
    if with_tools:
        request["tools"] = [READ]
    if choice:
        request["tool_choice"] = choice
    body, _ = convert(request, server)
    assert {k: v for k, v in body.items() if k.startswith("stream")} == expected


def test_stream_usage_always_asks_for_nothing() -> None:
    caps = profile_for("m", "openai_compatible", {"stream_usage": "always"}, "generic")
    conversion = to_openai_request(
        {
            "model": "x",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "go"}],
            "stream": True,
        },
        RequestOptions(upstream_model="m", openrouter_fields=False, capabilities=caps),
    )
    assert conversion.body["stream"] is True and "stream_options" not in conversion.body


@pytest.mark.parametrize("server", SERVERS)
def test_max_tokens_field_per_server(server: str) -> None:
    body, _ = convert({"messages": [{"role": "user", "content": "go"}]}, server, model="o4-mini")
    field = "max_completion_tokens" if server == "generic" else "max_tokens"
    assert body[field] == 64


@pytest.mark.parametrize(
    ("server", "history_field", "dropped"),
    [
        ("llama.cpp", "reasoning_content", []),
        ("vllm", None, ["thinking:history"]),
        ("llama-cpp-python", None, ["thinking:history", "thinking"]),
    ],
)
def test_thinking_per_server(server: str, history_field: str | None, dropped: list[str]) -> None:
    thinking = {"type": "thinking", "thinking": "plan", "signature": ""}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [thinking, CALL]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "x"}],
        },
    ]
    body, reported = convert(
        {
            "messages": messages,
            "tools": [READ],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
        },
        server,
    )
    assistant = body["messages"][1]
    if history_field:
        assert assistant[history_field] == "plan"
    assert ("reasoning_effort" in body) is (server != "llama-cpp-python")
    assert reported == dropped
