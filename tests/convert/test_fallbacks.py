"""The request-level `fallbacks` list as the SDK types it (`BetaFallbacksParam`: a list of
`BetaFallbackParam` or "default") mapped to the attempts the router makes, with the
`server-side-fallback-2026-07-01` override rules."""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.fallbacks import fallback_block, fallback_entries, fallback_request

JSON = dict[str, Any]

BASE: JSON = {
    "model": "claude-opus-4-8",
    "max_tokens": 1000,
    "messages": [{"role": "user", "content": "hi"}],
    "thinking": {"type": "adaptive"},
    "output_config": {
        "effort": "high",
        "format": {"type": "json_schema", "schema": {"type": "object"}},
    },
    "speed": "fast",
}

# (id, fallbacks value, models tried after the requested one)
ENTRIES: list[tuple[str, Any, list[str]]] = [
    ("default: the route's own chain", "default", []),
    ("absent", None, []),
    (
        "a list",
        [{"model": "claude-sonnet-4-5"}, {"model": "openai/gpt-5"}],
        ["claude-sonnet-4-5", "openai/gpt-5"],
    ),
    ("bare model names", ["openai/gpt-5"], ["openai/gpt-5"]),
    (
        "entries without a model are skipped",
        [{"max_tokens": 5}, {"model": ""}, {"model": "b"}],
        ["b"],
    ),
    (
        "the requested model and repeats are skipped",
        [{"model": "claude-opus-4-8"}, {"model": "b"}, {"model": "b"}],
        ["b"],
    ),
    ("not a list or default", 5, []),
]


@pytest.mark.parametrize(("value", "models"), [e[1:] for e in ENTRIES], ids=[e[0] for e in ENTRIES])
def test_fallback_entries(value: Any, models: list[str]) -> None:
    request = dict(BASE) if value is None else {**BASE, "fallbacks": value}
    assert [e["model"] for e in fallback_entries(request)] == models


# (id, entry, fields of the attempt's request that differ from BASE, fields it lacks)
OVERRIDES: list[tuple[str, JSON, JSON, list[str]]] = [
    ("only a model: the request's parameters", {"model": "b"}, {"model": "b"}, []),
    ("max_tokens", {"model": "b", "max_tokens": 50}, {"model": "b", "max_tokens": 50}, []),
    ("null max_tokens: the request's", {"model": "b", "max_tokens": None}, {"model": "b"}, []),
    (
        "thinking override",
        {"model": "b", "thinking": {"type": "disabled"}},
        {"model": "b", "thinking": {"type": "disabled"}},
        [],
    ),
    (
        "null thinking: the model's default",
        {"model": "b", "thinking": None},
        {"model": "b"},
        ["thinking"],
    ),
    (
        "speed standard",
        {"model": "b", "speed": "standard"},
        {"model": "b", "speed": "standard"},
        [],
    ),
    ("null speed", {"model": "b", "speed": None}, {"model": "b"}, ["speed"]),
    (
        "output_config merges field by field",
        {"model": "b", "output_config": {"effort": "low"}},
        {
            "model": "b",
            "output_config": {"effort": "low", "format": BASE["output_config"]["format"]},
        },
        [],
    ),
    (
        "null format in output_config",
        {"model": "b", "output_config": {"format": None}},
        {"model": "b", "output_config": {"effort": "high"}},
        [],
    ),
    (
        "null output_config",
        {"model": "b", "output_config": None},
        {"model": "b"},
        ["output_config"],
    ),
]


@pytest.mark.parametrize(
    ("entry", "changed", "removed"), [o[1:] for o in OVERRIDES], ids=[o[0] for o in OVERRIDES]
)
def test_fallback_request(entry: JSON, changed: JSON, removed: list[str]) -> None:
    request = {**BASE, "fallbacks": [entry]}
    attempt = fallback_request(request, entry)
    expected = {**BASE, **changed}
    for name in removed:
        expected.pop(name)
    assert attempt == expected
    assert "fallbacks" not in attempt


def test_fallback_block_is_the_sdk_type() -> None:
    from anthropic.types.beta import BetaFallbackBlock

    block = BetaFallbackBlock.model_validate(fallback_block("claude-opus-4-8", "b"))
    assert (block.from_.model, block.to.model, block.trigger.type) == (
        "claude-opus-4-8",
        "b",
        "refusal",
    )
