"""The router opens the store at start-up and closes it at shutdown; a store it cannot open
stops start-up with one clear line naming DATABASE_URL (never its password)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support.router import SRC_DIR, RouterProcess, RouterStartError, free_port

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
    url = f"postgresql://someone:hunter2-secret@127.0.0.1:{free_port()}/nothing"  # pragma: allowlist secret
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


def _check_config(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC_DIR), "OPENROUTER_API_KEY": "x"}
    return subprocess.run(
        [sys.executable, "-m", "anthropic_router", "check-config"],
        env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_check_config_hides_database_and_redis_passwords(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgresql://app:db-pass-123@db.internal:5432/router",  # pragma: allowlist secret
        "REDIS_URL": "redis://:redis-pass-456@cache.internal:6379/2",
    }
    result = _check_config(env, tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["database_url"] == "postgresql://app:***@db.internal:5432/router"
    assert config["redis_url"] == "redis://:***@cache.internal:6379/2"
    assert config["redis_key_prefix"] == "anthropic-router:"
    assert "db-pass-123" not in result.stdout + result.stderr
    assert "redis-pass-456" not in result.stdout + result.stderr


def test_check_config_defaults_to_sqlite_in_working_directory(tmp_path: Path) -> None:
    config = json.loads(_check_config({}, tmp_path).stdout)
    assert config["database_url"] == "sqlite:///anthropic-router.db"
    assert config["redis_url"] is None
    assert config["batch_processing_enable"] is True
    assert not (tmp_path / "anthropic-router.db").exists()  # check-config opens nothing


def test_malformed_redis_url_is_a_configuration_error(tmp_path: Path) -> None:
    result = _check_config({"REDIS_URL": "localhost:6379"}, tmp_path)
    assert result.returncode == 2
    assert "REDIS_URL: expected redis://HOST:PORT/DB" in result.stderr
