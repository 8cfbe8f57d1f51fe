"""The four backends the router can serve from, as test data: how to configure one against a
fake upstream, where its chat requests go, which credential they carry, and how the upstream
body differs from OpenRouter's (the reference dialect the converter produces).

Every backend reads answers in OpenAI chat format, so the same FakeUpstream scripts serve all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote

from .router import UPSTREAM_API_KEY, EnvOverrides
from .upstream import Recorded

JSON = dict[str, Any]

OPENAI_COMPATIBLE_API_KEY = "test-local-key-0000"
DATABRICKS_PAT = "dapi-test-pat-0000"

# The tier defaults of OpenRouter, used for every backend that takes OpenRouter-style ids.
BIG_MODEL = "anthropic/claude-sonnet-4.5"
SMALL_MODEL = "anthropic/claude-haiku-4.5"

# Per-request fields only OpenRouter understands (docs/06); others drop and report them.
OPENROUTER_ONLY = frozenset(
    {"min_p", "top_a", "provider", "models", "transforms", "repetition_penalty", "reasoning"}
)

# Parameters LiteLLM's OpenRouter adapter (litellm 1.108.x) does not take: with the router's
# `drop_params` they are removed by LiteLLM and reported by the router as `param:<name>`.
# Since LiteLLM sends `user` through extra_body for OpenRouter models, nothing is dropped.
LITELLM_UNSUPPORTED: frozenset[str] = frozenset()

Thinking = Literal["openrouter", "anthropic", "effort"]

# Env of the backends that are not OpenRouter: OpenRouter's variables (set by `router_env`
# for every router) are removed, so nothing can reach the OpenRouter path by accident.
_NO_OPENROUTER: dict[str, str | None] = {"OPENROUTER_API_KEY": None, "OPENROUTER_BASE_URL": None}


@dataclass(frozen=True)
class Backend:
    """One backend, as the tests see it.

    `name`: the test id. `served_by`: the `x-anthropic-router-backend` value.
    `big`, `small`: the upstream models of the tiers (opus/sonnet -> big, haiku -> small).
    `key`: the credential the upstream must receive as `Authorization: Bearer`.
    `openrouter_fields`: OpenRouter's fields are forwarded (else dropped and reported).
    `thinking`: how Anthropic `thinking` reaches the upstream (OpenRouter `reasoning`,
    Anthropic's own `thinking` + `thinking_blocks` history, or OpenAI `reasoning_effort`).
    `cache_control`: Claude's `cache_control` breakpoints are kept.
    `own_names`: client names without "/" that are not Claude are upstream names as they are.
    `key_env`: the variable holding the router's own upstream credential.
    `vision_model`: a non-Claude model with vision, named the way this backend names models.
    """

    name: str
    served_by: str
    big: str
    small: str
    key: str
    openrouter_fields: bool
    thinking: Thinking
    cache_control: bool
    own_names: bool
    key_env: str
    vision_model: str = "openai/gpt-4o"
    startup_timeout: float = 20.0
    extra_env: Mapping[str, str | None] = field(default_factory=dict)

    def env(self, upstream_url: str) -> dict[str, str | None]:
        """Router env overrides pointing this backend at the fake upstream."""
        return {
            name: value.replace("{upstream}", upstream_url) if value else value
            for name, value in self.extra_env.items()
        }

    # Where requests go and what they carry.

    @property
    def is_databricks(self) -> bool:
        return self.name == "databricks"

    @property
    def is_litellm(self) -> bool:
        return self.name == "litellm_openrouter"

    def chat_path(self, model: str) -> str:
        """The path of a chat request for upstream `model`."""
        if self.is_databricks:
            return f"/serving-endpoints/{quote(model, safe='')}/invocations"
        if self.name == "openai_compatible":
            return "/v1/chat/completions"
        return "/api/v1/chat/completions"

    @property
    def models_path(self) -> str | None:
        """Where the upstream's model list is read; None: the backend lists no models."""
        return {
            "openrouter": "/api/v1/models",
            "openai_compatible": "/v1/models",
            "databricks": "/api/2.0/serving-endpoints",
        }.get(self.name)

    def upstream_model(self, seen: Recorded) -> str:
        """The model a recorded chat request asked for: Databricks names it in the path."""
        if self.is_databricks:
            prefix, suffix = "/serving-endpoints/", "/invocations"
            assert seen.path.startswith(prefix) and seen.path.endswith(suffix), seen.path
            assert "model" not in seen.json, "Databricks takes the endpoint from the path"
            return unquote(seen.path.removeprefix(prefix).removesuffix(suffix))
        return str(seen.json["model"])

    def served_model(self, model: str) -> str:
        """`x-anthropic-router-upstream-model` for upstream `model`: LiteLLM's model string."""
        return f"openrouter/{model}" if self.is_litellm else model

    @property
    def auth(self) -> str:
        return f"Bearer {self.key}"

    def body(self, model: str, **fields: Any) -> JSON:
        """The exact body the upstream receives, given what OpenRouter would receive
        (`model` plus `fields`).

        Databricks: no `model` (it is in the path). LiteLLM: `stream` always sent,
        `usage: {"include": true}` always added by its OpenRouter adapter (for cost data), and
        the parameters it does not take are dropped (see LITELLM_UNSUPPORTED).
        """
        body: JSON = {"model": model, **fields}
        if self.is_databricks:
            del body["model"]
        if self.is_litellm:
            body = {k: v for k, v in body.items() if k not in LITELLM_UNSUPPORTED}
            body.setdefault("stream", False)
            body.setdefault("usage", {"include": True})
        return body

    def dropped_params(self, *names: str) -> list[str]:
        """The `param:<name>` entries LiteLLM adds to `x-anthropic-router-dropped` for the
        given body fields (none on the other backends)."""
        if not self.is_litellm:
            return []
        return [f"param:{name}" for name in names if name in LITELLM_UNSUPPORTED]

    def __str__(self) -> str:
        return self.name


OPENROUTER = Backend(
    name="openrouter",
    served_by="openrouter",
    big=BIG_MODEL,
    small=SMALL_MODEL,
    key=UPSTREAM_API_KEY,
    openrouter_fields=True,
    thinking="openrouter",
    cache_control=True,
    own_names=False,
    key_env="OPENROUTER_API_KEY",
)

OPENAI_COMPATIBLE = Backend(
    name="openai_compatible",
    served_by="openai_compatible",
    big=BIG_MODEL,
    small=SMALL_MODEL,
    key=OPENAI_COMPATIBLE_API_KEY,
    openrouter_fields=False,
    thinking="effort",
    cache_control=False,
    own_names=True,
    key_env="OPENAI_COMPATIBLE_API_KEY",
    extra_env={
        **_NO_OPENROUTER,
        "PROXY_BACKEND": "OPENAI_COMPATIBLE",
        "OPENAI_COMPATIBLE_BASE_URL": "{upstream}/v1",
        "OPENAI_COMPATIBLE_API_KEY": OPENAI_COMPATIBLE_API_KEY,
        # An unknown server, named so: start-up detection would add GETs to every test's
        # upstream record (detection has its own tests: tests/test_local_servers.py).
        "OPENAI_COMPATIBLE_SERVER": "generic",
        "BIG_MODEL": BIG_MODEL,
        "SMALL_MODEL": SMALL_MODEL,
    },
)

DATABRICKS = Backend(
    name="databricks",
    served_by="databricks",
    big="databricks-claude-sonnet-4-5",
    small="databricks-claude-haiku-4-5",
    key=DATABRICKS_PAT,
    openrouter_fields=False,
    thinking="anthropic",
    cache_control=True,
    own_names=True,
    key_env="DATABRICKS_PAT",
    vision_model="databricks-llama-4-maverick",  # an endpoint name, not an OpenRouter id
    extra_env={
        **_NO_OPENROUTER,
        "PROXY_BACKEND": "AZURE_DATABRICKS",
        "DATABRICKS_HOST": "{upstream}",
        "DATABRICKS_PAT": DATABRICKS_PAT,
        # Claude endpoints on the OpenAI-chat route too (the native route has its own tests).
        "DATABRICKS_NATIVE_ANTHROPIC": "false",
        "BIG_MODEL": "databricks-claude-sonnet-4-5",
        "SMALL_MODEL": "databricks-claude-haiku-4-5",
    },
)

LITELLM_OPENROUTER = Backend(
    name="litellm_openrouter",
    served_by="litellm",
    big=BIG_MODEL,
    small=SMALL_MODEL,
    key=UPSTREAM_API_KEY,
    openrouter_fields=True,
    thinking="openrouter",
    cache_control=True,
    own_names=False,
    key_env="OPENROUTER_API_KEY",
    startup_timeout=60.0,  # importing litellm takes several seconds
    extra_env={"PROXY_BACKEND": "LITELLM_OPENROUTER"},
)

ALL: tuple[Backend, ...] = (OPENROUTER, OPENAI_COMPATIBLE, DATABRICKS, LITELLM_OPENROUTER)


def merged_env(backend: Backend, upstream_url: str, env: EnvOverrides | None) -> EnvOverrides:
    """The backend's env, then a test's own overrides (a test's None still removes)."""
    return {**backend.env(upstream_url), **(env or {})}
