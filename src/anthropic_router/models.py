"""`GET /v1/models` in Anthropic's list shape: the tier names, the routing file's named routes
(in the form Claude Code's `/model` picker reads, `CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1`),
then the upstream's own list."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs

from anthropic_router.errors import invalid_request, not_found
from anthropic_router.providers.base import ChatProvider
from anthropic_router.routing import PICKER_PREFIX, Router

JSON = dict[str, Any]

# Claude Code and the SDKs use these family names; they resolve through the tier mapping.
TIER_ALIASES = ("claude-opus-4-8", "claude-sonnet-5", "claude-sonnet-4-5", "claude-haiku-4-5")

# Claude Code's gateway discovery keeps only ids matching this; other route names are listed
# as `anthropic-router/<name>` (the router resolves that back to the route).
_PICKER_NAMES = re.compile(r"claude|anthropic", re.IGNORECASE)
_CACHE_SECONDS = 600.0
_cache: dict[int, tuple[float, list[JSON]]] = {}


async def _all_models(router: Router, provider: ChatProvider) -> list[JSON]:
    key = id(provider)
    cached = _cache.get(key)
    if cached is None or time.monotonic() - cached[0] > _CACHE_SECONDS:
        cached = (time.monotonic(), await provider.list_models())
        _cache[key] = cached
    models: list[JSON] = []
    seen: set[str] = set()
    aliases = [name for name in router.aliases if not any(c in name for c in "*?[")]
    for name in TIER_ALIASES:
        models.append(_listed(router, name, f"{name} -> {router.resolve(name).upstream_model}"))
        seen.add(name)
    for name in aliases:
        listed = name if _PICKER_NAMES.search(name) else PICKER_PREFIX + name
        models.append(_listed(router, listed, name))
        seen.add(listed)
    for upstream in cached[1]:
        model_id = upstream["id"]
        if model_id not in seen:
            seen.add(model_id)
            models.append(_model(model_id, str(upstream.get("name") or model_id), upstream))
    return models


def _listed(router: Router, model_id: str, display: str) -> JSON:
    """A name of ours, with a `description` naming its targets: Claude Code's /model picker
    shows `display_name` and `description` (cut at 100 characters)."""
    targets = router.resolve(model_id).targets
    description = f"anthropic-router: {targets[0].backend}:{targets[0].upstream_model}"
    if len(targets) > 1:
        description += f" (+{len(targets) - 1} fallback{'s' if len(targets) > 2 else ''})"
    return {**_model(model_id, display, None), "description": description}


def _model(model_id: str, display: str, upstream: JSON | None) -> JSON:
    created = (upstream or {}).get("created")
    stamp = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(created if isinstance(created, int) else 0)
    )
    model: JSON = {"type": "model", "id": model_id, "display_name": display, "created_at": stamp}
    context = (upstream or {}).get("context_length")
    if isinstance(context, int):
        model["max_input_tokens"] = context
    return model


async def list_models_page(router: Router, provider: ChatProvider, query_string: bytes) -> JSON:
    query = parse_qs(query_string.decode("latin-1"))
    try:
        limit = int(query.get("limit", ["20"])[0])
    except ValueError:
        raise invalid_request("limit: Input should be an integer") from None
    if not 1 <= limit <= 1000:
        raise invalid_request("limit: Input should be between 1 and 1000")
    models = await _all_models(router, provider)
    ids = [m["id"] for m in models]
    start, end = 0, len(models)
    if "after_id" in query and query["after_id"][0] in ids:
        start = ids.index(query["after_id"][0]) + 1
    if "before_id" in query and query["before_id"][0] in ids:
        end = ids.index(query["before_id"][0])
        start = max(start, end - limit)
    page = models[start:end][:limit]
    return {
        "data": page,
        "has_more": start + len(page) < end,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


async def model_info(router: Router, provider: ChatProvider, model_id: str) -> JSON:
    for model in await _all_models(router, provider):
        if model["id"] == model_id:
            return model
    if model_id.startswith("claude"):
        route = router.resolve(model_id)
        return _model(model_id, f"{model_id} -> {route.upstream_model}", None)
    raise not_found(f"model {model_id!r} not found")
