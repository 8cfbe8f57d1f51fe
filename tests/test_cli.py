"""`anthropic-router check-config` and start-up validation, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.router import SRC_DIR
from support.upstream import json_reply

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


@pytest.mark.parametrize(
    ("env", "backend", "why"),
    [
        ({}, "OPENROUTER", "OPENROUTER is the default"),
        ({"OPENROUTER_API_KEY": SECRET}, "OPENROUTER", "OPENROUTER_API_KEY is set"),
        (
            {"DATABRICKS_HOST": "adb-1.2.azuredatabricks.net", "DATABRICKS_PAT": "dapi-x"},
            "AZURE_DATABRICKS",
            "only Databricks credentials",
        ),
        (
            {"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "dapi-x", "OPENROUTER_API_KEY": SECRET},
            "OPENROUTER",
            "OPENROUTER_API_KEY is set",
        ),
        (
            {"OPENAI_COMPATIBLE_BASE_URL": "http://127.0.0.1:11434/v1", "BIG_MODEL": "llama3"},
            "OPENAI_COMPATIBLE",
            "only OPENAI_COMPATIBLE_BASE_URL is set",
        ),
        (
            {"PROXY_BACKEND": "litellm_openrouter", "DATABRICKS_HOST": "h", "DATABRICKS_PAT": "p"},
            "LITELLM_OPENROUTER",
            "PROXY_BACKEND=LITELLM_OPENROUTER",
        ),
    ],
)
def test_backend_detection_is_printed_with_its_reason(tmp_path, env, backend, why):
    result = _run(["check-config"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["proxy_backend"] == backend
    assert why in config["backend_reason"]
    assert "dapi-x" not in result.stdout


def test_databricks_defaults_host_scheme_and_native_routes(tmp_path):
    env = {"DATABRICKS_HOST": "adb-1.2.azuredatabricks.net/", "DATABRICKS_PAT": "dapi-secret"}
    config = json.loads(_run(["check-config"], env, tmp_path).stdout)
    assert config["databricks_host"] == "https://adb-1.2.azuredatabricks.net"
    assert config["databricks_pat"] == "<set>"
    assert config["big_model"] == "databricks-claude-sonnet-4-5"
    assert config["routes"]["claude-haiku-4-5"] == [
        "databricks:databricks-claude-haiku-4-5 (anthropic)"
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROXY_BACKEND": "azure_databricks"}, "needs DATABRICKS_HOST and DATABRICKS_PAT"),
        ({"PROXY_BACKEND": "openai_compatible"}, "needs OPENAI_COMPATIBLE_BASE_URL"),
        (
            {"PROXY_BACKEND": "openai_compatible", "OPENAI_COMPATIBLE_BASE_URL": "http://x"},
            "needs BIG_MODEL",
        ),
        (
            {"DATABRICKS_HOST": "h", "DATABRICKS_CLIENT_ID": "id"},
            "DATABRICKS_CLIENT_SECRET is not",
        ),
        ({"PROXY_BACKEND": "bedrock"}, "PROXY_BACKEND"),
    ],
)
def test_incomplete_backend_settings_stop_start_up(tmp_path, env, message):
    result = _run(["serve"], env, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_routing_file_backend_without_credentials_stops_start_up(tmp_path):
    (tmp_path / "routes.yaml").write_text(
        "routes:\n  claude-haiku-*:\n    backend: databricks\n    model: databricks-llama\n"
    )
    result = _run(["serve"], {"MODEL_MAP_FILE": "routes.yaml"}, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "DATABRICKS_HOST" in result.stderr


def test_routing_file_errors_name_the_entry(tmp_path):
    (tmp_path / "routes.yaml").write_text(
        "routes:\n  claude-*:\n    model: m\n    capabilities: {vision: maybe}\n"
    )
    result = _run(["check-config"], {"MODEL_MAP_FILE": "routes.yaml"}, tmp_path)
    assert result.returncode == 2
    assert "MODEL_MAP_FILE" in result.stderr and "'vision' must be true or false" in result.stderr


def test_bad_model_map_file_is_reported(tmp_path):
    (tmp_path / "map.yaml").write_text("- just\n- a list\n")
    result = _run(["check-config"], {"MODEL_MAP_FILE": "map.yaml"}, tmp_path)
    assert result.returncode == 2 and "MODEL_MAP_FILE" in result.stderr


def test_missing_litellm_extra_is_a_clear_start_up_error(tmp_path):
    # A stand-in package that fails to import, as litellm does when the extra is not installed.
    shim = tmp_path / "shim" / "litellm"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named litellm')\n")
    env = {"PROXY_BACKEND": "LITELLM_OPENROUTER", "PYTHONPATH": f"{shim.parent}:{SRC_DIR}"}
    result = _run(["serve"], env, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install 'anthropic-router[litellm]'" in result.stderr
    # Without a LiteLLM route, litellm is never imported: the same shim does not matter.
    env["PROXY_BACKEND"] = "OPENROUTER"
    assert _run(["check-config"], env, tmp_path).returncode == 0


def test_check_config_says_which_local_profile_each_route_uses(tmp_path, upstream):
    # The server answers /v1/models as vLLM does; check-config detects it as `serve` would.
    upstream.enqueue(
        json_reply({"data": [{"id": "qwen2.5-coder", "owned_by": "vllm"}]}), path="/v1/models"
    )
    env = {
        "PROXY_BACKEND": "OPENAI_COMPATIBLE",
        "OPENAI_COMPATIBLE_BASE_URL": f"{upstream.url}/v1",
        "BIG_MODEL": "qwen2.5-coder",
    }
    result = _run(["check-config"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["local_servers"][0] == {
        "route": "claude-haiku-4-5",
        "model": "qwen2.5-coder",
        "server": "vllm",
        "reason": "detected: /v1/models says owned_by='vllm'",
    }
    assert config["profiles"]["qwen2.5-coder"]["assistant_tool_content"] == "null"
    assert config["openai_compatible_server"] == "auto"


def test_check_config_with_the_server_named(tmp_path):
    env = {
        "PROXY_BACKEND": "OPENAI_COMPATIBLE",
        "OPENAI_COMPATIBLE_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_COMPATIBLE_SERVER": "llama-cpp-python",
        "BIG_MODEL": "tiny",
    }
    config = json.loads(_run(["check-config"], env, tmp_path).stdout)
    env_name = "OPENAI_COMPATIBLE_SERVER"
    assert {e["server"] for e in config["local_servers"]} == {"llama-cpp-python"}
    assert config["local_servers"][0]["reason"] == env_name + "=llama-cpp-python"
    profile = config["profiles"]["tiny"]
    assert profile["stream_usage"] == "never"
    assert profile["tool_choice_forms"] == ["auto", "function", "none"]


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_an_unknown_log_level_stops_both_commands_cleanly(tmp_path, command):
    result = _run([command], {"LOG_LEVEL": "verbose", "PORT": "1"}, tmp_path)
    assert result.returncode == 2
    assert "LOG_LEVEL" in result.stderr and "DEBUG, INFO" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_key_counts_as_unset(tmp_path):
    (tmp_path / ".env").write_text("OPENROUTER_API_KEY=\n")
    result = _run(["check-config"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["openrouter_api_key"] is None
    assert any("OPENROUTER_API_KEY is not set" in warning for warning in config["warnings"])


def test_the_env_example_placeholder_is_warned_about(tmp_path):
    (tmp_path / ".env").write_text("OPENROUTER_API_KEY=your_openrouter_api_key\n")
    result = _run(["check-config"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any("still holds the .env.example placeholder" in warning for warning in warnings)
