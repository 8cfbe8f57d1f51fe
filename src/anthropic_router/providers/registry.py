"""The providers one server uses: built on first need, at start-up, one per backend (one per
parameter set for LiteLLM), opened and closed together by the app's lifespan."""

from __future__ import annotations

from typing import Any

from anthropic_router.config import Settings
from anthropic_router.errors import ConfigError
from anthropic_router.providers.base import ChatProvider


class Providers:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._built: dict[tuple[str, str], ChatProvider] = {}

    def get(self, backend: str, params: dict[str, Any]) -> ChatProvider:
        key = (backend, repr(sorted(params.items())) if backend == "litellm" else "")
        provider = self._built.get(key)
        if provider is None:
            provider = self._build(backend, params)
            self._built[key] = provider
        return provider

    def all(self) -> list[ChatProvider]:
        return list(self._built.values())

    def _build(self, backend: str, params: dict[str, Any]) -> ChatProvider:
        settings = self._settings
        if backend == "openrouter":
            from anthropic_router.providers import openrouter

            return openrouter.build(settings)
        if backend in ("databricks", "databricks_native"):
            from anthropic_router.providers import databricks

            # Both Databricks routes share one OAuth token (when OAuth is used).
            other = self._built.get(
                ("databricks_native" if backend == "databricks" else "databricks", "")
            )
            auth = getattr(other, "auth", None)
            return databricks.build(settings, native=backend == "databricks_native", auth=auth)
        if backend == "openai_compatible":
            from anthropic_router.providers import openai_compatible

            return openai_compatible.build(settings)
        if backend == "litellm":
            from anthropic_router.providers import litellm

            return litellm.build(settings, params)
        raise ConfigError(f"unknown backend {backend!r}")
