"""The store's API, the same tests on SQLite and on a real PostgreSQL (`store_url`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from anthropic_router.store import IntegrityError, Store, StoreError, open_store

pytestmark = pytest.mark.anyio

TABLE = """CREATE TABLE items (
    id TEXT PRIMARY KEY,
    n BIGINT NOT NULL,
    ratio DOUBLE PRECISION,
    flag INTEGER NOT NULL DEFAULT 0,
    blob BYTEA,
    note TEXT
)"""


@pytest.fixture
async def store(store_url: str, anyio_backend: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    await opened.execute(TABLE)
    yield opened
    await opened.close()


async def test_dialect_names_the_database(store: Store, store_url: str) -> None:
    assert store.dialect == store_url.split(":", 1)[0]


async def test_execute_returns_rowcount(store: Store) -> None:
    assert await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("a", 1)) == 1
    await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("b", 2))
    assert await store.execute("UPDATE items SET n = n + 10") == 2
    assert await store.execute("DELETE FROM items WHERE id = ?", ("missing",)) == 0
    assert await store.execute("DELETE FROM items WHERE n > ?", (11,)) == 1


async def test_values_round_trip_with_portable_types(store: Store) -> None:
    row = ("x", 2**53 + 1, 0.25, True, b"\x00\xff bytes", "naïve ✓ text")
    await store.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", row)
    found = await store.fetchone("SELECT * FROM items WHERE id = ?", ("x",))
    assert found == {
        "id": "x", "n": 2**53 + 1, "ratio": 0.25, "flag": 1,
        "blob": b"\x00\xff bytes", "note": "naïve ✓ text",
    }  # fmt: skip


async def test_fetch_returns_dicts_in_order(store: Store) -> None:
    await store.executemany(
        "INSERT INTO items (id, n) VALUES (?, ?)", [(f"k{i:02d}", i) for i in range(20)]
    )
    rows = await store.fetch("SELECT id, n FROM items WHERE n >= ? ORDER BY n LIMIT 3", (5,))
    assert rows == [{"id": "k05", "n": 5}, {"id": "k06", "n": 6}, {"id": "k07", "n": 7}]
    assert await store.fetch("SELECT id FROM items WHERE n < ?", (0,)) == []
    assert await store.fetchone("SELECT id FROM items WHERE id = ?", ("nope",)) is None
    count = await store.fetchone("SELECT count(*) AS c FROM items")
    assert count == {"c": 20}


async def test_executemany_is_all_or_nothing(store: Store) -> None:
    await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("dup", 0))
    rows = [("new1", 1), ("new2", 2), ("dup", 3)]
    with pytest.raises(IntegrityError):
        await store.executemany("INSERT INTO items (id, n) VALUES (?, ?)", rows)
    assert await store.fetch("SELECT id FROM items ORDER BY id") == [{"id": "dup"}]
    await store.executemany("INSERT INTO items (id, n) VALUES (?, ?)", iter(rows[:2]))
    assert len(await store.fetch("SELECT id FROM items")) == 3


async def test_unique_violation_is_integrity_error(store: Store) -> None:
    await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("a", 1))
    with pytest.raises(IntegrityError):
        await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("a", 2))
    with pytest.raises(IntegrityError):
        await store.execute("INSERT INTO items (id) VALUES (?)", ("no-n",))
    assert isinstance(IntegrityError("x"), StoreError)


async def test_bad_sql_is_store_error(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        await store.fetch("SELECT nope FROM items")
    assert "nope" in str(caught.value)
    # The store is still usable afterwards.
    assert await store.fetch("SELECT id FROM items") == []


async def test_upsert_and_returning_work_on_both(store: Store) -> None:
    upsert = (
        "INSERT INTO items (id, n) VALUES (?, ?) "
        "ON CONFLICT (id) DO UPDATE SET n = items.n + excluded.n RETURNING n"
    )
    assert await store.fetch(upsert, ("u", 5)) == [{"n": 5}]
    assert await store.fetchone(upsert, ("u", 7)) == {"n": 12}


async def test_placeholder_inside_literal_is_not_a_parameter(store: Store) -> None:
    await store.execute("INSERT INTO items (id, n, note) VALUES (?, ?, 'why? 100%')", ("q", 1))
    row = await store.fetchone("SELECT note, 'a?b' AS lit FROM items WHERE id = ?", ("q",))
    assert row == {"note": "why? 100%", "lit": "a?b"}
    like = await store.fetch("SELECT id FROM items WHERE note LIKE '%?%' AND n = ?", (1,))
    assert like == [{"id": "q"}]


async def test_transaction_commits_on_exit(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("t1", 1))
        await tx.executemany("INSERT INTO items (id, n) VALUES (?, ?)", [("t2", 2), ("t3", 3)])
        # The transaction sees its own writes.
        assert await tx.fetchone("SELECT count(*) AS c FROM items") == {"c": 3}
        assert await tx.fetch("SELECT id FROM items WHERE n = ?", (2,)) == [{"id": "t2"}]
    assert await store.fetchone("SELECT count(*) AS c FROM items") == {"c": 3}


async def test_transaction_rolls_back_on_error(store: Store) -> None:
    await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("keep", 1))
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.execute("UPDATE items SET n = 99 WHERE id = ?", ("keep",))
            await tx.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("gone", 2))
            raise RuntimeError("boom")
    assert await store.fetch("SELECT id, n FROM items") == [{"id": "keep", "n": 1}]


async def test_transaction_rolls_back_on_failed_statement(store: Store) -> None:
    with pytest.raises(IntegrityError):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("a", 1))
            await tx.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("a", 2))
    assert await store.fetch("SELECT id FROM items") == []


async def test_cancelled_transaction_rolls_back(store: Store) -> None:
    inside = asyncio.Event()

    async def work() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("c", 1))
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.ensure_future(work())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.fetch("SELECT id FROM items") == []
    # And the store takes new transactions.
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("after", 1))
    assert await store.fetch("SELECT id FROM items") == [{"id": "after"}]


async def test_store_call_inside_own_transaction_is_refused(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("a", 1))
        with pytest.raises(StoreError, match="Tx"):
            await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("b", 1))
    assert await store.fetch("SELECT id FROM items") == [{"id": "a"}]


async def test_concurrent_transactions_do_not_lose_updates(store: Store) -> None:
    await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", ("counter", 0))
    select = "SELECT n FROM items WHERE id = ?"
    if store.dialect == "postgresql":
        select += " FOR UPDATE"

    async def increment() -> None:
        async with store.transaction() as tx:
            row = await tx.fetchone(select, ("counter",))
            assert row is not None
            await asyncio.sleep(0)  # let the others run in between
            await tx.execute("UPDATE items SET n = ? WHERE id = ?", (row["n"] + 1, "counter"))

    await asyncio.gather(*(increment() for _ in range(20)))
    assert await store.fetchone(select.removesuffix(" FOR UPDATE"), ("counter",)) == {"n": 20}


async def test_readers_see_committed_writes_at_once(store: Store) -> None:
    for i in range(30):
        await store.execute("INSERT INTO items (id, n) VALUES (?, ?)", (f"r{i}", i))
        assert await store.fetchone("SELECT n FROM items WHERE id = ?", (f"r{i}",)) == {"n": i}


async def test_closed_store_refuses_calls(store_url: str, anyio_backend: str) -> None:
    store = await open_store(store_url)
    await store.close()
    with pytest.raises(StoreError):
        await store.fetch("SELECT 1 AS one")
