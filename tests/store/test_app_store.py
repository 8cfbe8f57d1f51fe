"""The router opens the store at start-up and closes it at shutdown; a store it cannot open
stops start-up with one clear line naming DATABASE_URL (never its password)."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from support.router import RouterProcess, RouterStartError, free_port

pytestmark = pytest.mark.integration


def _ready(router: RouterProcess) -> dict[str, object]:
    with urllib.request.urlopen(f"{router.url}/ready", timeout=5) as response:
        assert response.status == 200
        body: dict[str, object] = json.loads(response.read())
        return body


def _start_failure(env: dict[str, str | None]) -> tuple[int | None, str]:
    router = RouterProcess(None, env)
    with pytest.raises(RouterStartError):
        router.start()
    return router.returncode, router.logs()


def test_router_on_postgres_is_ready_and_migrated(fresh_postgres_url: str) -> None:
    import psycopg

    with RouterProcess(None, {"DATABASE_URL": fresh_postgres_url}) as router:
        assert _ready(router)["status"] == "ok"
        with psycopg.connect(fresh_postgres_url) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
        assert 1 in versions
    assert "Traceback" not in router.logs()


def test_router_default_store_is_sqlite_in_working_directory(tmp_path: Path) -> None:
    database = tmp_path / "data" / "router.db"
    with RouterProcess(None, {"DATABASE_URL": f"sqlite:///{database}"}) as router:
        assert _ready(router)["status"] == "ok"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1


def test_unreachable_postgres_stops_startup_without_password() -> None:
    url = f"postgresql://someone:hunter2-secret@127.0.0.1:{free_port()}/nothing"
    code, logs = _start_failure({"DATABASE_URL": url, "DATABASE_CONNECT_TIMEOUT": "2"})
    assert code == 3  # uvicorn's "startup failed"
    assert "DATABASE_URL: cannot open the store: cannot connect to " in logs
    assert "postgresql://someone:***@127.0.0.1:" in logs
    assert "hunter2-secret" not in logs
    assert "Traceback" not in logs


@pytest.mark.parametrize(
    "value",
    ["mysql://root@localhost/db", "sqlite://relative.db", "sqlite:///", "anthropic-router.db"],
)
def test_malformed_database_url_is_a_configuration_error(value: str) -> None:
    code, logs = _start_failure({"DATABASE_URL": value})
    assert code == 2
    assert "invalid configuration" in logs
    assert "DATABASE_URL: expected sqlite:///PATH or postgresql://" in logs or (
        "DATABASE_URL: sqlite:/// needs a file path" in logs
    )
    assert "Traceback" not in logs


def test_unwritable_sqlite_path_stops_startup(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, logs = _start_failure({"DATABASE_URL": f"sqlite:///{blocker}/sub/router.db"})
    assert code == 3
    assert "DATABASE_URL: cannot open the store: cannot open SQLite database" in logs
    assert f"{blocker}/sub/router.db" in logs
    assert "Traceback" not in logs


def test_store_not_opened_when_no_feature_needs_it(tmp_path: Path) -> None:
    # Nothing uses the store: a DATABASE_URL that could never open is not even tried.
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    env = {"DATABASE_URL": url, "BATCH_PROCESSING_ENABLE": "false"}
    with RouterProcess(None, env) as router:
        assert _ready(router)["status"] == "ok"
