"""The response cache's key, and which requests it must not answer. Pure: no I/O.

The key is a hash of everything that decides the upstream's answer once the request is
routed: every target (backend, upstream model, wire, the options that shape its body), the
request fields, the beta/version headers when an Anthropic-speaking upstream sees them (a
translated request never carries them), and the client key's id (one tenant never gets
another's answers). Left out: `stream` (a hit answers in either
mode), `metadata` (Claude Code's per-session user id), and everything that is only
spelling: JSON key order, whitespace, header order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from anthropic_router.routing import Route

JSON = dict[str, Any]

# Bumped when the key's recipe or the stored entry's format changes.
KEY_VERSION = 1
NOT_IN_KEY = frozenset({"stream", "metadata"})
# Tools the upstream runs against the outside world: their answers are not repeatable.
SERVER_TOOL_PREFIXES = ("web_search", "web_fetch", "code_execution", "mcp")


def _plain(value: Any) -> Any:
    """orjson's fallback for option values: sets in a stable order, mappings as dicts."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not part of a cache key")


def route_fingerprint(route: Route) -> bytes:
    """The targets of a route as canonical bytes (options are dataclasses of plain values;
    sets are sorted so that every process, whatever its hash seed, spells them alike)."""
    targets = [[t.backend, t.upstream_model, t.wire, t.options] for t in route.targets]
    return orjson.dumps(targets, default=_plain, option=orjson.OPT_SORT_KEYS)


def upstream_headers(route: Route, client_headers: Mapping[str, str]) -> Mapping[str, str]:
    """The client headers that can reach the upstream: `anthropic-version`/`-beta` go only
    to targets that take the Anthropic request untranslated (relay.py)."""
    if any(target.wire == "anthropic" for target in route.targets):
        return client_headers
    return {}


def cache_key(
    request: Mapping[str, Any],
    fingerprint: bytes,
    client_headers: Mapping[str, str],
    client_key_id: str | None,
) -> str:
    """The hex key of one request (see the module docstring for what it covers)."""
    body = dict(request)  # a copy and two pops: a third of a comprehension's time
    for name in NOT_IN_KEY:
        body.pop(name, None)
    beta = client_headers.get("anthropic-beta")
    betas = sorted(b.strip() for b in beta.split(",") if b) if beta else []
    context = [KEY_VERSION, client_key_id, client_headers.get("anthropic-version"), betas]
    # SHA-256 (CPUs hash it in hardware, faster than BLAKE2 here), cut to 160 bits.
    digest = hashlib.sha256(fingerprint)
    digest.update(orjson.dumps(context))
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:40]


def uncacheable(request: Mapping[str, Any], only_deterministic: bool) -> str | None:
    """Why the cache must not answer `request`, or None when it may."""
    if request.get("mcp_servers"):
        return "mcp_servers"
    for tool in request.get("tools") or ():
        kind = tool.get("type")
        if isinstance(kind, str) and kind.startswith(SERVER_TOOL_PREFIXES):
            return f"server tool {kind}"
    if only_deterministic and request.get("temperature") != 0:
        return "temperature is not 0 (PROMPT_CACHE_ONLY_DETERMINISTIC)"
    return None


def cache_mode(cache_control: str | None, router_header: str | None) -> str:
    """The request's instruction: "no-store" (`cache-control: no-store`, or
    `x-anthropic-router-cache: no-store`) skips lookup and storing; "refresh" (`no-cache`,
    `max-age=0`, or `x-anthropic-router-cache: bypass`) skips the lookup and stores the
    fresh answer; else "use"."""
    directives = {part.strip().lower() for part in (cache_control or "").split(",")}
    ours = (router_header or "").strip().lower()
    if "no-store" in directives or ours == "no-store":
        return "no-store"
    if "no-cache" in directives or "max-age=0" in directives or ours in ("bypass", "refresh"):
        return "refresh"
    return "use"
