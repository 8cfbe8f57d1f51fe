"""The gateway a team shares: client keys with budgets and rate limits (keys.py,
limits.py), the usage ledger and its prices (ledger.py, prices.py), the Anthropic
Admin-API-shaped reports (reports.py); the status page lives in `ui/`.

`Gateway` holds them for one App. The HTTP handler calls, per request:
`authenticate` (a store key; PROXY_API_KEY is checked by the app first), `admit` before
the relay runs (raises the refusing ApiError, returns rate-limit headers), and `finished`
with the exchange record when it ends (tokens counted, a ledger row queued). The batches
feature calls `admit` at batch creation and `finished` for every batch item.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from anthropic_router.config import Settings
from anthropic_router.errors import ApiError, ConfigError
from anthropic_router.gateway.keys import KeyCache, KeyRecord, iso_time
from anthropic_router.gateway.ledger import Ledger, cache_hit
from anthropic_router.gateway.limits import Limits, Spend
from anthropic_router.gateway.prices import PriceTable, parse_overrides
from anthropic_router.observability import Exchange
from anthropic_router.routing import Route

Header = tuple[bytes, bytes]
log = logging.getLogger("anthropic_router.gateway")


def load_price_overrides(settings: Settings) -> PriceTable:
    """The price table with the routing file's `prices:` section; ConfigError names it."""
    path: Path | None = settings.model_map_file
    data: Any = None
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
            loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            data = loaded.get("prices") if isinstance(loaded, dict) else None
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"MODEL_MAP_FILE {path}: {exc}") from exc
    try:
        return PriceTable(parse_overrides(data))
    except ValueError as exc:
        raise ConfigError(f"MODEL_MAP_FILE {path}: {exc}") from None


class Gateway:
    """Keys, limits, ledger and live figures of one App; `start` once the store is open."""

    def __init__(self, settings: Settings, prices: PriceTable | None = None) -> None:
        self.settings = settings
        self.keys_enabled = settings.keys_enable
        self.prices = prices or load_price_overrides(settings)
        self.live: Any = None
        if settings.admin_api_key is not None:
            from anthropic_router.ui.stats import Live

            self.live = Live()
        self.store: Any = None
        self.keys: KeyCache | None = None
        self.limits: Limits | None = None
        self.ledger: Ledger | None = None
        self._records: dict[str, KeyRecord] = {}  # key id -> record, from the key cache

    async def start(self, store: Any, redis: Any = None) -> None:
        settings = self.settings
        self.store = store
        spend = Spend(store, settings.keys_cache_ttl)
        if self.keys_enabled:
            self.keys = KeyCache(store, settings.keys_cache_ttl)
            self.limits = Limits(spend, redis)
        if settings.ledger_enabled:
            self.ledger = Ledger(
                store,
                self.prices,
                spend,
                queue_size=settings.ledger_queue_size,
                flush_interval=settings.ledger_flush_interval,
                retention_days=settings.ledger_retention_days,
            )
            self.ledger.start()

    async def close(self) -> None:
        if self.ledger is not None:
            await self.ledger.close()

    async def authenticate(self, presented: str | None, exchange: Exchange) -> None:
        """Accept a usable store key (sets the record's key id and name) or raise 401."""
        if self.keys is None or not presented:
            raise ApiError("authentication_error", "invalid or missing API key")
        record = await self.keys.lookup(presented)
        if record is None:
            raise ApiError("authentication_error", "invalid or missing API key")
        exchange.client_key_id, exchange.key_name = record.id, record.name
        if record.revoked_at is not None:
            raise ApiError("authentication_error", "this API key has been revoked")
        if record.expires_at is not None and time.time() >= record.expires_at:
            message = f"this API key expired at {iso_time(record.expires_at)}"
            raise ApiError("authentication_error", message)
        self._records[record.id] = record

    def key_of(self, exchange: Exchange) -> KeyRecord | None:
        """The store key that authenticated `exchange` on this instance, if any."""
        if exchange.client_key_id is None:
            return None
        return self._records.get(exchange.client_key_id)

    async def admit(self, exchange: Exchange, route: Route, count: bool = True) -> list[Header]:
        """Before the relay runs: the key's limits (see limits.Limits.admit)."""
        key = self.key_of(exchange)
        if key is None or self.limits is None:
            return []
        names = (route.client_model, route.upstream_model)
        return await self.limits.admit(key, names, count=count)

    async def finished(self, exchange: Exchange, batch_id: str | None = None) -> None:
        """An exchange ended: count its tokens against its key, queue its ledger row. The
        client has its answer already: a failure here is logged, never raised."""
        try:
            await self._account(exchange, batch_id)
        except Exception:
            fields = {"request_id": exchange.request_id}
            log.exception("gateway accounting failed", extra={"fields": fields})

    async def _account(self, exchange: Exchange, batch_id: str | None) -> None:
        batch_id = batch_id or getattr(exchange, "batch_id", None)
        if not exchange.path.endswith("/v1/messages") and batch_id is None:
            return
        key = self.key_of(exchange)
        if key is None and batch_id is not None and exchange.client_key_id and self.keys:
            key = await self.keys.by_id(exchange.client_key_id)  # the batch's owner
        usage = exchange.usage or {}
        if key is not None and key.tpm and self.limits is not None and usage:
            tokens = sum(
                usage.get(name) or 0
                for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens")
            )
            await self.limits.add_tokens(key, tokens)
        if self.ledger is not None:
            self.ledger.append(exchange, key, batch_id)
        if self.live is not None:
            self.live.observe(exchange, exchange.key_name, cache_hit(exchange))


__all__ = ["Gateway", "load_price_overrides"]
