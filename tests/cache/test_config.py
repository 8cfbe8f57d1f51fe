"""The response cache's settings: the two seed toggles, the default, and what
`check-config` says about it (run as a real process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from anthropic_router.config import Settings
from support.router import SRC_DIR

TOGGLES = [
    ({}, False),  # the default: off
    ({"prompt_cache_enable": True}, True),
    ({"prompt_caching_enable": True}, True),
    ({"prompt_cache_enable": True, "prompt_caching_enable": True}, True),
    ({"prompt_cache_enable": True, "prompt_caching_enable": False}, False),
    ({"prompt_cache_enable": False, "prompt_caching_enable": True}, False),
    ({"prompt_cache_enable": False}, False),
]


@pytest.mark.parametrize(("toggles", "enabled"), TOGGLES, ids=[str(t) for t, _ in TOGGLES])
def test_either_name_turns_it_on_and_either_false_turns_it_off(toggles, enabled) -> None:
    settings = Settings(_env_file=None, openrouter_api_key="test-upstream-key-0000", **toggles)
    assert settings.response_cache_enabled is enabled


def _check_config(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC_DIR), "OPENROUTER_API_KEY": "k"}
    return subprocess.run(
        [sys.executable, "-m", "anthropic_router", "check-config"],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


CHECK_CONFIG = [
    ({}, "off: the default"),
    ({"PROMPT_CACHE_ENABLE": "true"}, "on: memory (this process), TTL 3600 s"),
    (
        {"PROMPT_CACHING_ENABLE": "true", "REDIS_URL": "redis://127.0.0.1:1/0",
         "PROMPT_CACHE_TTL": "60", "PROMPT_CACHE_ONLY_DETERMINISTIC": "true"},
        "on: redis (REDIS_URL, shared), TTL 60 s, temperature 0 only",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("env", "line"), CHECK_CONFIG)
def test_check_config_says_whether_the_response_cache_is_on(env, line, tmp_path) -> None:
    result = _check_config(env, tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["response_cache"].startswith(line)
    assert config["prompt_cache_ttl"] == float(env.get("PROMPT_CACHE_TTL", 3600))


@pytest.mark.parametrize(
    "env",
    [{"PROMPT_CACHE_TTL": "0"}, {"PROMPT_CACHE_MAX_BYTES": "-1"}, {"PROMPT_CACHE_ENABLE": "maybe"}],
)
def test_a_bad_cache_setting_stops_start_up_naming_it(env, tmp_path) -> None:
    result = _check_config(env, tmp_path)
    assert result.returncode == 2 and next(iter(env)) in result.stderr
    assert "Traceback" not in result.stderr
