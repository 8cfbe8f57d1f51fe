"""The usage ledger: one row per /v1/messages exchange (interactive or batch), written in
batches off the request path.

`append` only puts a small tuple on a bounded in-memory queue: it never awaits and never
blocks, so a slow or unreachable database cannot slow a request. When the queue is full
the row is dropped, counted (`dropped`) and logged at most once per LOG_EVERY seconds. The
writer task takes up to BATCH rows every LEDGER_FLUSH_INTERVAL seconds (sooner when BATCH
are waiting), prices them (prices.py), and writes them with the per-key spend they add in
one transaction. Rows older than LEDGER_RETENTION_DAYS are deleted once an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from anthropic_router.gateway.keys import KeyRecord
from anthropic_router.gateway.limits import Spend, period_of
from anthropic_router.gateway.prices import PriceTable, Usage
from anthropic_router.observability import Exchange
from anthropic_router.store import Store, StoreError

log = logging.getLogger("anthropic_router.ledger")

BATCH = 500
LOG_EVERY = 10.0
RETENTION_EVERY = 3600.0
Spent = dict[tuple[str, str], float]  # (key id, budget period) -> USD
Pending = tuple[Exchange, KeyRecord | None, str | None, float]  # record, key, batch, ended

INSERT = (
    "INSERT INTO usage_ledger (request_id, ts, minute, key_id, key_name, route, backend,"
    " upstream_model, status, error_type, stream, service_tier, batch_id, input_tokens,"
    " output_tokens, cache_read_tokens, cache_creation_tokens, cache_creation_1h_tokens,"
    " web_search_requests, cost_usd, cost_source, latency_ms, ttft_ms, cache_hit)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)
ADD_SPEND = (
    "INSERT INTO key_spend (key_id, period, spent_usd) VALUES (?, ?, ?)"
    " ON CONFLICT (key_id, period) DO UPDATE"
    " SET spent_usd = key_spend.spent_usd + excluded.spent_usd"
)


@dataclass(slots=True)
class Entry:
    """What the ledger keeps of a finished exchange until it is written."""

    request_id: str
    ts: float
    key_id: str | None
    key_name: str | None
    budget_period: str | None
    route: str | None
    backend: str | None
    upstream_model: str | None
    status: int
    error_type: str | None
    stream: bool
    batch_id: str | None
    usage: Usage
    upstream_cost: float | None
    latency_ms: float | None
    ttft_ms: float | None
    cache_hit: int | None


def usage_of(usage: dict[str, Any] | None) -> Usage:
    """Anthropic `usage` as ledger counts (missing or odd fields count 0)."""
    if not usage:
        return Usage()
    creation = usage.get("cache_creation")
    one_hour = creation.get("ephemeral_1h_input_tokens") if isinstance(creation, dict) else 0
    tools = usage.get("server_tool_use")
    searches = tools.get("web_search_requests") if isinstance(tools, dict) else 0
    return Usage(
        input=_int(usage.get("input_tokens")),
        output=_int(usage.get("output_tokens")),
        cache_read=_int(usage.get("cache_read_input_tokens")),
        cache_write=_int(usage.get("cache_creation_input_tokens")),
        cache_write_1h=_int(one_hour),
        web_searches=_int(searches),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cache_hit(record: Exchange) -> int | None:
    """The response cache's verdict where the record has one (`cache`: "hit" 1, "miss" 0;
    "bypass" or none: None, no lookup was made)."""
    return _CACHE_RESULTS.get(getattr(record, "cache", None))


_CACHE_RESULTS: dict[object, int] = {"hit": 1, "miss": 0, True: 1, False: 0}


def entry_of(record: Exchange, key: KeyRecord | None, batch_id: str | None, ended: float) -> Entry:
    """The row's values, taken from the record in the writer (off the request path)."""
    timings = record.timings
    total = timings.get("total")
    return Entry(
        request_id=record.request_id,
        ts=ended - (total or 0.0) / 1000,
        key_id=record.client_key_id,
        key_name=key.name if key is not None else None,
        budget_period=key.budget_period if key is not None else None,
        route=record.client_model,
        backend=record.backend,
        upstream_model=record.upstream_model,
        status=record.status,
        error_type=record.error_type,
        stream=record.stream,
        batch_id=batch_id,
        usage=usage_of(record.usage),
        upstream_cost=record.cost_usd,
        latency_ms=total,
        ttft_ms=timings.get("first_token"),
        cache_hit=cache_hit(record),
    )


