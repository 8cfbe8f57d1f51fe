"""Migrations: file naming and order, statement splitting, idempotence, atomicity, and two
processes migrating the same database at once (on SQLite and on a real PostgreSQL)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from anthropic_router.store import StoreError, open_store
from anthropic_router.store.migrate import Migration, load, migrate, split_statements
from support.router import SRC_DIR

SLOW_SQL = {
    # Long enough that a second process starting at the same moment has to wait for the lock.
    "postgresql": "SELECT pg_sleep(0.5);",
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500000)"
        " SELECT count(*) FROM c;"
    ),
}


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def _with_init(directory: Path, files: dict[str, str]) -> Path:
    init = (SRC_DIR / "anthropic_router/store/migrations/0001_init.sql").read_text()
    return _write(directory, {"0001_init.sql": init, **files})


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("CREATE TABLE a (x TEXT);", ["CREATE TABLE a (x TEXT)"]),
        ("CREATE TABLE a (x TEXT)", ["CREATE TABLE a (x TEXT)"]),
        ("-- only a comment\n", []),
        ("SELECT 1;\n-- trailing comment\n", ["SELECT 1"]),
        ("INSERT INTO t VALUES ('a;b');SELECT 2;", ["INSERT INTO t VALUES ('a;b')", "SELECT 2"]),
        ("/* a; b */ SELECT 1; -- c; d\nSELECT 2;", ["/* a; b */ SELECT 1", "-- c; d\nSELECT 2"]),
        (
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET n = n + 1; END;",
            ["CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET n = n + 1; END"],
        ),
    ],
)
def test_split_statements(script: str, expected: list[str]) -> None:
    assert split_statements(script) == expected


def test_shipped_migrations_start_with_init() -> None:
    for dialect in ("sqlite", "postgresql"):
        migrations = load(dialect)
        assert migrations[0].version == 1
        assert migrations[0].name == "init"
        assert "CREATE TABLE schema_migrations" in migrations[0].sql
        versions = [m.version for m in migrations]
        assert versions == sorted(set(versions))


def test_load_orders_by_number_and_prefers_the_dialect_file(tmp_path: Path) -> None:
    directory = _write(
        tmp_path,
        {
            "0010_b.sql": "SELECT 10;",
            "0002_a.sql": "SELECT 2;",
            "0003_c.sql": "SELECT 'shared';",
            "0003_c.postgresql.sql": "SELECT 'pg';",
            "0004_d.sqlite.sql": "SELECT 'sqlite only';",
            "README.txt": "not a migration",
        },
    )
    pg = load("postgresql", directory)
    lite = load("sqlite", directory)
    assert [(m.version, m.sql) for m in pg] == [
        (2, "SELECT 2;"), (3, "SELECT 'pg';"), (10, "SELECT 10;"),
    ]  # fmt: skip
    assert [(m.version, m.sql) for m in lite] == [
        (2, "SELECT 2;"), (3, "SELECT 'shared';"), (4, "SELECT 'sqlite only';"), (10, "SELECT 10;"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"12_short.sql": ""}, "expected NNNN_name"),
        ({"0002_Upper.sql": ""}, "expected NNNN_name"),
        ({"0002_a.sql": "", "0002_b.sql": ""}, "two migrations numbered 0002"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(StoreError, match=message):
        load("sqlite", _write(tmp_path, files))


@pytest.mark.anyio
async def test_open_twice_applies_nothing_the_second_time(
    store_url: str, anyio_backend: str
) -> None:
    first = await open_store(store_url)
    rows = await first.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    await first.close()
    assert [row["version"] for row in rows] == [m.version for m in load(first.dialect)]
    second = await open_store(store_url)
    assert await migrate(second) == []
    assert (
        await second.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
        == rows
    )
    await second.close()


@pytest.mark.anyio
async def test_new_migrations_apply_in_order_once(
    store_url: str, tmp_path: Path, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _with_init(
        tmp_path,
        {
            "0002_things.sql": "CREATE TABLE things (id TEXT PRIMARY KEY);\n"
            "INSERT INTO things VALUES ('from-0002');",
            "0003_more.sql": "ALTER TABLE things ADD COLUMN n BIGINT NOT NULL DEFAULT 7;",
        },
    )
    store = await open_store(store_url)
    try:
        assert await migrate(store, load(store.dialect, directory)) == [2, 3]
        assert await migrate(store, load(store.dialect, directory)) == []
        assert await store.fetch("SELECT id, n FROM things") == [{"id": "from-0002", "n": 7}]
        # A shipped file edited afterwards is reported, not run again.
        (directory / "0003_more.sql").write_text("DROP TABLE things;")
        with caplog.at_level(logging.WARNING, "anthropic_router.store"):
            assert await migrate(store, load(store.dialect, directory)) == []
        assert "migration 0003_more changed after it was applied" in caplog.text
        assert await store.fetch("SELECT id FROM things") == [{"id": "from-0002"}]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_failed_migration_changes_nothing(
    store_url: str, tmp_path: Path, anyio_backend: str
) -> None:
    directory = _with_init(
        tmp_path,
        {
            "0002_ok.sql": "CREATE TABLE ok_table (id TEXT);",
            "0003_broken.sql": "CREATE TABLE half (id TEXT);\nCREATE TABLE half (id TEXT);",
        },
    )
    store = await open_store(store_url)
    try:
        with pytest.raises(StoreError, match="migration 0003_broken failed"):
            await migrate(store, load(store.dialect, directory))
        versions = await store.fetch("SELECT version FROM schema_migrations")
        assert [row["version"] for row in versions] == [1]
        # All pending migrations run in one transaction: 0002's table is gone too.
        with pytest.raises(StoreError):
            await store.fetch("SELECT id FROM ok_table")
        with pytest.raises(StoreError):
            await store.fetch("SELECT id FROM half")
    finally:
        await store.close()


MIGRATE_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from pathlib import Path
    from anthropic_router.store import open_store
    from anthropic_router.store.migrate import load, migrate

    url, directory, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)

    async def main():
        store = await open_store(url)  # migrates the shipped files: 0001 only
        applied = await migrate(store, load(store.dialect, directory))
        await store.close()
        print(json.dumps(applied))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("processes", [3])
def test_two_processes_migrate_the_same_database_at_once(
    store_url: str, tmp_path: Path, processes: int
) -> None:
    dialect = store_url.split(":", 1)[0]
    directory = _with_init(
        tmp_path / "migrations",
        {
            "0002_slow.sql": SLOW_SQL[dialect] + "\nCREATE TABLE raced (id TEXT PRIMARY KEY);",
            "0003_seed.sql": "INSERT INTO raced VALUES ('once');",
        },
    )
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(SRC_DIR)}
    command = [sys.executable, "-c", MIGRATE_SCRIPT, store_url, str(directory), str(go)]
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(processes)
    ]
    time.sleep(0.3)  # both interpreters loaded and waiting
    go.touch()
    outputs = [child.communicate(timeout=60) for child in children]  # all done, then check
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()
    results = [json.loads(out) for out, _ in outputs]
    # Exactly one process applied 0002 and 0003; the other waited for it and found them done.
    assert sorted(results) == [[]] * (processes - 1) + [[2, 3]]
    check = subprocess.run(
        [sys.executable, "-c", CHECK_SCRIPT, store_url],
        capture_output=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(check.stdout) == {"versions": [1, 2, 3], "raced": [{"id": "once"}]}


CHECK_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from anthropic_router.store import open_store

    async def main():
        store = await open_store(sys.argv[1])
        versions = await store.fetch("SELECT version FROM schema_migrations ORDER BY version")
        raced = await store.fetch("SELECT id FROM raced")
        await store.close()
        print(json.dumps({"versions": [r["version"] for r in versions], "raced": raced}))

    asyncio.run(main())
    """
)


def test_migration_dataclass_checksum_follows_text() -> None:
    assert Migration(1, "a", "x").checksum == Migration(2, "b", "x").checksum
    assert Migration(1, "a", "x").checksum != Migration(1, "a", "y").checksum


def test_every_migration_file_is_package_data() -> None:
    # `pip install .` (not editable) ships only what these globs match.
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((SRC_DIR.parent / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["anthropic_router"]
    package = SRC_DIR / "anthropic_router"
    files = sorted((package / "store/migrations").glob("*.sql"))
    assert files
    for path in files:
        relative = str(path.relative_to(package))
        assert any(fnmatch.fnmatch(relative, glob) for glob in globs), relative
