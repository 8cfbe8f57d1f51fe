"""Capability profiles: the table of what each model family and backend accepts, and what the
conversion does with it. Literal requests in, literal upstream bodies and reports out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from anthropic_router.convert.options import RequestOptions
from anthropic_router.convert.profiles import Capabilities, check_overrides, profile_for
from anthropic_router.convert.request import to_openai_request

JSON = dict[str, Any]

HI = [{"role": "user", "content": "hi"}]
SAMPLING = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
# What an OpenAI-compatible server of unknown kind gets (SERVER_RULES["generic"]).
GENERIC = {"assistant_tool_content": "empty", "flatten_text": True}


# (model, backend, the fields that differ from Capabilities())
PROFILES: list[tuple[str, str, JSON]] = [
    ("meta-llama/llama-3.3-70b-instruct", "openrouter", {}),
    (
        "anthropic/claude-sonnet-4.5",
        "openrouter",
        {"cache_control": True, "signed_thinking_only": True, "context_window": 200_000},
    ),
    (
        "google/gemini-2.5-pro",
        "openrouter",
        {"schema_dialect": "gemini", "cache_control": True, "context_window": 1_048_576},
    ),
    (
        "openai/o3-mini",
        "openrouter",
        {
            "max_tokens_field": "max_completion_tokens",
            "rejected_params": SAMPLING | {"logprobs", "top_logprobs", "logit_bias"},
            "context_window": 200_000,
        },
    ),
    (
        "o4-mini",
        "openai_compatible",
        {
            "max_tokens_field": "max_completion_tokens",
            "rejected_params": SAMPLING | {"logprobs", "top_logprobs", "logit_bias"},
            "context_window": 200_000,
            "pdf": False,
            "openrouter_fields": False,
            "reasoning_style": "effort",
            **GENERIC,
        },
    ),
    (
        "openai/gpt-5",
        "openrouter",
        {
            "max_tokens_field": "max_completion_tokens",
            "rejected_params": SAMPLING,
            "context_window": 400_000,
        },
    ),
    ("openai/gpt-4o", "openrouter", {"context_window": 128_000}),
    (
        "deepseek/deepseek-reasoner",
        "openrouter",
        {
            "tool_choice": False,
            "rejected_params": SAMPLING | {"logprobs", "top_logprobs"},
            "vision": False,
            "context_window": 128_000,
        },
    ),
    (
        "deepseek-reasoner",
        "openai_compatible",
        {
            "tool_choice": False,
            "rejected_params": SAMPLING | {"logprobs", "top_logprobs"},
            "vision": False,
            "context_window": 128_000,
            "reasoning_echo": True,
            "pdf": False,
            "openrouter_fields": False,
            "reasoning_style": "effort",
            **GENERIC,
        },
    ),
    (
        "moonshotai/kimi-k2-thinking",
        "litellm",
        {
            "reasoning_echo": True,
            "context_window": 262_144,
            "pdf": False,
            "openrouter_fields": False,
            "reasoning_style": "effort",
        },
    ),
    (
        "databricks-claude-sonnet-4-5",
        "databricks",
        {
            "cache_control": True,
            "signed_thinking_only": True,
            "context_window": 200_000,
            "pdf": False,
            "openrouter_fields": False,
            "reasoning_style": "anthropic",
        },
    ),
    (
        "databricks-gpt-oss-120b",
        "databricks",
        {"pdf": False, "openrouter_fields": False, "reasoning_style": "effort"},
    ),
    (
        "gemini/gemini-2.0-flash",
        "litellm",
        {
            "schema_dialect": "gemini",
            "cache_control": True,
            "context_window": 1_048_576,
            "pdf": False,
            "openrouter_fields": False,
            "reasoning_style": "effort",
        },
    ),
    (
        "openrouter/anthropic/claude-haiku-4.5",
        "litellm",
        {"cache_control": True, "signed_thinking_only": True, "context_window": 200_000},
    ),
    (
        "llama3.1:8b",
        "openai_compatible",
        {"pdf": False, "openrouter_fields": False, "reasoning_style": "effort", **GENERIC},
    ),
]


@pytest.mark.parametrize(("model", "backend", "differences"), PROFILES)
def test_profile_table(model: str, backend: str, differences: JSON) -> None:
    assert profile_for(model, backend) == replace(Capabilities(), **differences)


def test_route_overrides_come_last() -> None:
    caps = profile_for("google/gemini-2.5-pro", "openrouter", {"schema_dialect": "json-schema"})
    assert caps.schema_dialect == "json-schema" and caps.cache_control is True


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"vision": False}, {"vision": False}),
        ({"rejected_params": ["temperature"]}, {"rejected_params": frozenset({"temperature"})}),
        ({"context_window": 8192}, {"context_window": 8192}),
        (
            {"max_tokens_field": "max_completion_tokens"},
            {"max_tokens_field": "max_completion_tokens"},
        ),
    ],
)
def test_overrides_are_checked(overrides: JSON, expected: JSON) -> None:
    assert check_overrides(overrides) == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": True}, "unknown capability 'colour'"),
        ({"vision": "no"}, "'vision' must be true or false"),
        ({"rejected_params": "temperature"}, "must be a list"),
        ({"context_window": "big"}, "must be an integer"),
        ({"reasoning_style": "loud"}, "must be one of"),
    ],
)
def test_bad_overrides_name_the_key(overrides: JSON, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_overrides(overrides)


def convert(request: JSON, model: str, backend: str) -> tuple[JSON, list[str]]:
    caps = profile_for(model, backend)
    options = RequestOptions(
        upstream_model=model,
        cache_control=caps.cache_control,
        signed_thinking_only=caps.signed_thinking_only,
        openrouter_fields=caps.openrouter_fields,
        capabilities=caps,
    )
    conversion = to_openai_request(request, options)
    return conversion.body, conversion.report.dropped_names


def req(**fields: Any) -> JSON:
    return {"model": "claude-x", "max_tokens": 100, "messages": HI, **fields}


TOOL = {"name": "Read", "input_schema": {"type": "object", "properties": {}}}
OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "Read", "parameters": {"type": "object", "properties": {}}},
}
PDF = {
    "type": "document",
    "title": "report.pdf",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
}
PNG = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
}
SIGNED = {"type": "thinking", "thinking": "plan", "signature": "sig-1"}
CALL = {"type": "tool_use", "id": "call_1", "name": "Read", "input": {}}
UP_CALL = {"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
RESULT = {"type": "tool_result", "tool_use_id": "call_1", "content": "data"}
HISTORY = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": [SIGNED, CALL]},
    {"role": "user", "content": [RESULT]},
]


# (id, request, model, backend, expected body, expected dropped)
CASES: list[tuple[str, JSON, str, str, JSON, list[str]]] = [
    (
        "o-series: max_completion_tokens, temperature dropped and reported",
        req(temperature=0.2, top_p=0.9),
        "openai/o3",
        "openrouter",
        {"model": "openai/o3", "messages": HI, "max_completion_tokens": 100},
        ["param:temperature", "param:top_p"],
    ),
    (
        "deepseek-reasoner: tool_choice any dropped and reported",
        req(tools=[TOOL], tool_choice={"type": "any"}),
        "deepseek-reasoner",
        "openai_compatible",
        {"model": "deepseek-reasoner", "messages": HI, "max_tokens": 100, "tools": [OPENAI_TOOL]},
        ["tool_choice"],
    ),
    (
        "tool_choice auto is not worth a report",
        req(tools=[TOOL], tool_choice={"type": "auto"}),
        "deepseek-reasoner",
        "openai_compatible",
        {"model": "deepseek-reasoner", "messages": HI, "max_tokens": 100, "tools": [OPENAI_TOOL]},
        [],
    ),
    (
        "no vision: images become a placeholder",
        req(messages=[{"role": "user", "content": [PNG, {"type": "text", "text": "what?"}]}]),
        "deepseek-chat",
        "openai_compatible",
        {
            "model": "deepseek-chat",
            "messages": [
                {
                    "role": "user",
                    # text-only parts go as one string to an unknown local server
                    "content": "[Image content could not be processed: the upstream model "
                    "does not accept images]\n\nwhat?",
                }
            ],
            "max_tokens": 100,
        },
        ["image"],
    ),
    (
        "PDF as an OpenRouter file part",
        req(messages=[{"role": "user", "content": [PDF, {"type": "text", "text": "sum up"}]}]),
        "anthropic/claude-sonnet-4.5",
        "openrouter",
        {
            "model": "anthropic/claude-sonnet-4.5",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {
                                "filename": "report.pdf",
                                "file_data": "data:application/pdf;base64,JVBERi0x",
                            },
                        },
                        {"type": "text", "text": "sum up"},
                    ],
                }
            ],
            "max_tokens": 100,
        },
        [],
    ),
    (
        "PDF where files are not taken: placeholder, reported",
        req(messages=[{"role": "user", "content": [PDF, {"type": "text", "text": "sum up"}]}]),
        "llama3",
        "openai_compatible",
        {
            "model": "llama3",
            "messages": [
                {
                    "role": "user",
                    "content": "[PDF document 'report.pdf' omitted: the upstream model "
                    "does not accept files]\n\nsum up",
                }
            ],
            "max_tokens": 100,
        },
        ["document:pdf"],
    ),
    (
        "thinking as OpenRouter reasoning",
        req(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2048}),
        "anthropic/claude-sonnet-4.5",
        "openrouter",
        {
            "model": "anthropic/claude-sonnet-4.5",
            "messages": HI,
            "max_tokens": 4000,
            "reasoning": {"max_tokens": 2048},
        },
        [],
    ),
    (
        "thinking as Anthropic thinking for Claude on Databricks (budget below max_tokens)",
        req(thinking={"type": "enabled", "budget_tokens": 2048, "display": "omitted"}),
        "databricks-claude-sonnet-4-5",
        "databricks",
        {
            "model": "databricks-claude-sonnet-4-5",
            "messages": HI,
            "max_tokens": 100,
            "thinking": {"type": "enabled", "budget_tokens": 99},
        },
        ["thinking.display"],
    ),
    (
        "thinking as reasoning_effort from the budget",
        req(max_tokens=30000, thinking={"type": "enabled", "budget_tokens": 20000}),
        "databricks-gpt-oss-120b",
        "databricks",
        {
            "model": "databricks-gpt-oss-120b",
            "messages": HI,
            "max_tokens": 30000,
            "reasoning_effort": "high",
        },
        [],
    ),
    (
        "thinking as reasoning_effort from output_config.effort",
        req(thinking={"type": "adaptive"}, output_config={"effort": "low"}),
        "qwen3",
        "openai_compatible",
        {"model": "qwen3", "messages": HI, "max_tokens": 100, "reasoning_effort": "low"},
        [],
    ),
    (
        "thinking disabled sends nothing where there is no off switch",
        req(thinking={"type": "disabled"}),
        "qwen3",
        "openai_compatible",
        {"model": "qwen3", "messages": HI, "max_tokens": 100},
        [],
    ),
    (
        "OpenRouter fields dropped and reported off OpenRouter",
        req(min_p=0.1, provider={"order": ["x"]}, seed=7),
        "llama3",
        "openai_compatible",
        {"model": "llama3", "messages": HI, "max_tokens": 100, "seed": 7},
        ["field:min_p", "field:provider"],
    ),
    (
        "cache_control dropped and reported where not honoured",
        req(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
                    ],
                }
            ]
        ),
        "llama3",
        "openai_compatible",
        {
            "model": "llama3",
            "messages": HI,  # a lone text part is sent as a plain string
            "max_tokens": 100,
        },
        ["cache_control"],
    ),
]


@pytest.mark.parametrize(
    ("request_body", "model", "backend", "expected", "dropped"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_profile_shapes_the_request(
    request_body: JSON, model: str, backend: str, expected: JSON, dropped: list[str]
) -> None:
    body, reported = convert(request_body, model, backend)
    assert body == expected
    assert reported == dropped


# Thinking history per dialect: (model, backend, expected assistant message, dropped)
HISTORY_CASES: list[tuple[str, str, JSON, list[str]]] = [
    (
        "anthropic/claude-sonnet-4.5",
        "openrouter",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [UP_CALL],
            "reasoning_details": [
                {
                    "type": "reasoning.text",
                    "text": "plan",
                    "index": 0,
                    "signature": "sig-1",
                    "format": "anthropic-claude-v1",
                }
            ],
        },
        [],
    ),
    (
        "databricks-claude-sonnet-4-5",
        "databricks",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [UP_CALL],
            "thinking_blocks": [{"type": "thinking", "thinking": "plan", "signature": "sig-1"}],
        },
        [],
    ),
    (
        "deepseek-reasoner",
        "openai_compatible",
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [UP_CALL],
            "reasoning_content": "plan",
        },
        [],
    ),
    (
        "llama3",
        "openai_compatible",
        {"role": "assistant", "content": "", "tool_calls": [UP_CALL]},
        ["thinking:history"],
    ),
]


@pytest.mark.parametrize(("model", "backend", "assistant", "dropped"), HISTORY_CASES)
def test_thinking_history_in_each_dialect(
    model: str, backend: str, assistant: JSON, dropped: list[str]
) -> None:
    body, reported = convert(req(messages=HISTORY), model, backend)
    assert body["messages"][1] == assistant
    assert reported == dropped


def test_gemini_tool_schemas_are_cleaned_and_reported() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"path": {"type": "string", "format": "uri"}},
        "required": ["path"],
        "additionalProperties": False,
    }
    tool = {"name": "Read", "input_schema": schema}
    body, reported = convert(req(tools=[tool]), "google/gemini-2.5-pro", "openrouter")
    assert body["tools"][0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
    }
    assert reported == ["schema:$schema", "schema:additionalProperties", "schema:format:uri"]
    # The same tool to a non-Gemini model goes untouched.
    body, reported = convert(req(tools=[tool]), "anthropic/claude-sonnet-4.5", "openrouter")
    assert body["tools"][0]["function"]["parameters"] == schema and reported == []


def test_gemini_tool_without_schema_gets_no_empty_properties() -> None:
    tool = {"name": "Ping"}
    body, reported = convert(req(tools=[tool]), "google/gemini-2.5-pro", "openrouter")
    assert body["tools"][0]["function"]["parameters"] == {"type": "object"} and reported == []
    body, _ = convert(req(tools=[tool]), "openai/gpt-4o", "openrouter")
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
