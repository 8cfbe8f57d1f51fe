"""CPU the gateway adds per request, in process: key lookup (cache hit), limits (rpm and
tpm, in memory), accounting and the ledger row queued; then the ledger writer's cost per
row (pricing and the batched SQLite insert, done off the request path).

    PYTHONPATH=src python bench/gateway_overhead.py

CPU is process time (all threads: SQLite runs off the event loop), so other load on the
machine does not inflate it the way wall time would.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from anthropic_router.config import Settings
from anthropic_router.gateway import Gateway
from anthropic_router.gateway.keys import create_key
from anthropic_router.observability import Exchange
from anthropic_router.routing import Router
from anthropic_router.store import open_store

N = 20_000


def _exchange(i: int) -> Exchange:
    exchange = Exchange(f"req_{i:024x}", "POST", "/v1/messages")
    return exchange


def _finish(exchange: Exchange) -> None:
    """What the relay fills in (usage, models, timings) for a served exchange."""
    exchange.status, exchange.backend = 200, "openrouter"
    exchange.client_model, exchange.upstream_model = (
        "claude-opus-4-8",
        "anthropic/claude-sonnet-4.5",
    )
    exchange.usage = {"input_tokens": 1200, "output_tokens": 80}
    exchange.timings = {"read": 0.1, "convert": 0.2, "upstream": 5.0, "total": 5.5}


async def _per_request(gateway: Gateway, key: str, route: object, n: int) -> float:
    start = time.process_time()
    for i in range(n):
        exchange = _exchange(i)
        await gateway.authenticate(key, exchange)
        await gateway.admit(exchange, route)  # type: ignore[arg-type]
        _finish(exchange)
        await gateway.finished(exchange)
    return (time.process_time() - start) / n * 1e6


async def _baseline(n: int) -> float:
    """The same loop without the gateway calls: the record's own cost, subtracted."""
    start = time.process_time()
    for i in range(n):
        _finish(_exchange(i))
    return (time.process_time() - start) / n * 1e6


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    url = f"sqlite:///{workdir / 'bench.db'}"
    os.environ.update(
        OPENROUTER_API_KEY="sk-bench", KEYS_ENABLE="true", DATABASE_URL=url,
        LEDGER_QUEUE_SIZE=str(N * 4), LEDGER_FLUSH_INTERVAL="3600",
    )  # fmt: skip
    settings = Settings()
    route = Router(settings).resolve("claude-opus-4-8")
    store = await open_store(url)
    key, _ = await create_key(store, "bench", rpm=10**9, tpm=10**12)
    gateway = Gateway(settings)
    await gateway.start(store)
    assert gateway.ledger is not None
    await _per_request(gateway, key, route, 2_000)  # warm: caches, price lookup
    await gateway.ledger.close()
    gateway.ledger.start()
    base = await _baseline(N)
    per_request = await _per_request(gateway, key, route, N) - base
    from anthropic_router.ui.stats import Live

    gateway.live = Live()  # ADMIN_API_KEY set: the status page's live figures too
    with_live = await _per_request(gateway, key, route, N) - base
    queued = gateway.ledger.queued
    start = time.process_time()
    while gateway.ledger.queued:
        await gateway.ledger.flush()
    per_row = (time.process_time() - start) / queued * 1e6
    await gateway.close()
    await store.close()
    print(f"keys + limits + accounting on the request path: {per_request:6.1f} us/request")
    print(f"... and the status page's live figures:          {with_live:6.1f} us/request")
    print(f"ledger writer (off the request path):           {per_row:6.1f} us/row")
    print(f"rows written: {gateway.ledger.written}, dropped: {gateway.ledger.dropped}")


if __name__ == "__main__":
    asyncio.run(main())