class Ledger:
    """The bounded queue and its writer task (`start`/`close`)."""

    def __init__(
        self,
        store: Store,
        prices: PriceTable,
        spend: Spend | None = None,
        *,
        queue_size: int = 10_000,
        flush_interval: float = 1.0,
        retention_days: int = 90,
    ) -> None:
        self.store = store
        self.prices = prices
        self.spend = spend
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.retention_days = retention_days
        self.appended = self.written = self.dropped = self.failed = 0
        # The finished records themselves: the request path does no more than queue them.
        self._queue: deque[Pending] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = 0.0
        self._last_retention = 0.0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def append(
        self, record: Exchange, key: KeyRecord | None = None, batch_id: str | None = None
    ) -> None:
        """Queue a finished exchange's row; never blocks. A full queue drops the row
        (counted, and logged at most once per LOG_EVERY seconds)."""
        if len(self._queue) >= self.queue_size:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= LOG_EVERY:
                self._last_drop_log = now
                log.warning(
                    "usage ledger queue full: rows dropped",
                    extra={"fields": {"dropped_total": self.dropped, "queue": self.queue_size}},
                )
            return
        self._queue.append((record, key, batch_id, time.time()))
        self.appended += 1
        if len(self._queue) >= BATCH:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop the writer and write what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            if not await self.flush():
                break

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if not await self.flush() or len(self._queue) < BATCH:
                    break
            await self._apply_retention()

    async def flush(self) -> bool:
        """Write up to BATCH queued rows; False when the store refused them (then dropped)."""
        pending = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
        if not pending:
            return True
        entries = [entry_of(*item) for item in pending]
        rows, spend = self._rows(entries)
        try:
            async with self.store.transaction() as tx:
                await tx.executemany(INSERT, rows)
                if spend:
                    await tx.executemany(ADD_SPEND, [(*k, v) for k, v in spend.items()])
        except StoreError as error:
            self.failed += len(entries)
            log.warning(
                "usage ledger write failed: rows dropped",
                extra={"fields": {"rows": len(entries), "error": str(error)}},
            )
            return False
        self.written += len(entries)
        if self.spend is not None:
            for (key_id, period), cost in spend.items():
                self.spend.add(key_id, period, cost)
        return True

    def _rows(self, entries: list[Entry]) -> tuple[list[tuple[Any, ...]], Spent]:
        rows: list[tuple[Any, ...]] = []
        spend: Spent = {}
        for entry in entries:
            usage = entry.usage
            cost, source = self._price(entry)
            if cost is not None and entry.key_id and entry.budget_period:
                period, _ = period_of(entry.budget_period, entry.ts)
                spend[(entry.key_id, period)] = spend.get((entry.key_id, period), 0.0) + cost
            rows.append(
                (
                    entry.request_id, entry.ts, int(entry.ts // 60), entry.key_id,
                    entry.key_name, entry.route, entry.backend, entry.upstream_model,
                    entry.status, entry.error_type, int(entry.stream),
                    "batch" if entry.batch_id else "standard", entry.batch_id,
                    usage.input, usage.output, usage.cache_read, usage.cache_write,
                    usage.cache_write_1h, usage.web_searches, cost, source, entry.latency_ms,
                    entry.ttft_ms, entry.cache_hit,
                )
            )  # fmt: skip
        return rows, spend

    def _price(self, entry: Entry) -> tuple[float | None, str | None]:
        """The row's cost and where it came from (None, None: unknown)."""
        if entry.upstream_cost is not None:
            return entry.upstream_cost, "upstream"
        cost = self.prices.cost(entry.backend, entry.upstream_model, entry.usage)
        return cost, "price_table" if cost is not None else None

    async def _apply_retention(self) -> None:
        now = time.time()
        if not self.retention_days or now - self._last_retention < RETENTION_EVERY:
            return
        self._last_retention = now
        cutoff = now - self.retention_days * 86400
        try:
            deleted = await self.store.execute("DELETE FROM usage_ledger WHERE ts < ?", (cutoff,))
        except StoreError as error:
            log.warning("usage ledger retention failed", extra={"fields": {"error": str(error)}})
            return
        if deleted:
            log.info("usage ledger rows expired", extra={"fields": {"deleted": deleted}})
