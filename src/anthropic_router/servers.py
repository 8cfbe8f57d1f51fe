"""Which local server answers at OPENAI_COMPATIBLE_BASE_URL (llama.cpp, llama-cpp-python,
vLLM, Ollama, LM Studio), found once at start-up so its capability profile
(convert/profiles.py SERVER_RULES) shapes every request.

The probes are the servers' own discovery endpoints, each bounded by
OPENAI_COMPATIBLE_DETECT_TIMEOUT: `/v1/models` (each server spells `owned_by` its own way),
then Ollama's `/api/version`, LM Studio's `/api/v0/models` and vLLM's `/version`. Nothing
recognised, or nothing answering, is the generic profile: the most compatible shapes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from anthropic_router.providers.openai_chat import OpenAIChatProvider
from anthropic_router.routing import LOCAL, Router

log = logging.getLogger("anthropic_router")

JSON = dict[str, Any]
Found = tuple[str, str]  # (server, why)

# `/v1/models` `owned_by` -> server. llama-server says "llamacpp", llama-cpp-python "me",
# vLLM "vllm", LM Studio "organization_owner"; Ollama puts the model's namespace there.
OWNERS = {
    "llamacpp": "llama.cpp",
    "me": "llama-cpp-python",
    "vllm": "vllm",
    "organization_owner": "lmstudio",
    "library": "ollama",
}
GENERIC = "generic"


def from_models(payload: Any) -> Found | None:
    """The server a `/v1/models` answer names, if its `owned_by` values agree on one."""
    models = payload.get("data") if isinstance(payload, dict) else None
    owners = {m.get("owned_by") for m in models or [] if isinstance(m, dict)}
    servers = {OWNERS[o] for o in owners if isinstance(o, str) and o in OWNERS}
    if len(servers) == 1 and len(owners) == 1:
        server = servers.pop()
        return server, f"detected: /v1/models says owned_by={owners.pop()!r}"
    return None


def from_version(path: str, payload: Any) -> Found | None:
    """Ollama's `/api/version` and vLLM's `/version` both answer `{"version": "..."}`; LM
    Studio's `/api/v0/models` lists models with a `publisher` and load `state`."""
    if path == "/api/v0/models":
        models = payload.get("data") if isinstance(payload, dict) else None
        if models and all(isinstance(m, dict) and "state" in m for m in models):
            return "lmstudio", "detected: /api/v0/models answered (LM Studio's REST API)"
        return None
    version = payload.get("version") if isinstance(payload, dict) else None
    if not isinstance(version, str):
        return None
    server = "ollama" if path == "/api/version" else "vllm"
    return server, f"detected: {path} answered version {version}"


VERSION_PROBES = ("/api/version", "/api/v0/models", "/version")


def server_root(base_url: str) -> str:
    """`http://host:11434/v1` -> `http://host:11434`: version endpoints live at the root."""
    return base_url.rstrip("/").removesuffix("/v1")


async def detect(provider: OpenAIChatProvider, timeout: float) -> Found:
    """The local server behind `provider`, and why; never raises."""
    answered = False
    payload = await _bounded(provider.get_json(provider.models_url), timeout)
    answered |= payload is not None
    found = from_models(payload)
    if found:
        return found
    root = server_root(provider.base_url)
    for path in VERSION_PROBES:
        payload = await _bounded(provider.get_json(root + path), timeout)
        answered |= payload is not None
        found = from_version(path, payload)
        if found:
            return found
    if not answered:
        return GENERIC, "no detection probe got a JSON answer (server down?): generic profile"
    return GENERIC, "not recognised from /v1/models or version endpoints: generic profile"


async def detect_local(router: Router, timeout: float) -> Found | None:
    """At start-up: detect the local server when a route needs it, and tell the router."""
    if not router.needs_detection:
        return None
    provider = router.local_provider()
    if not isinstance(provider, OpenAIChatProvider):
        return None
    server, reason = await detect(provider, timeout)
    router.set_detected(server, reason)
    log.info("local server profile: %s (%s)", server, reason, extra={"fields": {"backend": LOCAL}})
    return server, reason


async def _bounded(probe: Awaitable[Any], timeout: float) -> Any:
    try:
        async with asyncio.timeout(timeout):
            return await probe
    except TimeoutError:
        return None
