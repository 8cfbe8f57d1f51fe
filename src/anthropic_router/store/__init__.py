"""The one durable store (batches, keys, the usage ledger): SQLite by default, PostgreSQL
when several router instances share it. `open_store(url)` connects and migrates.

    store = await open_store("sqlite:///anthropic-router.db")
    await store.execute("INSERT INTO t (id, n) VALUES (?, ?)", ("a", 1))
    async with store.transaction() as tx:
        row = await tx.fetchone("SELECT n FROM t WHERE id = ?", ("a",))

SQL is written once with `?` placeholders (see base.py for the portable subset); use
`store.dialect` for the few statements that differ (`FOR UPDATE SKIP LOCKED` is PostgreSQL's).
"""

from __future__ import annotations

from anthropic_router.store.base import IntegrityError, Store, StoreError, Tx, redact_url
from anthropic_router.store.migrate import MigratableStore, migrate

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def check_url(url: str) -> str:
    """The URL when it names a usable store, else ValueError saying what is expected."""
    if url.startswith(SQLITE_PREFIX):
        if not url.removeprefix(SQLITE_PREFIX).strip():
            raise ValueError("sqlite:/// needs a file path, e.g. sqlite:///anthropic-router.db")
        return url
    if url.startswith(POSTGRES_PREFIXES):
        return url
    raise ValueError(
        f"expected sqlite:///PATH or postgresql://USER@HOST/DB, got {redact_url(url)!r}"
    )


def sqlite_path(url: str) -> str:
    """`sqlite:///app.db` is app.db in the working directory, `sqlite:////var/x.db` is
    /var/x.db, `sqlite:///:memory:` a private in-memory database."""
    return url.removeprefix(SQLITE_PREFIX)


async def open_store(url: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> Store:
    """Connect to the store at `url` and apply pending migrations. `pool_size` and
    `connect_timeout` (seconds) apply to PostgreSQL. Raises StoreError with a message that
    names the database (without its password) and says why."""
    check_url(url)
    store: MigratableStore
    if url.startswith(SQLITE_PREFIX):
        from anthropic_router.store.sqlite import SQLiteStore

        store = await SQLiteStore.connect(sqlite_path(url))
    else:
        from anthropic_router.store.postgres import PostgresStore

        store = await PostgresStore.connect(
            url, pool_size=pool_size, connect_timeout=connect_timeout
        )
    try:
        await migrate(store)
    except BaseException:
        await store.close()
        raise
    return store


__all__ = [
    "IntegrityError",
    "Store",
    "StoreError",
    "Tx",
    "check_url",
    "open_store",
    "redact_url",
]
