"""The response cache (PROMPT_CACHE_ENABLE): whole answers kept and replayed; see
docs/16-caching.md. Not to be confused with Anthropic prompt caching (`cache_control`)."""

from __future__ import annotations

from typing import Any

from anthropic_router.cache.relay import CACHE_HEADER, ResponseCache
from anthropic_router.cache.stores import CacheStore, MemoryStore, RedisStore
from anthropic_router.config import Settings
from anthropic_router.relay import Relay


def open_store(settings: Settings, kv: Any = None, metrics: Any = None) -> CacheStore:
    """Redis through `kv` (a `rediskv.RedisKV`) when REDIS_URL is set, else memory."""
    if kv is None:
        return MemoryStore(settings.prompt_cache_max_bytes)
    from anthropic_router.rediskv import KVUnavailable

    def count(store: str, operation: str) -> None:
        if metrics is not None:
            metrics.CACHE_ERRORS.labels(store, operation).inc()

    return RedisStore(kv, settings.prompt_cache_namespace, KVUnavailable, count)


def wrap(inner: Relay, settings: Settings, kv: Any = None, metrics: Any = None) -> ResponseCache:
    return ResponseCache(
        inner,
        open_store(settings, kv, metrics),
        ttl=settings.prompt_cache_ttl,
        max_entry_bytes=settings.prompt_cache_max_entry_bytes,
        only_deterministic=settings.prompt_cache_only_deterministic,
        wait_timeout=min(settings.prompt_cache_wait_timeout, settings.request_timeout),
        metrics=metrics,
    )


__all__ = ["CACHE_HEADER", "ResponseCache", "open_store", "wrap"]
