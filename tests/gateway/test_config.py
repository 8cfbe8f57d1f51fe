"""The gateway's settings through the real CLI: secrets masked, bad combinations and a bad
`prices:` section stop start-up with one line naming what to fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.gateway import ADMIN_KEY
from support.router import SRC_DIR


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC_DIR)}
    return subprocess.run(
        [sys.executable, "-m", "anthropic_router", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_check_config_shows_the_gateway_without_the_admin_key(tmp_path: Path) -> None:
    env = {"KEYS_ENABLE": "true", "ADMIN_API_KEY": ADMIN_KEY, "LEDGER_RETENTION_DAYS": "7"}
    result = _run(["check-config"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["keys_enable"] is True and config["admin_api_key"] == "<set>"
    assert config["ledger_retention_days"] == 7 and config["keys_cache_ttl"] == 5.0
    assert ADMIN_KEY not in result.stdout + result.stderr


def test_keys_and_forwarded_client_keys_do_not_mix(tmp_path: Path) -> None:
    result = _run(["serve"], {"KEYS_ENABLE": "true", "FORWARD_CLIENT_KEY": "true"}, tmp_path)
    assert result.returncode == 2
    assert "KEYS_ENABLE=true cannot be combined with FORWARD_CLIENT_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_prices_section_stops_start_up(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("prices:\n  'anthropic/*': {input: 3}\n")
    env = {"ADMIN_API_KEY": ADMIN_KEY, "MODEL_MAP_FILE": str(routing)}
    result = _run(["serve", "--port", "1"], env, tmp_path)
    assert result.returncode == 2
    assert "MODEL_MAP_FILE" in result.stderr and "prices.anthropic/*" in result.stderr
    assert "Traceback" not in result.stderr
