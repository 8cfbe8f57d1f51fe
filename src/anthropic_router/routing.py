"""Client model name -> Route: which provider, which upstream model, which capabilities."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from anthropic_router.config import Settings
from anthropic_router.convert.options import RequestOptions
from anthropic_router.providers.base import ChatProvider


@dataclass(frozen=True, slots=True)
class Route:
    client_model: str
    upstream_model: str
    provider: ChatProvider
    options: RequestOptions
    reason: str  # how the model was chosen, for the log


class ModelMapError(ValueError):
    pass


def load_model_map(path: Path) -> dict[str, str]:
    """`MODEL_MAP_FILE`: YAML or JSON, `{client name or glob: upstream model}`, either at the
    top level or under a `models:` key; a value may also be `{model: ...}`."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ModelMapError(f"MODEL_MAP_FILE {path}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        data = data["models"]
    if not isinstance(data, dict):
        raise ModelMapError(f"MODEL_MAP_FILE {path}: expected a mapping of model names")
    mapping: dict[str, str] = {}
    for name, target in data.items():
        model = target.get("model") if isinstance(target, dict) else target
        if not isinstance(model, str) or not model:
            raise ModelMapError(f"MODEL_MAP_FILE {path}: entry {name!r} has no model")
        mapping[str(name)] = model
    return mapping


def model_family(upstream_model: str) -> str:
    name = upstream_model.lower()
    if name.startswith("anthropic/") or "claude" in name:
        return "anthropic"
    if name.startswith("google/") or "gemini" in name:
        return "google"
    if name.startswith("openai/") or name.startswith(("gpt-", "o1", "o3", "o4")):
        return "openai"
    return "other"


class Router:
    """Resolves model names; built once at start-up from the settings."""

    def __init__(self, settings: Settings, provider: ChatProvider) -> None:
        self._settings = settings
        self._provider = provider
        self._map = load_model_map(settings.model_map_file) if settings.model_map_file else {}
        self._defaults = _request_defaults(settings)

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._map)

    def resolve(self, client_model: str) -> Route:
        upstream, reason = self._upstream_model(client_model)
        family = model_family(upstream)
        options = RequestOptions(
            upstream_model=upstream,
            # OpenRouter honours Anthropic-style breakpoints for Claude and Gemini only.
            cache_control=family in ("anthropic", "google"),
            signed_thinking_only=family == "anthropic",
            multimodal=self._settings.multi_modal_enable,
            image_max_bytes=self._settings.image_max_size,
            image_formats=frozenset(self._settings.supported_image_formats),
            openrouter_fields=self._settings.openrouter_extensions_enable,
            openai_fields=self._settings.openai_advanced_enable,
            defaults=self._defaults,
        )
        return Route(client_model, upstream, self._provider, options, reason)

    def _upstream_model(self, name: str) -> tuple[str, str]:
        if name in self._map:
            return self._map[name], "model map"
        for pattern, target in self._map.items():
            if fnmatch.fnmatchcase(name, pattern):
                return target, f"model map ({pattern})"
        if "/" in name:
            return name, "upstream id"
        lowered = name.lower()
        if "haiku" in lowered:
            return self._settings.small_model, "haiku -> SMALL_MODEL"
        if "sonnet" in lowered:
            return self._settings.effective_middle_model, "sonnet -> MIDDLE_MODEL"
        return self._settings.big_model, "default -> BIG_MODEL"


def _request_defaults(settings: Settings) -> dict[str, Any]:
    """Seed settings added to every upstream request (a client's own value wins)."""
    defaults: dict[str, Any] = {}
    if settings.openrouter_extensions_enable:
        optional = {
            "min_p": settings.openrouter_min_p,
            "top_a": settings.openrouter_top_a,
            "repetition_penalty": settings.openrouter_repetition_penalty,
            "provider": settings.openrouter_provider,
            "models": settings.openrouter_models or None,
            "transforms": settings.openrouter_transforms or None,
        }
        defaults.update({k: v for k, v in optional.items() if v is not None})
    if settings.openai_advanced_enable:
        optional = {
            "frequency_penalty": settings.openai_frequency_penalty,
            "presence_penalty": settings.openai_presence_penalty,
            "seed": settings.openai_seed,
            "logit_bias": settings.openai_logit_bias,
        }
        defaults.update({k: v for k, v in optional.items() if v is not None})
    return defaults
