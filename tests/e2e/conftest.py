"""End-to-end fixtures: the pinned Claude Code CLI and TypeScript SDK must be installed. A missing
or wrong install fails the tests (it never skips them): run scripts/setup-e2e.sh."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.router import RouterProcess

from .clients import SETUP_HINT, claude_version, installed_version, pinned_versions


@pytest.fixture(scope="session")
def claude_cli() -> str:
    """The installed CLI's version line, checked against the pin."""
    expected = pinned_versions()["@anthropic-ai/claude-code"]
    try:
        version = claude_version()
    except Exception as error:  # missing, not executable, or crashing
        pytest.fail(f"Claude Code CLI does not run: {error}\n{SETUP_HINT}", pytrace=False)
    if version != f"{expected} (Claude Code)":
        pytest.fail(f"claude --version is {version!r}, pinned {expected}: {SETUP_HINT}")
    return version


@pytest.fixture(scope="session")
def ts_sdk() -> str:
    """The installed @anthropic-ai/sdk version, checked against the pin."""
    expected = pinned_versions()["@anthropic-ai/sdk"]
    version = installed_version("@anthropic-ai/sdk")
    if version != expected:
        pytest.fail(f"@anthropic-ai/sdk is {version}, pinned {expected}: {SETUP_HINT}")
    return version


def exchanges(
    router: RouterProcess, path: str = "/v1/messages", since: int = 0
) -> list[dict[str, Any]]:
    """The router's `exchange` log records for client requests to `path`, oldest first; `since`
    is a `log_mark()` taken earlier (the module's router is shared by several tests)."""
    records = []
    for line in router.stderr()[since:].splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") == "exchange" and record.get("path") == path:
            records.append(record)
    return records


def log_mark(router: RouterProcess) -> int:
    return len(router.stderr())
