"""Client model name -> Route: an ordered list of targets (backend, upstream model, profile).

The first target serves; the others are fallbacks tried when it fails before any byte reached
the client. The routing file (`MODEL_MAP_FILE`) is described in docs/08-backends-and-routing.md.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from anthropic_router.config import ProxyBackend, Settings
from anthropic_router.convert.options import RequestOptions
from anthropic_router.convert.profiles import check_overrides, profile_for, server_name
from anthropic_router.errors import ConfigError
from anthropic_router.providers.base import ChatProvider
from anthropic_router.providers.registry import Providers
from anthropic_router.rules import Rule, RuleError, first_match, parse_rule

Wire = Literal["openai", "anthropic"]

# Routing-file backend names (lower case) -> the profile/provider key.
BACKEND_KEYS = {
    "openrouter": "openrouter",
    "databricks": "databricks",
    "azure_databricks": "databricks",
    "litellm": "litellm",  # the model is a LiteLLM model string (`gemini/...`)
    "litellm_openrouter": "litellm_openrouter",  # an OpenRouter id, sent via LiteLLM
    "openai_compatible": "openai_compatible",
}
DEFAULT_BACKEND_KEY = {
    ProxyBackend.OPENROUTER: "openrouter",
    ProxyBackend.AZURE_DATABRICKS: "databricks",
    ProxyBackend.LITELLM_OPENROUTER: "litellm_openrouter",
    ProxyBackend.OPENAI_COMPATIBLE: "openai_compatible",
}
_ENTRY_KEYS = {"backend", "model", "fallbacks", "capabilities", "params", "server"}
_FILE_KEYS = ("fallbacks", "rules", "explicit_model_wins")  # top-level keys that are no route
# Claude Code's /model picker keeps only ids containing "claude" or "anthropic": other route
# names are listed under this prefix, and the prefix is taken off again when resolving.
PICKER_PREFIX = "anthropic-router/"
LOCAL = "openai_compatible"  # the backend whose targets get a local-server profile
# A client model name per tier, for views of the routing (check-config, /ready).
TIER_SAMPLES = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-8")


class ModelMapError(ConfigError):
    pass


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One place a request can be served, as written in the routing file."""

    backend: str
    model: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # LiteLLM kwargs (api_base, ...)
    server: str | None = None  # openai_compatible: which local server (profiles.SERVER_RULES)


@dataclass(frozen=True, slots=True)
class RouteSpec:
    targets: tuple[TargetSpec, ...]


@dataclass(frozen=True, slots=True)
class RuleUse:
    """What a rule's `use:` names: a client model name resolved like a request's (a key of
    routes:, a tier name or an upstream id), or a target of its own."""

    name: str | None = None
    route: RouteSpec | None = None


@dataclass(frozen=True, slots=True)
class RoutingFile:
    routes: dict[str, RouteSpec]
    fallbacks: tuple[TargetSpec, ...] = ()  # for routes that declare none (tier defaults too)
    rules: tuple[Rule, ...] = ()
    explicit_model_wins: bool = True  # a model name with "/" skips the rules


@dataclass(frozen=True, slots=True)
class Target:
    backend: str
    upstream_model: str
    provider: ChatProvider
    options: RequestOptions
    wire: Wire = "openai"  # "anthropic": the request is passed through untranslated
    server: str | None = None  # openai_compatible: the local-server profile in use...
    server_reason: str | None = None  # ...and how it was chosen


@dataclass(frozen=True, slots=True)
class Route:
    client_model: str
    targets: tuple[Target, ...]
    reason: str  # how the model was chosen, for the log
    rule: str | None = None  # the `rules:` entry that chose it

    @property
    def upstream_model(self) -> str:
        return self.targets[0].upstream_model

    @property
    def provider(self) -> ChatProvider:
        return self.targets[0].provider

    @property
    def options(self) -> RequestOptions:
        return self.targets[0].options


