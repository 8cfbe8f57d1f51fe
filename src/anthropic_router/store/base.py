"""What every store offers, whatever the database: the `Store` and `Tx` protocols, the two
error classes, and the helpers both dialects share.

SQL is written once, with `?` placeholders, in the subset that SQLite and PostgreSQL both
speak (TEXT, BIGINT, DOUBLE PRECISION, INTEGER for booleans, BYTEA for bytes, `ON CONFLICT`,
`RETURNING`). Unquoted names are lower-case (PostgreSQL folds them; row dicts use the names).
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit


class StoreError(Exception):
    """The database refused or failed a statement, or cannot be reached. The message names
    the database without its password; the driver's exception is the `__cause__`."""


class IntegrityError(StoreError):
    """A constraint held: a duplicate primary or unique key, a foreign key, NOT NULL or CHECK."""


class Tx(Protocol):
    """Statements inside one transaction (see `Store.transaction`)."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None: ...


class Store(Protocol):
    """The one durable store. Each call outside `transaction()` commits by itself.

    `execute` returns the rowcount (meaningful for INSERT, UPDATE and DELETE); `executemany`
    runs all rows in one transaction (all or none); `fetch` returns every row as a dict keyed
    by column name, so page big results with `LIMIT` and a keyset rather than fetching them
    whole. Errors: `IntegrityError` for a constraint, `StoreError` for anything else.
    """

    dialect: str  # "sqlite" | "postgresql": for the few statements that differ

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None: ...

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """`async with store.transaction() as tx:` commits when the block ends, rolls back
        when it raises (cancellation included). Use only `tx` inside the block: calling the
        store itself there from the same task raises `StoreError` (it would deadlock)."""
        ...

    async def close(self) -> None: ...


# The task running inside a transaction, per store: store calls from it would wait for the
# transaction they are part of (SQLite's write lock, PostgreSQL row locks) forever.
_TX_TASK: contextvars.ContextVar[tuple[int, asyncio.Task[Any] | None] | None] = (
    contextvars.ContextVar("store_tx_task", default=None)
)


def enter_tx(store: object) -> contextvars.Token[tuple[int, asyncio.Task[Any] | None] | None]:
    return _TX_TASK.set((id(store), asyncio.current_task()))


def leave_tx(token: contextvars.Token[tuple[int, asyncio.Task[Any] | None] | None]) -> None:
    _TX_TASK.reset(token)


def refuse_inside_tx(store: object) -> None:
    """Raise when the current task is inside a transaction of `store` (see `transaction`)."""
    active = _TX_TASK.get()
    if active is not None and active[0] == id(store) and active[1] is asyncio.current_task():
        raise StoreError("inside store.transaction(), run statements on its Tx, not the store")


def portable_params(params: Sequence[Any]) -> tuple[Any, ...]:
    """Booleans become 0/1: columns are INTEGER on both dialects, and PostgreSQL refuses a
    boolean parameter for an integer column."""
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***`, for logs and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        # Unparseable (a bad port, say): hide everything between the scheme and the host.
        return re.sub(r"//[^@/]*@", "//***@", url)
