"""Schema migrations: SQL files shipped in `store/migrations/`, applied in order at open.

A migration is `NNNN_name.sql`, run on both dialects; where they must differ, ship
`NNNN_name.sqlite.sql` and `NNNN_name.postgresql.sql` instead (same number and name). Files
hold statements separated by `;`. Numbers are reserved per feature: 0001 is the store's own,
0010-0019 batches, 0020-0029 keys and the usage ledger. Never edit a migration that has
shipped: add the next number (a changed file is logged, not re-run).

Each applied migration is a row of `schema_migrations`. Pending ones run in one transaction
under a lock two starting instances cannot both hold (PostgreSQL: a session advisory lock
taken before the transaction begins, so that it reads the catalog the first instance left;
SQLite: the write lock of `BEGIN IMMEDIATE`), so the second one waits, then finds them
applied. DDL is transactional on both, so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Protocol

from anthropic_router.store.base import Store, StoreError, Tx

log = logging.getLogger("anthropic_router.store")

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgresql))?\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def package_dir() -> Traversable:
    return resources.files("anthropic_router.store") / "migrations"


def load(dialect: str, directory: Traversable | None = None) -> list[Migration]:
    """The migrations for `dialect`, in order; a dialect-specific file wins over the shared
    one of the same number. Raises StoreError for a misnamed file or a duplicate number."""
    chosen: dict[int, tuple[str, str | None, Traversable]] = {}
    for entry in (directory or package_dir()).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise StoreError(f"migration file {entry.name}: expected NNNN_name[.dialect].sql")
        version, name, only = int(match[1]), match[2], match[3]
        if only is not None and only != dialect:
            continue
        previous = chosen.get(version)
        if previous is not None and (previous[1] is not None) == (only is not None):
            raise StoreError(f"two migrations numbered {match[1]}: {previous[0]}, {name}")
        if previous is None or only is not None:
            chosen[version] = (name, only, entry)
    return [
        Migration(version, name, entry.read_text(encoding="utf-8"))
        for version, (name, _, entry) in sorted(chosen.items())
    ]


def split_statements(script: str) -> list[str]:
    """The statements of an SQL script, without their final `;`. Quotes, comments and
    trigger bodies are respected (sqlite3's own tokenizer decides where a statement ends)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statement = pending.strip().removesuffix(";").strip()
            if _has_code(statement):
                statements.append(statement)
            pending = ""
    if _has_code(pending.removesuffix(";")):
        raise StoreError(f"unterminated SQL statement: {pending.strip()[:80]}")
    return statements


def _has_code(sql: str) -> bool:
    without = re.sub(r"--[^\n]*|/\*.*?\*/", "", sql, flags=re.DOTALL)
    return bool(without.strip())


async def _table_exists(db: Store | Tx, dialect: str) -> bool:
    if dialect == "postgresql":
        row = await db.fetchone("SELECT to_regclass('schema_migrations') IS NOT NULL AS found")
        return bool(row and row["found"])
    row = await db.fetchone(
        "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    )
    return row is not None


async def _applied(db: Store | Tx, dialect: str) -> dict[int, str]:
    if not await _table_exists(db, dialect):
        return {}
    rows = await db.fetch("SELECT version, checksum FROM schema_migrations")
    return {int(row["version"]): str(row["checksum"]) for row in rows}


def _check_changed(migrations: list[Migration], applied: dict[int, str]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            log.warning(
                "migration %04d_%s changed after it was applied; it is not run again",
                migration.version,
                migration.name,
            )


class MigratableStore(Store, Protocol):
    def migration_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while migrating, so that one instance at a time does. The migration
        transaction starts once it is held (PostgreSQL reads the catalog as of then)."""
        ...


async def migrate(store: MigratableStore, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations; returns the versions applied now (empty when none)."""
    migrations = load(store.dialect) if migrations is None else migrations
    applied = await _applied(store, store.dialect)
    _check_changed(migrations, applied)
    if all(m.version in applied for m in migrations):
        return []  # the usual start: no lock taken
    async with store.migration_lock(), store.transaction() as tx:
        applied = await _applied(tx, store.dialect)  # another instance may have just run them
        done = []
        for migration in migrations:
            if migration.version not in applied:
                await _apply(tx, migration)
                done.append(migration.version)
    for version in done:
        log.info("store: applied migration %04d", version)
    return done


async def _apply(tx: Tx, migration: Migration) -> None:
    label = f"{migration.version:04d}_{migration.name}"
    for statement in migration.statements():
        try:
            await tx.execute(statement)
        except StoreError as exc:
            raise StoreError(f"migration {label} failed: {exc}") from exc
    await tx.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        (migration.version, migration.name, migration.checksum, time.time()),
    )