def load_routing_file(path: Path, default_backend: str) -> RoutingFile:
    """Read `MODEL_MAP_FILE` (YAML or JSON). Entries live under `routes:` or `models:` or at
    the top level; a value is an upstream model, or `{backend, model, fallbacks,
    capabilities, params}`. Raises ModelMapError naming the bad entry."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ModelMapError(f"MODEL_MAP_FILE {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelMapError(f"MODEL_MAP_FILE {path}: expected a mapping of model names")
    shared: list[Any] = data["fallbacks"] if isinstance(data.get("fallbacks"), list) else []
    rules, explicit_wins = data.get("rules") or [], data.get("explicit_model_wins", True)
    for key in ("routes", "models"):
        if isinstance(data.get(key), dict):
            data = data[key]
            break
    else:
        data = {k: v for k, v in data.items() if k not in _FILE_KEYS}
    try:
        routes = {str(name): _route(entry, default_backend) for name, entry in data.items()}
        defaults = tuple(_target(item, default_backend) for item in shared)
        parsed = _rules(rules, explicit_wins, default_backend)
    except (ModelMapError, RuleError) as exc:
        raise ModelMapError(f"MODEL_MAP_FILE {path}: {exc}") from None
    return RoutingFile(routes, defaults, parsed, explicit_wins)


def _rules(entries: Any, explicit_wins: Any, default_backend: str) -> tuple[Rule, ...]:
    if not isinstance(entries, list):
        raise RuleError("'rules' must be a list")
    if not isinstance(explicit_wins, bool):
        raise RuleError("'explicit_model_wins' must be true or false")

    def use(value: Any) -> RuleUse:
        if isinstance(value, str) and value:
            return RuleUse(name=value)
        try:
            return RuleUse(route=_route(value, default_backend))
        except ModelMapError as exc:
            raise RuleError(f"use: {exc}") from None

    parsed = tuple(parse_rule(i, entry, use) for i, entry in enumerate(entries))
    names = [rule.name for rule in parsed]
    if len(set(names)) != len(names):
        raise RuleError(f"two rules have the same name: {names} (give them 'name:')")
    return parsed


def _route(entry: Any, default_backend: str) -> RouteSpec:
    first = _target(entry, default_backend)
    fallbacks = entry.get("fallbacks") if isinstance(entry, dict) else None
    if fallbacks is not None and not isinstance(fallbacks, list):
        raise ModelMapError(f"entry {first.model!r}: 'fallbacks' must be a list")
    # A fallback inherits the entry's backend unless it names its own.
    rest = tuple(_target(item, first.backend) for item in fallbacks or [])
    return RouteSpec((first, *rest))


def _target(entry: Any, default_backend: str) -> TargetSpec:
    if isinstance(entry, str) and entry:
        return TargetSpec(default_backend, entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), str) or not entry["model"]:
        raise ModelMapError(f"entry {entry!r} has no model")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ModelMapError(f"entry {entry['model']!r}: unknown keys {sorted(unknown)}")
    backend_name = str(entry.get("backend") or default_backend).lower()
    if backend_name not in BACKEND_KEYS:
        raise ModelMapError(
            f"entry {entry['model']!r}: unknown backend {backend_name!r} "
            f"(one of {', '.join(sorted(BACKEND_KEYS))})"
        )
    try:
        capabilities = check_overrides(dict(entry.get("capabilities") or {}))
    except (ValueError, TypeError) as exc:
        raise ModelMapError(f"entry {entry['model']!r}: {exc}") from None
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise ModelMapError(f"entry {entry['model']!r}: 'params' must be a mapping")
    backend = BACKEND_KEYS[backend_name]
    return TargetSpec(
        backend, entry["model"], capabilities, _resolve_env(params), _server(entry, backend)
    )


def _server(entry: dict[str, Any], backend: str) -> str | None:
    if entry.get("server") is None:
        return None
    if backend != LOCAL:
        raise ModelMapError(f"entry {entry['model']!r}: 'server' applies to {LOCAL} targets only")
    try:
        return server_name(str(entry["server"]))
    except ValueError as exc:
        raise ModelMapError(f"entry {entry['model']!r}: {exc}") from None


def _resolve_env(params: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM's convention: `os.environ/NAME` reads a secret from the environment (once, at
    start-up), so keys stay out of the routing file."""
    resolved: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("os.environ/"):
            name = value.removeprefix("os.environ/")
            if name not in os.environ:
                raise ModelMapError(f"params.{key}: environment variable {name} is not set")
            value = os.environ[name]
        resolved[str(key)] = value
    return resolved


