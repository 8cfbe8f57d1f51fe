"""The SQLite store: the standard library's `sqlite3`, run off the event loop.

Why not aiosqlite: it runs one thread per connection too, but hides which connection a
statement lands on. Here there are exactly two, each on its own thread:

- the writer, for every write and every transaction. An `asyncio.Lock` makes it the single
  writer of this process; `BEGIN IMMEDIATE` takes SQLite's write lock at the start of a
  transaction, so two processes serialise there (waiting up to `busy_timeout`) instead of
  failing with SQLITE_BUSY half-way through;
- the reader, for statements that start with SELECT outside a transaction. In WAL mode
  readers never wait for the writer, so a long results download does not hold up claims.

WAL with `synchronous=NORMAL` survives a killed process without losing a committed
transaction (a power cut may lose the last ones). Foreign keys are enforced, as on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from anthropic_router.store.base import (
    IntegrityError,
    StoreError,
    Tx,
    enter_tx,
    leave_tx,
    portable_params,
    refuse_inside_tx,
)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
Row = dict[str, Any]


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _connect(path: str, *, readonly: bool) -> sqlite3.Connection:
    # isolation_level=None: no implicit BEGIN; transactions are the explicit ones below.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = _dict_row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if path != ":memory:":
        _use_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """WAL mode (persistent in the file). Switching can fail at once with "database is
    locked" while another process opens the same new file, without waiting on the busy
    handler: retry for up to the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].lower() == "select"


class _Thread:
    """One connection used from one dedicated thread."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.conn: sqlite3.Connection | None = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.conn
        if conn is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work, conn)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(f"sqlite: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def open(self, path: str, *, readonly: bool) -> None:
        loop = asyncio.get_running_loop()
        self.conn = await loop.run_in_executor(
            self._executor, lambda: _connect(path, readonly=readonly)
        )

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)


def _execute(sql: str, params: tuple[Any, ...]) -> Callable[[sqlite3.Connection], int]:
    return lambda conn: conn.execute(sql, params).rowcount


def _fetch(sql: str, params: tuple[Any, ...]) -> Callable[[sqlite3.Connection], list[Row]]:
    return lambda conn: conn.execute(sql, params).fetchall()


def _fetchone(sql: str, params: tuple[Any, ...]) -> Callable[[sqlite3.Connection], Row | None]:
    return lambda conn: conn.execute(sql, params).fetchone()


def _executemany(sql: str, rows: list[tuple[Any, ...]]) -> Callable[[sqlite3.Connection], None]:
    def work(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(sql, rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    return work


def _rows(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [portable_params(row) for row in rows]


class SQLiteTx:
    def __init__(self, writer: _Thread) -> None:
        self._writer = writer

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._writer.run(_execute(sql, portable_params(params)))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = _rows(rows)
        await self._writer.run(lambda conn: conn.executemany(sql, batch))

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._writer.run(_fetch(sql, portable_params(params)))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await self._writer.run(_fetchone(sql, portable_params(params)))


class SQLiteStore:
    """See the module docstring. Build with `await SQLiteStore.connect(path)`."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer = _Thread("store-sqlite-writer")
        # An in-memory database exists only on its one connection: no separate reader.
        self._reader = None if path == ":memory:" else _Thread("store-sqlite-reader")
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: str) -> SQLiteStore:
        store = cls(path)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            await store._writer.open(path, readonly=False)
            if store._reader is not None:
                await store._reader.open(path, readonly=True)
        except (sqlite3.Error, OSError) as exc:
            await store.close()
            raise StoreError(f"cannot open SQLite database {path}: {exc}") from exc
        return store

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        refuse_inside_tx(self)
        async with self._lock:
            return await self._writer.run(work)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._write(_execute(sql, portable_params(params)))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._write(_executemany(sql, _rows(rows)))

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._reader is not None and _is_read(sql):
            refuse_inside_tx(self)
            return await self._reader.run(_fetch(sql, portable_params(params)))
        return await self._write(_fetch(sql, portable_params(params)))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        if self._reader is not None and _is_read(sql):
            refuse_inside_tx(self)
            return await self._reader.run(_fetchone(sql, portable_params(params)))
        return await self._write(_fetchone(sql, portable_params(params)))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        refuse_inside_tx(self)
        async with self._lock:
            try:
                await self._writer.run(_execute("BEGIN IMMEDIATE", ()))
            except BaseException:
                # Cancelled while BEGIN ran on the thread: it may have begun all the same.
                await asyncio.shield(self._rollback_if_open())
                raise
            token = enter_tx(self)
            try:
                yield SQLiteTx(self._writer)
            except BaseException:
                leave_tx(token)
                # Shielded: a second cancellation must not leave the transaction open.
                await asyncio.shield(self._writer.run(_execute("ROLLBACK", ())))
                raise
            leave_tx(token)
            try:
                await self._writer.run(_execute("COMMIT", ()))
            except BaseException:
                await asyncio.shield(self._rollback_if_open())
                raise

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """Nothing to add: the migration transaction's BEGIN IMMEDIATE is the lock."""
        yield

    async def _rollback_if_open(self) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

        await self._writer.run(work)

    async def close(self) -> None:
        async with self._lock:
            await self._writer.close()
            if self._reader is not None:
                await self._reader.close()
