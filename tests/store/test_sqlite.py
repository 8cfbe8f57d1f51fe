"""What only the SQLite store does: paths, WAL, a reader that never waits for the writer,
and several processes writing one file."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from anthropic_router.store import open_store
from support.router import SRC_DIR

pytestmark = pytest.mark.anyio


async def test_relative_path_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///data/router.db")
    await store.close()
    with sqlite3.connect(tmp_path / "data" / "router.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT name FROM schema_migrations").fetchall() == [("init",)]


async def test_memory_database(anyio_backend: str) -> None:
    store = await open_store("sqlite:///:memory:")
    try:
        await store.execute("CREATE TABLE t (n BIGINT)")
        await store.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (?)", (3,))
        assert await store.fetchone("SELECT sum(n) AS s FROM t") == {"s": 6}
    finally:
        await store.close()


async def test_reads_do_not_wait_for_an_open_transaction(
    tmp_path: Path, anyio_backend: str
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        await store.execute("CREATE TABLE t (n BIGINT)")
        await store.execute("INSERT INTO t VALUES (1)")
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (2)")
            # From another task: served by the reader at once, from the last commit.
            seen = await asyncio.ensure_future(store.fetch("SELECT n FROM t ORDER BY n"))
            assert seen == [{"n": 1}]
        assert await store.fetch("SELECT n FROM t ORDER BY n") == [{"n": 1}, {"n": 2}]
    finally:
        await store.close()


WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from anthropic_router.store import open_store

    url, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)

    async def main():
        store = await open_store(url)
        for i in range(100):
            async with store.transaction() as tx:
                row = await tx.fetchone("SELECT n FROM counter WHERE id = 1")
                await tx.execute("UPDATE counter SET n = ? WHERE id = 1", (row["n"] + 1,))
                await tx.execute("INSERT INTO log VALUES (?, ?)", (name, i))
        await store.executemany("INSERT INTO log VALUES (?, ?)", [(name, 1000 + i) for i in range(100)])
        await store.close()

    asyncio.run(main())
    """
)


async def test_processes_writing_one_file_lose_nothing(tmp_path: Path, anyio_backend: str) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = await open_store(url)
    await store.execute("CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
    await store.execute("CREATE TABLE log (writer TEXT, i BIGINT)")
    await store.execute("INSERT INTO counter VALUES (1, 0)")
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(SRC_DIR)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"p{n}", str(go)], env=env, stderr=subprocess.PIPE
        )
        for n in range(3)
    ]
    time.sleep(0.3)
    go.touch()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    try:
        # Read-modify-write under BEGIN IMMEDIATE: no increment lost, no "database is locked".
        assert await store.fetchone("SELECT n FROM counter") == {"n": 300}
        rows = await store.fetch("SELECT writer, count(*) AS c FROM log GROUP BY writer")
        assert sorted(json.dumps(r) for r in rows) == sorted(
            json.dumps({"writer": f"p{n}", "c": 200}) for n in range(3)
        )
    finally:
        await store.close()


async def test_cancelled_while_waiting_for_the_write_lock(
    tmp_path: Path, anyio_backend: str
) -> None:
    path = tmp_path / "locked.db"
    store = await open_store(f"sqlite:///{path}")
    await store.execute("CREATE TABLE t (n BIGINT)")
    other = sqlite3.connect(path, isolation_level=None)  # another process's writer, say
    other.execute("BEGIN IMMEDIATE")
    try:

        async def write() -> None:
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")

        task = asyncio.ensure_future(write())
        await asyncio.sleep(0.1)  # its BEGIN IMMEDIATE now waits for the other writer
        task.cancel()
        other.execute("ROLLBACK")  # the BEGIN goes through, after the task was cancelled
        with pytest.raises(asyncio.CancelledError):
            await task
        # Nothing left open on the store's connection: the next transaction starts.
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (2)")
        assert await store.fetch("SELECT n FROM t") == [{"n": 2}]
    finally:
        other.close()
        await store.close()
