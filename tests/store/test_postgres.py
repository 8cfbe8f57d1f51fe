"""What only the PostgreSQL store does: placeholder conversion, recovery from dropped
connections, and row locks that several instances share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from anthropic_router.store import Store, StoreError, open_store
from anthropic_router.store.postgres import to_pyformat

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ?", "SELECT %s"),
        ("INSERT INTO t VALUES (?, ?, ?)", "INSERT INTO t VALUES (%s, %s, %s)"),
        ("SELECT 'a?b', ?", "SELECT 'a?b', %s"),
        ("SELECT 'it''s?', ?", "SELECT 'it''s?', %s"),
        ('SELECT "odd?name" FROM t WHERE x = ?', 'SELECT "odd?name" FROM t WHERE x = %s'),
        ("SELECT 1 -- why?\nWHERE x = ?", "SELECT 1 -- why?\nWHERE x = %s"),
        ("SELECT /* ? */ ?", "SELECT /* ? */ %s"),
        (
            "SELECT n % 2 FROM t WHERE s LIKE '5%' AND x = ?",
            "SELECT n %% 2 FROM t WHERE s LIKE '5%%' AND x = %s",
        ),
        ("SELECT 1", "SELECT 1"),
        ("SELECT 'unterminated ?", "SELECT 'unterminated ?"),
    ],
)
def test_question_marks_become_pyformat(sql: str, expected: str) -> None:
    assert to_pyformat(sql) == expected


@pytest.fixture
async def pg(fresh_postgres_url: str, anyio_backend: str) -> AsyncIterator[Store]:
    store = await open_store(fresh_postgres_url, pool_size=4)
    await store.execute("CREATE TABLE jobs (id BIGINT PRIMARY KEY, owner TEXT)")
    yield store
    await store.close()


def _drop_connections(url: str) -> int:
    """What a database restart does to the pool: every connection of the router killed."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'anthropic-router' AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


async def test_reads_survive_dropped_connections(pg: Store, fresh_postgres_url: str) -> None:
    await asyncio.gather(*(pg.fetch("SELECT pg_sleep(0.02)") for _ in range(4)))  # grow the pool
    assert _drop_connections(fresh_postgres_url) >= 2
    for _ in range(5):
        assert await pg.fetchone("SELECT count(*) AS c FROM jobs") == {"c": 0}


async def test_one_write_fails_after_dropped_connections(
    pg: Store, fresh_postgres_url: str
) -> None:
    single = await open_store(fresh_postgres_url, pool_size=1)  # its one connection is dead
    try:
        await single.fetch("SELECT 1 AS one")
        assert _drop_connections(fresh_postgres_url) >= 1
        # A write is not retried (it may have run): it fails, and the pool is then healthy.
        with pytest.raises(StoreError, match="terminating connection"):
            await single.execute("INSERT INTO jobs VALUES (?, ?)", (1, None))
        for n in range(2, 6):
            assert await single.execute("INSERT INTO jobs VALUES (?, ?)", (n, None)) == 1
        async with single.transaction() as tx:
            assert await tx.fetchone("SELECT count(*) AS c FROM jobs") == {"c": 4}
    finally:
        await single.close()


async def test_skip_locked_claims_split_work_between_workers(pg: Store) -> None:
    await pg.executemany("INSERT INTO jobs VALUES (?, NULL)", [(n,) for n in range(40)])
    claim = (
        "UPDATE jobs SET owner = ? WHERE id IN (SELECT id FROM jobs WHERE owner IS NULL"
        " ORDER BY id LIMIT 5 FOR UPDATE SKIP LOCKED) RETURNING id"
    )

    async def worker(name: str) -> list[int]:
        got: list[int] = []
        while True:
            async with pg.transaction() as tx:
                rows = await tx.fetch(claim, (name,))
                await asyncio.sleep(0.005)  # hold the lock while others claim
            if not rows:
                return got
            got.extend(row["id"] for row in rows)

    claimed = await asyncio.gather(*(worker(f"w{i}") for i in range(3)))
    every = sorted(n for got in claimed for n in got)
    assert every == list(range(40))  # each job claimed once
    assert all(claimed)  # and every worker got some


async def test_pool_size_bounds_connections(fresh_postgres_url: str, anyio_backend: str) -> None:
    store = await open_store(fresh_postgres_url, pool_size=2)
    try:
        await asyncio.gather(*(store.fetch("SELECT pg_sleep(0.05)") for _ in range(6)))
        with psycopg.connect(fresh_postgres_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'anthropic-router'"
            ).fetchone()
        assert row is not None and row[0] <= 2
    finally:
        await store.close()


async def test_cancelled_while_waiting_for_a_row_lock(pg: Store, fresh_postgres_url: str) -> None:
    await pg.execute("INSERT INTO jobs VALUES (1, NULL)")
    with psycopg.connect(fresh_postgres_url) as other:  # another instance holds the row
        other.execute("SELECT id FROM jobs WHERE id = 1 FOR UPDATE")

        async def claim() -> None:
            async with pg.transaction() as tx:
                await tx.fetch("SELECT id FROM jobs WHERE id = 1 FOR UPDATE")
                await tx.execute("UPDATE jobs SET owner = 'cancelled' WHERE id = 1")

        task = asyncio.ensure_future(claim())
        await asyncio.sleep(0.1)  # waiting for the other's lock
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other.rollback()
    async with pg.transaction() as tx:
        await tx.execute("UPDATE jobs SET owner = 'next' WHERE id = 1")
    assert await pg.fetch("SELECT owner FROM jobs") == [{"owner": "next"}]
