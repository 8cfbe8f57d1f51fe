"""`anthropic-router env | status | stop` and `code` without Claude Code, as real processes in
a clean temporary HOME (the state directory lives under it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.clients import CLAUDE_BIN
from support.router import SRC_DIR, UPSTREAM_API_KEY, free_port


def run(
    args: list[str], home: Path, extra: dict[str, str] | None = None, path: str = "/usr/bin:/bin"
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path,
        "HOME": str(home),
        "PYTHONPATH": str(SRC_DIR),
        "OPENROUTER_API_KEY": UPSTREAM_API_KEY,
        **(extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "anthropic_router", *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def state(home: Path) -> Path:
    return home / ".local" / "state" / "anthropic-router"


def test_env_prints_exports_a_shell_can_eval(home: Path) -> None:
    port = str(free_port())
    keys = "client-key-one,client-key-two"  # pragma: allowlist secret
    extra = {"PORT": port, "PROXY_API_KEY": keys}
    printed = run(["env"], home, extra)
    assert printed.returncode == 0, printed.stderr
    script = (
        'export ANTHROPIC_API_KEY=should-go; eval "$1"; '
        'echo "$ANTHROPIC_BASE_URL|$ANTHROPIC_AUTH_TOKEN|${ANTHROPIC_API_KEY-unset}|'
        "$CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC|$ANTHROPIC_DEFAULT_HAIKU_MODEL|"
        '$CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"'
    )
    shell = subprocess.run(
        ["bash", "-c", script, "bash", printed.stdout], capture_output=True, text=True, timeout=10
    )
    assert shell.stdout.strip() == (
        f"http://127.0.0.1:{port}|client-key-one|unset|1|claude-haiku-4-5|1"
    )


def test_env_without_proxy_key_uses_a_placeholder_and_loopback(home: Path) -> None:
    printed = run(["env"], home, {"HOST": "0.0.0.0", "PORT": "4555"})
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:4555\n" in printed.stdout
    assert "export ANTHROPIC_AUTH_TOKEN=anthropic-router\n" in printed.stdout


def test_status_and_stop_when_nothing_runs(home: Path) -> None:
    extra = {"PORT": str(free_port())}
    status = run(["status"], home, extra)
    assert status.returncode == 3 and "not running" in status.stdout
    stop = run(["stop"], home, extra)
    assert stop.returncode == 0 and "no background router is running" in stop.stdout


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not a router (as after pid reuse)."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_stale_pid_file_is_detected_and_removed(home: Path) -> None:
    port = free_port()
    pid_file = state(home) / f"router-{port}.pid"
    pid_file.parent.mkdir(parents=True)
    pid = dead_pid()
    pid_file.write_text(f"{pid}\n")
    status = run(["status"], home, {"PORT": str(port)})
    assert status.returncode == 3
    assert f"removed a stale PID file (pid {pid} is not running)" in status.stdout
    assert not pid_file.exists()


def test_a_reused_pid_is_stale_and_never_signalled(
    home: Path, other_process: subprocess.Popen[bytes]
) -> None:
    port = free_port()
    pid_file = state(home) / f"router-{port}.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{other_process.pid}\n")
    stop = run(["stop"], home, {"PORT": str(port)})
    assert stop.returncode == 0 and "stale PID file" in stop.stdout
    assert other_process.poll() is None  # still running: stop did not kill a stranger
    assert not pid_file.exists()


def test_unreadable_pid_file_is_removed(home: Path) -> None:
    port = free_port()
    pid_file = state(home) / f"router-{port}.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("not a pid\n")
    status = run(["status"], home, {"PORT": str(port)})
    assert status.returncode == 3 and "unreadable PID file" in status.stdout


def test_xdg_state_home_is_honoured(home: Path, tmp_path: Path) -> None:
    port = free_port()
    xdg = tmp_path / "xdg"
    (xdg / "anthropic-router").mkdir(parents=True)
    (xdg / "anthropic-router" / f"router-{port}.pid").write_text(f"{dead_pid()}\n")
    status = run(["status"], home, {"PORT": str(port), "XDG_STATE_HOME": str(xdg)})
    assert "stale PID file" in status.stdout


def test_code_without_claude_says_how_to_install_it(home: Path) -> None:
    port = free_port()
    done = run(["code", "-p", "hi"], home, {"PORT": str(port)}, path="/usr/bin:/bin")
    assert done.returncode == 127
    assert "npm install -g @anthropic-ai/claude-code" in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing was started for a client that cannot run.
    assert not (state(home) / f"router-{port}.pid").exists()


def test_code_warns_about_a_missing_upstream_key(home: Path) -> None:
    done = run(["code"], home, {"PORT": str(free_port()), "OPENROUTER_API_KEY": ""})
    assert "warning: OPENROUTER_API_KEY is not set: OpenRouter will answer 401" in done.stderr


def test_code_with_bad_settings_stops_before_anything_starts(home: Path) -> None:
    done = run(["code"], home, {"PORT": "1", "OPENROUTER_MIN_P": "7"})
    assert done.returncode == 2 and "OPENROUTER_MIN_P" in done.stderr


def test_stop_ends_a_background_router(home: Path) -> None:
    """A router started the way `code` starts one, found by `status`, ended by `stop`."""
    port = free_port()
    pid_file = state(home) / f"router-{port}.pid"
    pid_file.parent.mkdir(parents=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONPATH": str(SRC_DIR),
        "OPENROUTER_API_KEY": UPSTREAM_API_KEY,
        "PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "anthropic_router", "serve"],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pid_file.write_text(f"{process.pid}\n")
        extra = {"PORT": str(port)}
        for _ in range(100):
            status = run(["status"], home, extra)
            if "ready" in status.stdout:
                break
        assert status.returncode == 0 and f"running (pid {process.pid})" in status.stdout
        stop = run(["stop"], home, extra)
        assert stop.returncode == 0 and f"stopped (pid {process.pid})" in stop.stdout
        assert process.wait(10) is not None
        assert not pid_file.exists()
        assert run(["status"], home, extra).returncode == 3
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def test_env_with_forwarded_client_keys_keeps_the_users_key(home: Path) -> None:
    extra = {"FORWARD_CLIENT_KEY": "true", "OPENROUTER_API_KEY": ""}  # pragma: allowlist secret
    printed = run(["env"], home, extra)
    assert printed.returncode == 0, printed.stderr
    assert "ANTHROPIC_AUTH_TOKEN" not in printed.stdout
    assert "ANTHROPIC_API_KEY" not in printed.stdout  # neither set nor unset: the user's own


def test_code_when_the_port_is_taken_by_another_server(home: Path) -> None:
    """Something that is not a router holds the port: the background router cannot bind, and
    `code` says so with the end of its log instead of running Claude Code against a stranger."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(
            ["code", "-p", "hi"],
            home,
            {"PORT": str(port)},
            path=f"{CLAUDE_BIN.parent}:/usr/bin:/bin",
        )
    assert done.returncode == 1
    assert "did not become ready" in done.stderr and "address already in use" in done.stderr
    assert "warning: OPENROUTER_API_KEY" not in done.stderr  # the key is set here
    assert not (state(home) / f"router-{port}.pid").exists()  # no stale PID file left
