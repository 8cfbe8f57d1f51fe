"""Capability profiles: what an upstream model accepts, as data chosen by model family and
backend, then overridden per route from the routing file.

A profile never decides *whether* to serve a request; it decides how to shape it so the
upstream accepts it, and the conversion reports everything it had to drop or approximate.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

ReasoningStyle = Literal["openrouter", "anthropic", "effort", "none"]
SchemaDialect = Literal["json-schema", "gemini"]
AssistantToolContent = Literal["null", "empty", "omit"]
StreamUsage = Literal["include_usage", "always", "never"]
RequestIdFormat = Literal["router", "uuid"]

# OpenAI `tool_choice` forms: the strings, and "function" for `{"type":"function",...}`.
TOOL_CHOICE_FORMS = frozenset({"auto", "none", "required", "function"})


@dataclass(frozen=True, slots=True)
class Capabilities:
    """`max_tokens_field`: OpenAI reasoning models take `max_completion_tokens`.
    `rejected_params`: body fields the model refuses (dropped and reported).
    `reasoning_style`: how Anthropic `thinking` is expressed (OpenRouter `reasoning`, Anthropic
    `thinking` passed through, OpenAI `reasoning_effort`, or not at all).
    `reasoning_echo`: thinking history goes back as `reasoning_content` (DeepSeek and Kimi
    reject a tool-call turn whose reasoning is missing).
    `schema_dialect`: `gemini` cleans tool schemas to Gemini's OpenAPI subset.
    `pdf`: documents go as OpenRouter `file` parts; else they are dropped and reported.
    `assistant_tool_content`: `content` of an assistant turn that only calls tools: `null`
    (OpenAI's spelling), `""` ("empty"), or left out ("omit"); local servers differ.
    `flatten_text`: user content that is only text goes as one string, not parts (chat
    templates that expect strings print a list's repr into the prompt).
    `tool_choice_forms`: the `tool_choice` forms the server honours (see `TOOL_CHOICE_FORMS`).
    `stream_usage`: how a stream reports usage: when asked with `stream_options.include_usage`,
    "always" unasked, or "never" (the router then estimates it).
    `stream_auto_tools`: False when the server cannot stream an answer to tools with
    `tool_choice` auto; such requests go unstreamed and are replayed to the client as SSE.
    `request_id_format`: the `x-request-id` sent upstream: the router's own id, or the same
    hex digits as a UUID (llama-cpp-python answers 400 to anything that is not a UUID).
    """

    max_tokens_field: str = "max_tokens"
    rejected_params: frozenset[str] = frozenset()
    tool_choice: bool = True
    vision: bool = True
    pdf: bool = True
    context_window: int | None = None
    reasoning_style: ReasoningStyle = "openrouter"
    reasoning_echo: bool = False
    schema_dialect: SchemaDialect = "json-schema"
    cache_control: bool = False
    signed_thinking_only: bool = False
    openrouter_fields: bool = True
    assistant_tool_content: AssistantToolContent = "null"
    flatten_text: bool = False
    tool_choice_forms: frozenset[str] = TOOL_CHOICE_FORMS
    stream_usage: StreamUsage = "include_usage"
    stream_auto_tools: bool = True
    request_id_format: RequestIdFormat = "router"


_SAMPLING = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})

# (glob on the lower-cased upstream model, overrides), applied in order: later rules win.
FAMILY_RULES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("*claude*", {"cache_control": True, "signed_thinking_only": True, "context_window": 200_000}),
    ("*gemini*", {"schema_dialect": "gemini", "cache_control": True, "context_window": 1_048_576}),
    ("*gpt-4o*", {"context_window": 128_000}),
    ("*gpt-4.1*", {"context_window": 1_047_576}),
    (
        "*gpt-5*",
        {
            "max_tokens_field": "max_completion_tokens",
            "rejected_params": _SAMPLING,
            "context_window": 400_000,
        },
    ),
    *(
        (
            pattern,
            {
                "max_tokens_field": "max_completion_tokens",
                "rejected_params": _SAMPLING | {"logprobs", "top_logprobs", "logit_bias"},
                "context_window": 200_000,
            },
        )
        for pattern in ("o1*", "o3*", "o4*", "*/o1*", "*/o3*", "*/o4*")
    ),
    (
        "*deepseek-reasoner*",
        {
            "tool_choice": False,
            "rejected_params": _SAMPLING | {"logprobs", "top_logprobs"},
            "reasoning_echo": True,
            "vision": False,
            "context_window": 128_000,
        },
    ),
    ("*deepseek-r1*", {"reasoning_echo": True, "vision": False, "context_window": 128_000}),
    ("*deepseek-chat*", {"vision": False, "context_window": 128_000}),
    ("*deepseek-v3*", {"reasoning_echo": True, "vision": False, "context_window": 128_000}),
    ("*kimi*", {"reasoning_echo": True, "context_window": 262_144}),
    ("*moonshot*", {"reasoning_echo": True}),
)

# Per backend, applied after the family rules. Backends only know their own dialect.
BACKEND_RULES: dict[str, dict[str, Any]] = {
    # OpenRouter echoes reasoning itself from `reasoning_details`.
    "openrouter": {"reasoning_echo": False},
    "databricks": {"pdf": False, "openrouter_fields": False, "reasoning_style": "effort"},
    "litellm": {"pdf": False, "openrouter_fields": False, "reasoning_style": "effort"},
    "openai_compatible": {
        "pdf": False,
        "cache_control": False,
        "openrouter_fields": False,
        "reasoning_style": "effort",
    },
}

# Local OpenAI-compatible servers (backend `openai_compatible`), applied after the backend
# rules. Chosen by a route's `server:` hint, OPENAI_COMPATIBLE_SERVER, or detected once at
# start-up (servers.py). docs/08-backends-and-routing.md says where each entry comes from.
SERVER_RULES: dict[str, dict[str, Any]] = {
    # Unknown server: the shapes every server below accepts; usage is estimated when missing.
    "generic": {"assistant_tool_content": "empty", "flatten_text": True},
    # 0.3.x: `content: null` on a tool-call turn is a 500 (its model wants a string) and a
    # missing one breaks its template; list content reaches the prompt as a Python repr;
    # chatml-function-calling asserts on "required" and raises on a streamed auto tool call;
    # `stream_options` and `max_completion_tokens` are ignored, streams carry no usage; an
    # `x-request-id` that is not a UUID is a 400 with an empty body.
    "llama-cpp-python": {
        "assistant_tool_content": "empty",
        "flatten_text": True,
        "tool_choice_forms": frozenset({"auto", "none", "function"}),
        "stream_usage": "never",
        "stream_auto_tools": False,
        "max_tokens_field": "max_tokens",
        "reasoning_style": "none",
        "vision": False,
        "request_id_format": "uuid",
    },
    # llama-server: a `tool_choice` object is silently read as "auto" (only the three strings
    # parse); usage only with include_usage; thinking arrives and goes back as
    # `reasoning_content`.
    "llama.cpp": {
        "tool_choice_forms": frozenset({"auto", "none", "required"}),
        "max_tokens_field": "max_tokens",
        "reasoning_echo": True,
    },
    "vllm": {"max_tokens_field": "max_tokens"},
    # Ollama's OpenAI layer ignores `tool_choice` and (before 0.5) rejected `content: null`.
    "ollama": {
        "assistant_tool_content": "empty",
        "tool_choice_forms": frozenset({"auto"}),
        "max_tokens_field": "max_tokens",
    },
    "lmstudio": {
        "assistant_tool_content": "empty",
        "tool_choice_forms": frozenset({"auto", "none", "required"}),
        "max_tokens_field": "max_tokens",
    },
}
SERVER_ALIASES = {
    "llamacpp": "llama.cpp", "llama-cpp": "llama.cpp", "llama-server": "llama.cpp",
    "llama_cpp": "llama.cpp", "llama_cpp_python": "llama-cpp-python",
    "llama-cpp-python": "llama-cpp-python", "lm-studio": "lmstudio", "lm_studio": "lmstudio",
    "unknown": "generic",
}  # fmt: skip


def server_name(value: str) -> str:
    """A `server:` hint or OPENAI_COMPATIBLE_SERVER value as a SERVER_RULES key; ValueError
    names the known ones."""
    name = value.strip().lower()
    name = SERVER_ALIASES.get(name, name)
    if name not in SERVER_RULES:
        known = ", ".join(sorted(SERVER_RULES))
        raise ValueError(f"unknown local server {value!r} (one of: {known})")
    return name


# Claude behind a non-OpenRouter backend takes Anthropic's own `thinking` field.
_ANTHROPIC_THINKING = {"databricks", "litellm"}


def profile_for(
    model: str,
    backend: str,
    overrides: dict[str, Any] | None = None,
    server: str | None = None,
) -> Capabilities:
    """The capabilities of `model` served by `backend` (for `openai_compatible`, by the local
    `server`, "generic" when unknown), with a route's `overrides` last."""
    name = model.lower()
    merged: dict[str, Any] = {}
    for pattern, values in FAMILY_RULES:
        if fnmatch.fnmatchcase(name, pattern):
            merged.update(values)
    merged.update(BACKEND_RULES.get(backend, {}))
    if backend == "openai_compatible":
        merged.update(SERVER_RULES[server or "generic"])
    if backend in _ANTHROPIC_THINKING and "claude" in name:
        merged["reasoning_style"] = "anthropic"
    if backend == "litellm" and name.startswith("openrouter/"):
        merged.update(openrouter_fields=True, reasoning_style="openrouter", pdf=True)
    merged.update(overrides or {})
    return replace(Capabilities(), **merged)


def check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Validate routing-file `capabilities:`; raise ValueError naming a bad key or value."""
    known = {f.name: f for f in fields(Capabilities)}
    checked: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in known:
            raise ValueError(f"unknown capability {key!r} (known: {', '.join(sorted(known))})")
        checked[key] = _check_value(key, value)
    return checked


def _check_value(key: str, value: Any) -> Any:
    if key == "rejected_params":
        if not isinstance(value, list | tuple | set | frozenset):
            raise ValueError("capability 'rejected_params' must be a list of field names")
        return frozenset(str(item) for item in value)
    if key == "tool_choice_forms":
        forms = ", ".join(sorted(TOOL_CHOICE_FORMS))
        if not isinstance(value, list | tuple | set | frozenset) or not set(value) <= (
            TOOL_CHOICE_FORMS
        ):
            raise ValueError(f"capability 'tool_choice_forms' must be a list of: {forms}")
        return frozenset(value)
    if key == "context_window":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError("capability 'context_window' must be an integer")
        return value
    allowed: dict[str, tuple[Any, ...]] = {
        "max_tokens_field": ("max_tokens", "max_completion_tokens"),
        "reasoning_style": ("openrouter", "anthropic", "effort", "none"),
        "schema_dialect": ("json-schema", "gemini"),
        "assistant_tool_content": ("null", "empty", "omit"),
        "stream_usage": ("include_usage", "always", "never"),
        "request_id_format": ("router", "uuid"),
    }
    if key in allowed:
        if value not in allowed[key]:
            choices = ", ".join(allowed[key])
            raise ValueError(f"capability {key!r} must be one of: {choices}")
        return value
    if not isinstance(value, bool):
        raise ValueError(f"capability {key!r} must be true or false")
    return value
