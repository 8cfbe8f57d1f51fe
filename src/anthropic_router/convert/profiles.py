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

# Claude behind a non-OpenRouter backend takes Anthropic's own `thinking` field.
_ANTHROPIC_THINKING = {"databricks", "litellm"}


def profile_for(model: str, backend: str, overrides: dict[str, Any] | None = None) -> Capabilities:
    """The capabilities of `model` served by `backend`, with a route's `overrides` last."""
    name = model.lower()
    merged: dict[str, Any] = {}
    for pattern, values in FAMILY_RULES:
        if fnmatch.fnmatchcase(name, pattern):
            merged.update(values)
    merged.update(BACKEND_RULES.get(backend, {}))
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
    if key == "context_window":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError("capability 'context_window' must be an integer")
        return value
    allowed: dict[str, tuple[Any, ...]] = {
        "max_tokens_field": ("max_tokens", "max_completion_tokens"),
        "reasoning_style": ("openrouter", "anthropic", "effort", "none"),
        "schema_dialect": ("json-schema", "gemini"),
    }
    if key in allowed:
        if value not in allowed[key]:
            choices = ", ".join(allowed[key])
            raise ValueError(f"capability {key!r} must be one of: {choices}")
        return value
    if not isinstance(value, bool):
        raise ValueError(f"capability {key!r} must be true or false")
    return value
