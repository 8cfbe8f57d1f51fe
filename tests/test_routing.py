"""The routing file and `Router.resolve`: client model name -> ordered targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from anthropic_router.config import Settings
from anthropic_router.routing import (
    ModelMapError,
    Router,
    RouteSpec,
    TargetSpec,
    load_routing_file,
)

ROUTES = """
routes:
  claude-haiku-*:
    backend: openai_compatible
    model: llama3.1:8b
    capabilities: {vision: false}
    fallbacks:
      - qwen2.5:7b
      - {backend: openrouter, model: anthropic/claude-haiku-4.5}
  claude-opus-4-8: anthropic/claude-opus-4.1
  gemini-pro:
    backend: litellm
    model: gemini/gemini-2.5-pro
    params: {api_base: "http://127.0.0.1:9", api_key: os.environ/TEST_GEMINI_KEY}
fallbacks:
  - {backend: databricks, model: databricks-claude-sonnet-4-5}
"""


def write(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def settings(**fields: Any) -> Settings:
    base: dict[str, Any] = {"_env_file": None, "openrouter_api_key": "test-key"}
    return Settings(**{**base, **fields})


def test_routing_file_entries_fallbacks_and_env_secrets(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEST_GEMINI_KEY", "g-key")
    routing = load_routing_file(write(tmp_path, ROUTES), "openrouter")
    assert routing.routes == {
        "claude-haiku-*": RouteSpec(
            (
                TargetSpec("openai_compatible", "llama3.1:8b", {"vision": False}),
                TargetSpec("openai_compatible", "qwen2.5:7b"),  # inherits the entry's backend
                TargetSpec("openrouter", "anthropic/claude-haiku-4.5"),
            )
        ),
        "claude-opus-4-8": RouteSpec((TargetSpec("openrouter", "anthropic/claude-opus-4.1"),)),
        "gemini-pro": RouteSpec(
            (
                TargetSpec(
                    "litellm",
                    "gemini/gemini-2.5-pro",
                    params={"api_base": "http://127.0.0.1:9", "api_key": "g-key"},
                ),
            )
        ),
    }
    assert routing.fallbacks == (TargetSpec("databricks", "databricks-claude-sonnet-4-5"),)


def test_old_flat_model_map_still_reads(tmp_path) -> None:
    path = write(tmp_path, '{"claude-x": "a/b", "c-*": {"model": "c/d"}}', "map.json")
    routing = load_routing_file(path, "openrouter")
    assert routing.routes == {
        "claude-x": RouteSpec((TargetSpec("openrouter", "a/b"),)),
        "c-*": RouteSpec((TargetSpec("openrouter", "c/d"),)),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routes:\n  a: {backend: nowhere, model: m}\n", "unknown backend 'nowhere'"),
        ("routes:\n  a: {model: m, colour: red}\n", "unknown keys \\['colour'\\]"),
        ("routes:\n  a: {backend: openrouter}\n", "has no model"),
        ("routes:\n  a: {model: m, fallbacks: m2}\n", "'fallbacks' must be a list"),
        ("routes:\n  a: {model: m, params: [1]}\n", "'params' must be a mapping"),
        ("routes:\n  a: {model: m, params: {api_key: os.environ/NOPE_UNSET}}\n", "NOPE_UNSET"),
        ("routes:\n  a: {model: m, capabilities: {pdf: 3}}\n", "'pdf' must be true or false"),
        ("- a list\n", "expected a mapping"),
        ("routes: [\n", "MODEL_MAP_FILE"),
    ],
)
def test_routing_file_errors_name_the_problem(tmp_path, text: str, message: str) -> None:
    with pytest.raises(ModelMapError, match=message):
        load_routing_file(write(tmp_path, text), "openrouter")


def test_resolve_tiers_globs_and_fallbacks(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEST_GEMINI_KEY", "g-key")
    router = Router(
        settings(
            model_map_file=write(tmp_path, ROUTES),
            openai_compatible_base_url="http://127.0.0.1:9/v1",
            databricks_host="127.0.0.1:9",
            databricks_pat="dapi-test",
        )
    )
    haiku = router.resolve("claude-haiku-4-5-20251001")
    assert haiku.reason == "model map (claude-haiku-*)"
    assert [(t.backend, t.upstream_model, t.wire) for t in haiku.targets] == [
        ("openai_compatible", "llama3.1:8b", "openai"),
        ("openai_compatible", "qwen2.5:7b", "openai"),
        ("openrouter", "anthropic/claude-haiku-4.5", "openai"),
    ]
    assert haiku.targets[0].options.capabilities.vision is False
    assert haiku.targets[0].provider is haiku.targets[1].provider  # one pool per backend
    sonnet = router.resolve("claude-sonnet-4-5")
    assert sonnet.reason == "sonnet -> MIDDLE_MODEL"
    # Tier routes take the file's shared fallbacks; Claude on Databricks goes native.
    assert [(t.backend, t.upstream_model, t.wire) for t in sonnet.targets] == [
        ("openrouter", "anthropic/claude-sonnet-4.5", "openai"),
        ("databricks", "databricks-claude-sonnet-4-5", "anthropic"),
    ]
    assert router.resolve("some/upstream-id").reason == "upstream id"


def test_databricks_native_route_can_be_turned_off() -> None:
    common = {"databricks_host": "h", "databricks_pat": "p", "proxy_backend": "AZURE_DATABRICKS"}
    native = Router(settings(**common)).resolve("claude-haiku-4-5")
    assert native.targets[0].wire == "anthropic"
    assert native.upstream_model == "databricks-claude-haiku-4-5"
    chat = Router(settings(**common, databricks_native_anthropic=False)).resolve("claude-haiku")
    assert chat.targets[0].wire == "openai"
    other = Router(settings(**common, big_model="databricks-gpt-oss-120b")).resolve("opus")
    assert other.targets[0].wire == "openai"


def test_openrouter_fields_only_reach_openrouter() -> None:
    from anthropic_router.convert.request import to_openai_request

    request = {"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    local = Router(
        settings(
            openrouter_min_p=0.1,
            openai_seed=3,
            proxy_backend="OPENAI_COMPATIBLE",
            openai_compatible_base_url="http://127.0.0.1:9/v1",
            big_model="llama3",
        )
    ).resolve("x")
    conversion = to_openai_request(request, local.options)
    assert conversion.body["seed"] == 3 and "min_p" not in conversion.body
    assert conversion.report.dropped_names == ["field:min_p"]  # the seed default is reported
    openrouter = Router(settings(openrouter_min_p=0.1, openai_seed=3)).resolve("x")
    conversion = to_openai_request(request, openrouter.options)
    assert conversion.body["min_p"] == 0.1 and conversion.body["seed"] == 3
    assert conversion.report.dropped_names == []
