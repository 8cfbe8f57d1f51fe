"""The batch tables and their statements on a real store, SQLite and PostgreSQL alike:
claims and leases, the fenced final write, cancel, expiry, ending, archive, listing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from anthropic_router.batches import shapes, storage
from anthropic_router.store import Store, open_store

pytestmark = pytest.mark.anyio
T0 = 1_800_000_000.0
LEASE = 30.0


@pytest.fixture
async def store(store_url: str, anyio_backend: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    yield opened
    await opened.close()


async def _batch(store: Store, n: int, created: float = T0, owner: str | None = "key_a") -> str:
    batch_id = shapes.new_batch_id()
    batch = {
        "id": batch_id,
        "owner": owner,
        "headers": "{}",
        "created_at": created,
        "expires_at": created + 86400,
    }
    await storage.insert_batch(store, batch, [(f"c{i}", f'{{"i": {i}}}') for i in range(n)])
    return batch_id


async def _states(store: Store, batch_id: str) -> dict[str, str]:
    rows = await store.fetch(
        "SELECT custom_id, state FROM message_batch_requests WHERE batch_id = ?", (batch_id,)
    )
    return {r["custom_id"]: r["state"] for r in rows}


async def test_a_claim_leases_due_requests_once(store: Store) -> None:
    batch_id = await _batch(store, 5)
    first = await storage.claim(store, "one", 3, T0 + 1, LEASE)
    assert [c.custom_id for c in first] == ["c0", "c1", "c2"]
    assert all(c.batch_id == batch_id and c.attempts == 1 for c in first)
    assert first[0].params == '{"i": 0}'
    second = await storage.claim(store, "two", 10, T0 + 1, LEASE)
    assert [c.custom_id for c in second] == ["c3", "c4"]
    assert await storage.claim(store, "three", 10, T0 + 2, LEASE) == []


async def test_concurrent_claims_never_share_a_request(store: Store) -> None:
    await _batch(store, 60)
    claims = await asyncio.gather(
        *(storage.claim(store, f"owner{i}", 7, T0 + 1, LEASE) for i in range(6))
    )
    taken = [c.custom_id for claim in claims for c in claim]
    assert len(taken) == len(set(taken)) == 42


async def test_an_expired_lease_is_reclaimed_and_fences_the_old_owner(store: Store) -> None:
    batch_id = await _batch(store, 1)
    [old] = await storage.claim(store, "dead", 1, T0 + 1, LEASE)
    assert await storage.claim(store, "other", 1, T0 + 2, LEASE) == []  # still leased
    [new] = await storage.claim(store, "other", 1, T0 + 2 + LEASE, LEASE)
    assert new.attempts == 2 and new.custom_id == old.custom_id
    # The old owner comes back late: its write is dropped, the new owner's is kept.
    assert not await storage.finish(store, "dead", old, "succeeded", b'{"v":"old"}', T0 + 40)
    assert await storage.finish(store, "other", new, "succeeded", b'{"v":"new"}', T0 + 41)
    assert not await storage.finish(store, "other", new, "succeeded", b'{"v":"again"}', T0 + 42)
    pages = [rows async for rows in storage.result_rows(store, batch_id, 10)]
    assert [[(r["state"], r["result"]) for r in rows] for rows in pages] == [
        [("succeeded", '{"v":"new"}')]
    ]


async def test_renewal_keeps_a_lease_alive(store: Store) -> None:
    await _batch(store, 2)
    await storage.claim(store, "me", 2, T0 + 1, LEASE)
    assert await storage.renew(store, "me", T0 + 1 + 3 * LEASE) == 2
    assert await storage.claim(store, "thief", 2, T0 + 2 * LEASE, LEASE) == []


async def test_retry_later_hands_the_request_back_after_a_delay(store: Store) -> None:
    await _batch(store, 1)
    [item] = await storage.claim(store, "me", 1, T0 + 1, LEASE)
    assert await storage.retry_later(store, "me", item, T0 + 100)
    assert await storage.claim(store, "any", 1, T0 + 99, LEASE) == []
    [again] = await storage.claim(store, "any", 1, T0 + 100, LEASE)
    assert again.attempts == 2


async def test_release_hands_leases_back_at_once(store: Store) -> None:
    await _batch(store, 3)
    await storage.claim(store, "leaving", 3, T0 + 1, LEASE)
    assert await storage.release(store, "leaving", T0 + 2) == 3
    assert len(await storage.claim(store, "staying", 3, T0 + 2, LEASE)) == 3


async def test_a_batch_ends_when_its_last_request_is_written(store: Store) -> None:
    batch_id = await _batch(store, 3)
    items = await storage.claim(store, "me", 3, T0 + 1, LEASE)
    await storage.finish(store, "me", items[0], "succeeded", b"{}", T0 + 2)
    await storage.finish(store, "me", items[1], "errored", b"{}", T0 + 2)
    assert not await storage.end_if_done(store, batch_id, T0 + 2)
    await storage.finish(store, "me", items[2], "succeeded", b"{}", T0 + 3)
    assert await storage.end_if_done(store, batch_id, T0 + 3)
    assert not await storage.end_if_done(store, batch_id, T0 + 4)  # once
    row = await storage.get_batch(store, batch_id)
    assert row is not None
    assert shapes.message_batch(row, "h")["request_counts"] == {
        "processing": 0,
        "succeeded": 2,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    assert row["ended_at"] == T0 + 3


async def test_cancel_settles_what_is_not_running_and_running_ones_finish(store: Store) -> None:
    batch_id = await _batch(store, 4)
    running = await storage.claim(store, "me", 1, T0 + 1, LEASE)
    await storage.cancel_batch(store, batch_id, T0 + 2)
    assert await storage.claim(store, "me", 4, T0 + 3, LEASE) == []
    assert await _states(store, batch_id) == {
        "c0": "pending",
        "c1": "canceled",
        "c2": "canceled",
        "c3": "canceled",
    }
    row = await storage.get_batch(store, batch_id)
    assert row is not None and row["status"] == "canceling"
    assert row["cancel_initiated_at"] == T0 + 2
    assert await storage.finish(store, "me", running[0], "succeeded", b"{}", T0 + 4)
    assert await storage.sweep(store, T0 + 5, 86400) == [batch_id]
    row = await storage.get_batch(store, batch_id)
    assert row is not None and (row["status"], row["succeeded"], row["canceled"]) == (
        "ended",
        1,
        3,
    )


async def test_a_canceling_batch_whose_runner_died_ends_after_the_lease(store: Store) -> None:
    batch_id = await _batch(store, 2)
    await storage.claim(store, "dead", 1, T0 + 1, LEASE)
    await storage.cancel_batch(store, batch_id, T0 + 2)
    assert await storage.sweep(store, T0 + 3, 86400) == []
    assert await storage.sweep(store, T0 + 2 + LEASE, 86400) == [batch_id]
    assert set((await _states(store, batch_id)).values()) == {"canceled"}


async def test_expiry_settles_what_is_left(store: Store) -> None:
    batch_id = await _batch(store, 3)
    items = await storage.claim(store, "me", 1, T0 + 1, LEASE)
    await storage.finish(store, "me", items[0], "succeeded", b"{}", T0 + 2)
    assert await storage.claim(store, "me", 3, T0 + 86400, LEASE) == []  # past expires_at
    assert await storage.sweep(store, T0 + 86401, 29 * 86400) == [batch_id]
    assert await _states(store, batch_id) == {"c0": "succeeded", "c1": "expired", "c2": "expired"}


async def test_ended_batches_are_archived_after_the_retention(store: Store) -> None:
    batch_id = await _batch(store, 2)
    for item in await storage.claim(store, "me", 2, T0 + 1, LEASE):
        await storage.finish(store, "me", item, "succeeded", b"{}", T0 + 2)
    await storage.end_if_done(store, batch_id, T0 + 2)
    await storage.sweep(store, T0 + 100, 100)
    row = await storage.get_batch(store, batch_id)
    assert row is not None and row["archived_at"] is None
    await storage.sweep(store, T0 + 103, 100)
    row = await storage.get_batch(store, batch_id)
    assert row is not None and row["archived_at"] == T0 + 103 and row["succeeded"] == 2
    assert [rows async for rows in storage.result_rows(store, batch_id, 10)] == []


async def test_results_come_in_pages_in_request_order(store: Store) -> None:
    batch_id = await _batch(store, 25)
    pages = [rows async for rows in storage.result_rows(store, batch_id, 10)]
    assert [len(rows) for rows in pages] == [10, 10, 5]
    assert [r["custom_id"] for rows in pages for r in rows] == [f"c{i}" for i in range(25)]


async def test_listing_is_newest_first_with_both_cursors(store: Store) -> None:
    ids = [await _batch(store, 1, created=T0 + i) for i in range(7)]
    newest = list(reversed(ids))
    rows, more = await storage.list_batches(store, None, 3)
    assert [r["id"] for r in rows] == newest[:3] and more
    after = await storage.get_batch(store, newest[2])
    rows, more = await storage.list_batches(store, None, 3, after=after)
    assert [r["id"] for r in rows] == newest[3:6] and more
    after = await storage.get_batch(store, newest[5])
    rows, more = await storage.list_batches(store, None, 3, after=after)
    assert [r["id"] for r in rows] == newest[6:] and not more
    before = await storage.get_batch(store, newest[5])
    rows, more = await storage.list_batches(store, None, 2, before=before)
    assert [r["id"] for r in rows] == newest[3:5] and more


async def test_listing_and_lookup_by_owner(store: Store) -> None:
    mine = await _batch(store, 1, owner="key_a")
    theirs = await _batch(store, 1, owner="key_b")
    rows, _ = await storage.list_batches(store, "key_a", 10)
    assert [r["id"] for r in rows] == [mine]
    assert await storage.get_batch(store, theirs, "key_a") is None
    assert await storage.get_batch(store, theirs) is not None


async def test_delete_removes_the_batch_and_its_requests(store: Store) -> None:
    batch_id = await _batch(store, 3)
    await storage.delete_batch(store, batch_id)
    assert await storage.get_batch(store, batch_id) is None
    assert await _states(store, batch_id) == {}


async def test_gauges_count_batches_by_status_and_pending_requests(store: Store) -> None:
    first = await _batch(store, 3)
    await _batch(store, 2)
    await storage.cancel_batch(store, first, T0 + 1)
    by_status, depth = await storage.gauges(store)
    assert by_status == {"in_progress": 1, "canceling": 1} and depth == 2


async def test_finish_and_claim_write_and_lease_in_one_turn(store: Store) -> None:
    batch_id = await _batch(store, 4)
    first = await storage.claim(store, "me", 2, T0 + 1, LEASE)
    done = [(first[0], "succeeded", b"{}"), (first[1], "errored", b"{}")]
    written, claimed = await storage.finish_and_claim(store, "me", done, 3, T0 + 2, LEASE)
    assert written == [True, True]
    assert [c.custom_id for c in claimed] == ["c2", "c3"]
    written, claimed = await storage.finish_and_claim(store, "me", done, 0, T0 + 3, LEASE)
    assert written == [False, False] and claimed == []  # already written: fenced
    states = await _states(store, batch_id)
    assert states == {"c0": "succeeded", "c1": "errored", "c2": "pending", "c3": "pending"}
