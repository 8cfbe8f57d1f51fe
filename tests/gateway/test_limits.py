"""Limits, keys and the ledger used directly (no HTTP): the sliding-window arithmetic as
tables, the counters in memory and through a real redis-server (and its outage), key
lookups when the store is gone, and the ledger's bounded queue on a real SQLite store."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from anthropic_router.errors import ApiError
from anthropic_router.gateway.keys import KeyCache, KeyRecord, create_key, parse_expiry
from anthropic_router.gateway.ledger import Ledger
from anthropic_router.gateway.limits import (
    Counts,
    Limits,
    RateLimited,
    Spend,
    estimate,
    model_allowed,
    period_of,
    replenished_at,
    seconds_until_below,
)
from anthropic_router.gateway.prices import PriceTable
from anthropic_router.observability import Exchange
from anthropic_router.rediskv import RedisKV
from anthropic_router.store import Store, open_store
from support.services import RedisServer

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("current", "previous", "elapsed", "expected"),
    [(0, 0, 0.5, 0.0), (3, 0, 0.9, 3.0), (0, 10, 0.25, 7.5), (2, 4, 0.5, 4.0), (1, 6, 1.0, 1.0)],
)
def test_estimate(current: int, previous: int, elapsed: float, expected: float) -> None:
    assert estimate(current, previous, elapsed) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("current", "previous", "elapsed", "limit", "expected"),
    [
        (1, 0, 0.5, 5, 0.0),  # under the limit: no wait
        (5, 0, 0.5, 5, 30.0),  # the whole current window must start decaying: 30 s left
        (10, 0, 0.0, 5, 90.0),  # 60 s to the next window, then half of it decays
        (2, 6, 0.25, 5, 15.0),  # 2 + 6 * 0.75 = 6.5: the previous window must decay to 3
    ],
)
def test_seconds_until_below(
    current: int, previous: int, elapsed: float, limit: int, expected: float
) -> None:
    assert seconds_until_below(current, previous, elapsed, limit) == pytest.approx(expected)


def test_replenished_at_is_the_end_of_the_windows_still_counting() -> None:
    assert replenished_at(100, 1, 0, 6000.5) == 102 * 60
    assert replenished_at(100, 0, 1, 6000.5) == 101 * 60
    assert replenished_at(100, 0, 0, 6000.5) == 6000.5


def test_periods_are_utc_days_and_months() -> None:
    moment = parse_expiry("2026-12-31T23:59:00Z")
    assert period_of("day", moment) == ("2026-12-31", parse_expiry("2027-01-01T00:00:00Z"))
    assert period_of("month", moment) == ("2026-12", parse_expiry("2027-01-01T00:00:00Z"))
    assert period_of("month", parse_expiry("2026-02-10T00:00:00Z"))[0] == "2026-02"


@pytest.mark.parametrize(
    ("globs", "names", "allowed"),
    [
        (None, ("anything", None), True),
        (("claude-haiku-*",), ("claude-haiku-4-5", "anthropic/claude-haiku-4.5"), True),
        (("claude-haiku-*",), ("claude-opus-4-8", "anthropic/claude-opus-4.8"), False),
        (("anthropic/*",), ("my-alias", "anthropic/claude-opus-4.8"), True),  # the upstream
        ((), ("claude-opus-4-8", None), False),
    ],
)
def test_model_globs(globs: tuple[str, ...] | None, names: tuple[str, ...], allowed: bool) -> None:
    key = KeyRecord("key_x", "x", "sk-ar-x", 0.0, models=globs)
    assert model_allowed(key, names) is allowed


def test_counts_roll_to_the_next_window() -> None:
    counts = Counts(10, 4, 1)
    counts.roll(11)
    assert (counts.index, counts.current, counts.previous) == (11, 0, 4)
    counts.current = 2
    counts.roll(13)  # a window skipped: nothing left from before
    assert (counts.current, counts.previous) == (0, 0)


def _key(**limits: int) -> KeyRecord:
    return KeyRecord("key_limits", "limits", "sk-ar-l", time.time(), **limits)  # type: ignore[arg-type]


async def test_memory_counters_refuse_the_request_past_the_limit() -> None:
    limits = Limits(Spend(None, 5.0))
    key = _key(rpm=2)
    first = dict(await limits.admit(key, ("m",)))
    assert first[b"anthropic-ratelimit-requests-remaining"] in (b"1", b"0")
    await limits.admit(key, ("m",))
    with pytest.raises(RateLimited) as refused:
        await limits.admit(key, ("m",))
    assert refused.value.status == 429 and int(refused.value.retry_after or 0) >= 1
    # check-only (count_tokens) does not count, but is refused as well when full
    with pytest.raises(RateLimited):
        await limits.admit(key, ("m",), count=False)


async def test_tokens_counted_after_the_exchange() -> None:
    limits = Limits(Spend(None, 5.0))
    key = _key(tpm=100)
    await limits.admit(key, ("m",))
    await limits.add_tokens(key, 100)
    with pytest.raises(RateLimited) as refused:
        await limits.admit(key, ("m",))
    assert "100 tokens per minute" in refused.value.message


async def test_redis_counters_are_shared_and_an_outage_falls_back_to_memory(
    redis_server: RedisServer,
) -> None:
    kv = RedisKV(redis_server.url, prefix="test:", retry_interval=0.0)
    try:
        one, two = Limits(Spend(None, 5.0), kv), Limits(Spend(None, 5.0), kv)
        key = _key(rpm=2)
        await one.admit(key, ("m",))
        await two.admit(key, ("m",))
        with pytest.raises(RateLimited):
            await one.admit(key, ("m",))  # the two share one count
        redis_server.stop()
        # Redis is gone: this process's own counters decide (it has counted nothing yet).
        assert await two.admit(key, ("m",))
    finally:
        await kv.close()


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    opened = await open_store(f"sqlite:///{tmp_path / 'unit.db'}")
    yield opened  # type: ignore[misc]
    await opened.close()


async def test_key_lookups_survive_a_store_outage(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'keys.db'}")
    key, record = await create_key(store, "known")
    cache = KeyCache(store, ttl=0.0)  # every lookup goes to the store
    assert (await cache.lookup(key)) == record
    await store.close()
    assert (await cache.lookup(key)) == record  # known: the last answer stands
    with pytest.raises(ApiError) as refused:
        await cache.lookup("sk-ar-never-seen")
    assert refused.value.status == 503 and refused.value.retry_after == "1"


def _record(i: int) -> Exchange:
    record = Exchange(f"req_{i}", "POST", "/v1/messages")
    record.status, record.client_model, record.backend = 200, "claude-opus-4-8", "openrouter"
    record.upstream_model = "anthropic/claude-sonnet-4.5"
    record.usage = {"input_tokens": 1000, "output_tokens": 100}
    record.timings = {"total": 12.0}
    return record


async def test_ledger_queue_is_bounded_and_overflow_is_counted(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(store, PriceTable(), queue_size=3)
    with caplog.at_level(logging.WARNING, logger="anthropic_router.ledger"):
        for i in range(5):
            ledger.append(_record(i))
    assert (ledger.queued, ledger.appended, ledger.dropped) == (3, 3, 2)
    assert [r.message for r in caplog.records] == ["usage ledger queue full: rows dropped"]
    assert await ledger.flush()
    rows = await store.fetch("SELECT request_id, cost_usd, cost_source FROM usage_ledger")
    assert sorted(r["request_id"] for r in rows) == ["req_0", "req_1", "req_2"]
    # 1000 in at $3, 100 out at $15 per million: OpenRouter's Claude Sonnet 4.5 price
    assert rows[0]["cost_usd"] == pytest.approx(0.0045) and rows[0]["cost_source"] == "price_table"


async def test_ledger_write_failure_drops_the_batch_without_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'gone.db'}")
    ledger = Ledger(store, PriceTable())
    ledger.append(_record(1))
    await store.close()
    with caplog.at_level(logging.WARNING, logger="anthropic_router.ledger"):
        assert await ledger.flush() is False
    assert ledger.failed == 1 and ledger.queued == 0
    assert "usage ledger write failed" in caplog.text


async def test_ledger_adds_spend_per_key_and_period(store: Store) -> None:
    _, record = await create_key(store, "payer", budget_usd=1.0, budget_period="day")
    spend = Spend(store, ttl=60.0)
    ledger = Ledger(store, PriceTable(), spend)
    for i in range(3):
        exchange = _record(i)
        exchange.client_key_id, exchange.cost_usd = record.id, 0.25
        ledger.append(exchange, record)
    period, _ = period_of("day", time.time())
    assert await spend.spent(record.id, period) == 0.0  # read before the write ...
    assert await ledger.flush()
    assert await spend.spent(record.id, period) == pytest.approx(0.75)  # ... plus what it added
    row = await store.fetchone("SELECT spent_usd FROM key_spend WHERE key_id = ?", (record.id,))
    assert row is not None and row["spent_usd"] == pytest.approx(0.75)


async def test_batch_items_are_ledger_rows_of_their_owner(tmp_path: Path) -> None:
    """What the batch runner hands over: a record per item, the batch's owner key id."""
    from anthropic_router.config import Settings
    from anthropic_router.gateway import Gateway

    url = f"sqlite:///{tmp_path / 'batch.db'}"
    store = await open_store(url)
    _, owner = await create_key(store, "batcher", budget_usd=5.0, budget_period="month")
    settings = Settings(keys_enable=True, database_url=url, ledger_flush_interval=3600)
    gateway = Gateway(settings)
    await gateway.start(store)
    try:
        item = _record(7)
        item.path, item.client_key_id, item.cost_usd = "/v1/messages/batches", owner.id, 0.5
        await gateway.finished(item, batch_id="msgbatch_01")
        assert gateway.ledger is not None and await gateway.ledger.flush()
        row = await store.fetchone("SELECT * FROM usage_ledger WHERE request_id = 'req_7'")
        assert row is not None
        assert (row["service_tier"], row["batch_id"], row["key_name"]) == (
            "batch",
            "msgbatch_01",
            "batcher",
        )
        spent = await store.fetchone(
            "SELECT spent_usd FROM key_spend WHERE key_id = ?", (owner.id,)
        )
        assert spent is not None and spent["spent_usd"] == pytest.approx(0.5)
    finally:
        await gateway.close()
        await store.close()
