"""The PostgreSQL store: psycopg 3's async connections in a `psycopg_pool` pool.

Why psycopg rather than asyncpg: both are well kept and fast enough here (the hot paths
write batched ledger rows and claim batch work), but psycopg sends `str` parameters untyped
and lets the server cast them, as SQLite's dynamic typing does, so one SQL text behaves the
same on both dialects; asyncpg refuses any parameter whose Python type is not exactly the
column's. Its pool also checks broken connections out of the way by itself, and statements
used more than a few times are prepared automatically.

Connections run in autocommit mode: a lone statement is its own transaction (one round
trip), and `transaction()` issues BEGIN/COMMIT on one pooled connection.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from anthropic_router.store.base import (
    IntegrityError,
    StoreError,
    Tx,
    enter_tx,
    leave_tx,
    portable_params,
    redact_url,
    refuse_inside_tx,
)

Row = dict[str, Any]
Conn = psycopg.AsyncConnection[Row]
T = TypeVar("T")
# Seconds a call waits for a free pooled connection (all busy, or the database down and the
# pool reconnecting) before it fails with StoreError.
POOL_WAIT = 10.0
# Any fixed 64-bit number: the advisory lock id every instance of the router agrees on.
MIGRATION_LOCK = 0x616E_7468_726F_7574


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].lower() == "select"


@functools.lru_cache(maxsize=2048)
def to_pyformat(sql: str) -> str:
    """`?` placeholders to psycopg's `%s`, and literal `%` doubled. A `?` inside a quoted
    string, a quoted identifier or a comment is kept as written (it is not a placeholder)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in "'\"":
            end = sql.find(char, i + 1)
            # Doubled quotes ('it''s') simply reopen the literal on the next pass.
            end = n - 1 if end < 0 else end
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        else:
            out.append("%s" if char == "?" else "%%" if char == "%" else char)
            i += 1
    return "".join(out)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(f"postgresql: {exc}".strip()) from exc
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        raise StoreError(f"postgresql: {exc}".strip()) from exc


async def _execute(conn: Conn, sql: str, params: Sequence[Any]) -> int:
    with _errors():
        cursor = await conn.execute(to_pyformat(sql), portable_params(params))
        return cursor.rowcount


async def _executemany(conn: Conn, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    with _errors():
        async with conn.cursor() as cursor:
            await cursor.executemany(to_pyformat(sql), [portable_params(row) for row in rows])


async def _fetch(conn: Conn, sql: str, params: Sequence[Any]) -> list[Row]:
    with _errors():
        cursor = await conn.execute(to_pyformat(sql), portable_params(params))
        return await cursor.fetchall()


async def _fetchone(conn: Conn, sql: str, params: Sequence[Any]) -> Row | None:
    with _errors():
        cursor = await conn.execute(to_pyformat(sql), portable_params(params))
        return await cursor.fetchone()


class PostgresTx:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await _execute(self._conn, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await _executemany(self._conn, sql, rows)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await _fetch(self._conn, sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await _fetchone(self._conn, sql, params)


def _connect_kwargs(connect_timeout: float) -> dict[str, Any]:
    # libpq counts connect_timeout in whole seconds and treats values under 2 as 2.
    return {
        "autocommit": True,
        "row_factory": dict_row,
        "connect_timeout": max(2, round(connect_timeout)),
        "application_name": "anthropic-router",
    }


class PostgresStore:
    """See the module docstring. Build with `await PostgresStore.connect(url, ...)`."""

    dialect = "postgresql"

    def __init__(
        self, pool: psycopg_pool.AsyncConnectionPool[Conn], url: str, kwargs: dict[str, Any]
    ) -> None:
        self._pool = pool
        self._url = url
        self._kwargs = kwargs

    @classmethod
    async def connect(
        cls, url: str, *, pool_size: int = 10, connect_timeout: float = 5.0
    ) -> PostgresStore:
        kwargs = _connect_kwargs(connect_timeout)
        # One direct connection first: a wrong password or host fails here with libpq's own
        # message, where the pool would only report a timeout after retrying.
        try:
            probe = await psycopg.AsyncConnection.connect(url, **kwargs)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {redact_url(url)}: {exc}".strip()) from exc
        await probe.close()
        pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
            url,
            kwargs=kwargs,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=max(connect_timeout, POOL_WAIT),
            name="anthropic-router-store",
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout + 5)
        except psycopg_pool.PoolTimeout as exc:
            await pool.close()
            raise StoreError(f"cannot connect to {redact_url(url)}: {exc}") from exc
        return cls(pool, url, kwargs)

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """A session advisory lock on a connection of its own, held around the migration
        transaction. (A transaction-level lock would be taken after the transaction began:
        the catalog it reads could predate another instance's just committed tables.)"""
        with _errors():
            conn = await psycopg.AsyncConnection.connect(self._url, **self._kwargs)
        try:
            with _errors():
                await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            yield
        finally:
            await conn.close()  # ends the session, and its lock with it

    async def _on_connection(
        self, work: Callable[[Conn], Awaitable[T]], *, idempotent: bool = False
    ) -> T:
        """Run `work` on a pooled connection. After a database restart every pooled
        connection is dead: the first one found so makes the pool check all the idle ones
        (so one call fails, not one per connection), and a read is retried once."""
        refuse_inside_tx(self)
        for attempt in range(2):
            broken = False
            try:
                with _errors():
                    async with self._pool.connection() as conn:
                        try:
                            return await work(conn)
                        except StoreError:
                            broken = conn.broken
                            raise
            except StoreError:
                if not broken:
                    raise
                await self._check_pool()
                if not idempotent or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _check_pool(self) -> None:
        with contextlib.suppress(psycopg.Error, psycopg_pool.PoolTimeout):
            await self._pool.check()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._on_connection(lambda conn: _execute(conn, sql, params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = list(rows)

        async def work(conn: Conn) -> None:
            async with conn.transaction():
                await _executemany(conn, sql, batch)

        await self._on_connection(work)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._on_connection(
            lambda conn: _fetch(conn, sql, params), idempotent=_is_read(sql)
        )

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await self._on_connection(
            lambda conn: _fetchone(conn, sql, params), idempotent=_is_read(sql)
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        refuse_inside_tx(self)
        broken = False
        try:
            with _errors():
                async with self._pool.connection() as conn:
                    try:
                        async with conn.transaction():
                            token = enter_tx(self)
                            try:
                                yield PostgresTx(conn)
                            finally:
                                leave_tx(token)
                    except BaseException:
                        broken = conn.broken
                        raise
        finally:
            if broken:
                await self._check_pool()

    async def close(self) -> None:
        await self._pool.close()
