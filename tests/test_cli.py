"""`anthropic-router check-config` and start-up validation, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys

from support.router import SRC_DIR

SECRET = "sk-or-v1-" + "0f" * 32  # built at run time; never a real key


def _run(args: list[str], env: dict[str, str], tmp_path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC_DIR)}
    return subprocess.run(
        [sys.executable, "-m", "anthropic_router", *args],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_check_config_prints_effective_config_without_secrets(tmp_path):
    env = {"OPENROUTER_API_KEY": SECRET, "PROXY_API_KEY": "client-secret", "BIG_MODEL": "x/big"}
    result = _run(["check-config"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["openrouter_api_key"] == "<set>" and config["proxy_api_key"] == "<set>"
    assert config["proxy_backend"] == "OPENROUTER" and config["host"] == "127.0.0.1"
    assert config["port"] == 4000 and config["middle_model"] == "x/big"
    assert config["model_mapping"]["claude-opus-4-8"] == "x/big"
    assert SECRET not in result.stdout + result.stderr
    assert "client-secret" not in result.stdout + result.stderr


def test_dotenv_in_working_directory_is_read(tmp_path):
    (tmp_path / ".env").write_text("SMALL_MODEL=openai/gpt-4o-mini\nPORT=4321\n")
    config = json.loads(_run(["check-config"], {}, tmp_path).stdout)
    assert config["small_model"] == "openai/gpt-4o-mini" and config["port"] == 4321


def test_bad_settings_stop_start_up_naming_the_variable(tmp_path):
    result = _run(["serve"], {"OPENROUTER_MIN_P": "7", "PORT": "1"}, tmp_path)
    assert result.returncode == 2
    assert "OPENROUTER_MIN_P" in result.stderr and "Traceback" not in result.stderr


def test_backends_not_yet_available_fail_clearly(tmp_path):
    result = _run(["serve"], {"PROXY_BACKEND": "azure_databricks"}, tmp_path)
    assert result.returncode == 2
    assert "PROXY_BACKEND=AZURE_DATABRICKS is not available" in result.stderr


def test_bad_model_map_file_is_reported(tmp_path):
    (tmp_path / "map.yaml").write_text("- just\n- a list\n")
    result = _run(["check-config"], {"MODEL_MAP_FILE": "map.yaml"}, tmp_path)
    assert result.returncode == 2 and "MODEL_MAP_FILE" in result.stderr
