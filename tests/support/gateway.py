"""Helpers for the gateway tests: the real `anthropic-router keys` CLI as a subprocess, and
polling until the router's background work (ledger writes, cache expiry) shows."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from support.router import router_env

T = TypeVar("T")
ADMIN_KEY = "test-admin-key-0000"


def keys_cli(
    database_url: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m anthropic_router keys ARGS` against DATABASE_URL; never raises on failure."""
    env = router_env(None, {"DATABASE_URL": database_url})
    return subprocess.run(
        [sys.executable, "-m", "anthropic_router", "keys", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_key(database_url: str, name: str, *flags: str) -> str:
    """A new key from `keys create NAME FLAGS` (stdout is the key alone)."""
    done = keys_cli(database_url, "create", name, *flags)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("sk-ar-") and "\n" not in key, done.stdout
    return key


def keys_json(database_url: str, *args: str) -> Any:
    done = keys_cli(database_url, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def eventually(check: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """The first truthy result of `check()`, polled until `timeout` seconds (then an
    AssertionError with the last result)."""
    deadline = time.monotonic() + timeout
    result = check()
    while not result:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(interval)
        result = check()
    return result