class Router:
    """Resolves model names to routes; built once at start-up from the settings. Providers
    are created here, one per backend (one per parameter set for LiteLLM)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._default_backend = DEFAULT_BACKEND_KEY[settings.backend]
        path = settings.model_map_file
        self._file = load_routing_file(path, self._default_backend) if path else RoutingFile({})
        self._providers = Providers(settings)
        self._defaults = _request_defaults(settings)
        self._cache: dict[str, Route] = {}
        self._detected: tuple[str, str] | None = None  # (server, why): set at start-up
        self._check_backends()

    @property
    def aliases(self) -> dict[str, str]:
        return {name: spec.targets[0].model for name, spec in self._file.routes.items()}

    def configured_models(self) -> set[str]:
        """Every model name the configuration itself holds: route names and patterns, their
        targets' models, the tiers. (Names a client makes up are not among them.)"""
        settings = self._settings
        names = {settings.big_model, settings.effective_middle_model, settings.small_model}
        for name, spec in self._file.routes.items():
            names.add(name)
            names.update(target.model for target in spec.targets)
        names.update(target.model for target in self._file.fallbacks)
        return names

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._file.rules

    @property
    def default_provider(self) -> ChatProvider:
        return self.resolve(self._settings.big_model).provider

    def providers(self) -> list[ChatProvider]:
        return self._providers.all()

    @property
    def needs_detection(self) -> bool:
        """Whether some target is on the local backend with no server named for it."""
        if self._settings.openai_compatible_server != "auto":
            return False
        specs = [t for spec in self._file.routes.values() for t in spec.targets]
        specs += [*self._file.fallbacks, TargetSpec(self._default_backend, "")]
        return any(spec.backend == LOCAL and spec.server is None for spec in specs)

    def local_provider(self) -> ChatProvider:
        return self._providers.get(LOCAL, {})

    def set_detected(self, server: str, reason: str) -> None:
        """The local server found at start-up: routes resolved from now on use its profile."""
        self._detected = (server, reason)
        self._cache.clear()

    def local_profiles(self) -> list[dict[str, str]]:
        """For /ready and check-config: which profile each local target of the routing
        file's routes and the three tiers uses, and why."""
        seen: list[dict[str, str]] = []
        for name in [*self.aliases, *TIER_SAMPLES]:
            for target in self.resolve(name).targets:
                entry = {
                    "route": name,
                    "model": target.upstream_model,
                    "server": target.server or "",
                    "reason": target.server_reason or "",
                }
                if target.backend == LOCAL and entry not in seen:
                    seen.append(entry)
        return seen

    def _server_for(self, spec: TargetSpec) -> tuple[str | None, str | None]:
        if spec.backend != LOCAL:
            return None, None
        if spec.server is not None:
            return spec.server, "the route's server: hint"
        setting = self._settings.openai_compatible_server
        if setting != "auto":
            return setting, f"OPENAI_COMPATIBLE_SERVER={setting}"
        if self._detected is not None:
            return self._detected
        return "generic", "not detected yet (start-up detection has not run)"

    def resolve(self, client_model: str) -> Route:
        route = self._cache.get(client_model)
        if route is None:
            specs, reason = self._specs(client_model)
            targets = tuple(self._target(spec) for spec in specs)
            route = Route(client_model, targets, reason)
            if len(self._cache) < 4096:  # client-chosen names: bound the memo
                self._cache[client_model] = route
        return route

    def route(self, request: Any) -> Route:
        """The route for a parsed request: the first matching rule's, else the model's.
        An explicit upstream id (a name with "/") skips the rules unless the routing file
        sets `explicit_model_wins: false`."""
        model = str(request.get("model", ""))
        rules = self._file.rules
        if not rules or ("/" in model and self._file.explicit_model_wins):
            return self.resolve(model)
        rule = first_match(rules, request)
        return self.resolve(model) if rule is None else self.for_rule(rule, model)

    def for_rule(self, rule: Rule, client_model: str) -> Route:
        key = f"\x00{rule.name}\x00{client_model}"
        route = self._cache.get(key)
        if route is None:
            use: RuleUse = rule.use
            if use.route is not None:
                specs, reason = self._with_defaults(use.route), "target"
            else:
                specs, reason = self._specs(use.name or client_model)
            targets = tuple(self._target(spec) for spec in specs)
            route = Route(client_model, targets, f"rule {rule.name}: {reason}", rule.name)
            if len(self._cache) < 4096:
                self._cache[key] = route
        return route

    def _with_defaults(self, spec: RouteSpec) -> tuple[TargetSpec, ...]:
        return (spec.targets[0], *(spec.targets[1:] or self._file.fallbacks))

    def _specs(self, name: str) -> tuple[tuple[TargetSpec, ...], str]:
        routes = self._file.routes
        if name.startswith(PICKER_PREFIX) and name[len(PICKER_PREFIX) :] in routes:
            name = name[len(PICKER_PREFIX) :]
        spec = routes.get(name)
        reason = "model map"
        if spec is None:
            pattern = next((p for p in routes if fnmatch.fnmatchcase(name, p)), None)
            spec = routes[pattern] if pattern else None
            reason = f"model map ({pattern})"
        if spec is not None:
            return self._with_defaults(spec), reason
        model, reason = self._tier(name)
        return (TargetSpec(self._default_backend, model), *self._file.fallbacks), reason

    def _tier(self, name: str) -> tuple[str, str]:
        if "/" in name:
            return name, "upstream id"
        # Databricks endpoint and local model names have no "/": any non-Claude name is one.
        own_names = self._default_backend in ("databricks", "openai_compatible")
        if own_names and not name.lower().startswith("claude"):
            return name, "upstream id"
        lowered = name.lower()
        if "haiku" in lowered:
            return self._settings.small_model, "haiku -> SMALL_MODEL"
        if "sonnet" in lowered:
            return self._settings.effective_middle_model, "sonnet -> MIDDLE_MODEL"
        return self._settings.big_model, "default -> BIG_MODEL"

    def _target(self, spec: TargetSpec) -> Target:
        backend, model, params = spec.backend, spec.model, spec.params
        if backend == "litellm_openrouter":
            backend, model, params = "litellm", *self._via_litellm(model, params)
        server, server_reason = self._server_for(spec)
        caps = profile_for(model, backend, spec.capabilities, server)
        settings = self._settings
        options = RequestOptions(
            upstream_model=model,
            cache_control=caps.cache_control,
            signed_thinking_only=caps.signed_thinking_only,
            multimodal=settings.multi_modal_enable,
            image_max_bytes=settings.image_max_size,
            image_formats=frozenset(settings.supported_image_formats),
            openrouter_fields=settings.openrouter_extensions_enable and caps.openrouter_fields,
            openai_fields=settings.openai_advanced_enable,
            defaults=self._defaults,
            capabilities=caps,
        )
        wire = self._wire(backend, model)
        provider = self._providers.get(
            "databricks_native" if wire == "anthropic" else backend, params
        )
        return Target(backend, model, provider, options, wire, server, server_reason)

    def _via_litellm(self, model: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """PROXY_BACKEND=LITELLM_OPENROUTER: an OpenRouter id becomes `openrouter/<id>` with
        OpenRouter's base URL and key."""
        params = dict(params)
        params.setdefault("api_base", self._settings.openrouter_base_url)
        key = self._settings.openrouter_api_key
        if key is not None:
            params.setdefault("api_key", key.get_secret_value())
        return model if model.startswith("openrouter/") else f"openrouter/{model}", params

    def _wire(self, backend: str, model: str) -> Wire:
        native = self._settings.databricks_native_anthropic
        if backend == "databricks" and native and "claude" in model.lower():
            return "anthropic"
        return "openai"

    def _check_backends(self) -> None:
        """Build every provider the routes name now, so a missing credential or extra
        stops start-up instead of failing the first request."""
        for name in list(self._file.routes):
            for spec in self._file.routes[name].targets:
                self._target(spec)
        for spec in self._file.fallbacks:
            self._target(spec)
        for rule in self._file.rules:
            self._check_rule(rule)
        self._target(TargetSpec(self._default_backend, self._settings.big_model))

    def _check_rule(self, rule: Rule) -> None:
        self.for_rule(rule, rule.use.name or "")  # builds its providers
        name: str = rule.use.name or ""
        # A name that only reaches BIG_MODEL by the catch-all tier is most likely a typo of
        # a route name (`use: vison`): say so now rather than route silently.
        typo = name and not name.lower().startswith("claude")
        if typo and self._specs(name)[1] == "default -> BIG_MODEL":
            raise ModelMapError(
                f"MODEL_MAP_FILE: rule {rule.name!r}: use {name!r} is not a route "
                "name, a Claude tier name or an upstream id (with '/')"
            )


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
