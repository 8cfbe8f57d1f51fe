"""`anthropic-router code | env | status | stop`: Claude Code on the router in one command.

`code` reuses a router that answers on the configured port or starts one in the background
(its output goes to a log file in the state directory, its pid to a PID file there), waits
until it is ready, then replaces itself with `claude`, so arguments, stdin, the terminal,
signals and the exit code are Claude Code's own.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from anthropic_router.config import Settings

INSTALL_HINT = (
    "anthropic-router: Claude Code (`claude`) is not installed or not on PATH.\n"
    "Install it with:\n"
    "  npm install -g @anthropic-ai/claude-code\n"
    "or the native installer:\n"
    "  curl -fsSL https://claude.ai/install.sh | bash\n"
    "then run `anthropic-router code` again."
)
NOT_FOUND = 127  # the shell's "command not found"
NOT_RUNNING = 3  # LSB `status`: program is not running
READY_TIMEOUT = 30.0
LOG_ROTATE_BYTES = 10 * 1024 * 1024
# The haiku name makes Claude Code's background calls reach the `background` rule (or the
# SMALL_MODEL tier); discovery puts the routing file's routes in the /model picker.
CLAUDE_DEFAULTS = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # else the key also goes to Anthropic
    "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5",
    "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1",
}
NO_KEY = "anthropic-router"  # any string works when PROXY_API_KEY is unset


@dataclass(frozen=True, slots=True)
class Place:
    """Where this configuration's background router lives: its URL and state files."""

    url: str
    pid_file: Path
    log_file: Path


def state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "anthropic-router"


def place(settings: Settings, environ: Mapping[str, str]) -> Place:
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: talk to it on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    directory = state_dir(environ)
    return Place(
        f"http://{host}:{settings.port}",
        directory / f"router-{settings.port}.pid",
        directory / f"router-{settings.port}.log",
    )


def claude_env(settings: Settings, url: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment Claude Code runs with: the router's URL and a key it accepts (as a
    bearer token, which Claude Code uses without asking for approval), and the defaults
    above unless the user set them."""
    env = dict(environ)
    env["ANTHROPIC_BASE_URL"] = url
    if not settings.forward_client_key:  # otherwise the user's key is their OpenRouter key
        keys = settings.client_keys
        env["ANTHROPIC_AUTH_TOKEN"] = keys[0].decode() if keys else NO_KEY
        env.pop("ANTHROPIC_API_KEY", None)
    for name, value in CLAUDE_DEFAULTS.items():
        env.setdefault(name, value)
    return env


def export_lines(settings: Settings, environ: Mapping[str, str]) -> str:
    """`anthropic-router env`: shell lines for `eval "$(anthropic-router env)"`."""
    env = claude_env(settings, place(settings, environ).url, {})
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    if "ANTHROPIC_AUTH_TOKEN" in env:
        lines.append("unset ANTHROPIC_API_KEY")
    return "\n".join(lines) + "\n"


# Loopback never goes through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str) -> bool:
    """An anthropic-router (not just any server) answers `GET /health` at `url`."""
    try:
        with _DIRECT.open(f"{url}/health", timeout=1.0) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(body, dict) and body.get("service") == "anthropic-router"


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def is_router_process(pid: int) -> bool:
    """The pid is alive and (where /proc tells) runs anthropic_router: a pid reused by
    another program after a crash counts as stale."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not ours
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes()
        if not cmdline:  # a zombie, or a process caught while it execs
            return (proc / "stat").read_text().split(")")[-1].split()[0] != "Z"
        return b"anthropic_router" in cmdline
    except (OSError, IndexError):
        return not Path("/proc/self").exists()  # no /proc: trust kill(0)


def running_pid(where: Place) -> tuple[int | None, str | None]:
    """(pid, None) for a live background router; (None, note) after removing a stale PID
    file; (None, None) when there is no PID file."""
    pid = read_pid(where.pid_file)
    if pid is None:
        if where.pid_file.exists():
            where.pid_file.unlink(missing_ok=True)
            return None, f"removed an unreadable PID file {where.pid_file}"
        return None, None
    if is_router_process(pid):
        return pid, None
    where.pid_file.unlink(missing_ok=True)
    return None, f"removed a stale PID file (pid {pid} is not running)"


def start_background(where: Place, environ: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Spawn `anthropic-router serve` detached from this terminal."""
    where.log_file.parent.mkdir(parents=True, exist_ok=True)
    if where.log_file.exists() and where.log_file.stat().st_size > LOG_ROTATE_BYTES:
        where.log_file.replace(where.log_file.with_suffix(".log.1"))
    with open(where.log_file, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "anthropic_router", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(environ),
            start_new_session=True,  # Ctrl-C in Claude Code does not reach it
        )
    where.pid_file.write_text(f"{process.pid}\n")
    return process


def wait_ready(where: Place, alive: Callable[[], bool], timeout: float = READY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(where.url):
            return True
        if not alive():
            return answers(where.url)  # it exited: maybe another one won the port
        time.sleep(0.1)
    return False


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ensure_router(settings: Settings, environ: Mapping[str, str]) -> Place | None:
    """A ready router for these settings, started when none answers; None (after saying
    why on stderr) when it cannot be started."""
    where = place(settings, environ)
    if answers(where.url):
        return where
    pid, _ = running_pid(where)
    if pid is None:
        process = start_background(where, environ)
        print(f"anthropic-router: started in the background (pid {process.pid}), "
              f"log {where.log_file}", file=sys.stderr)  # fmt: skip
        alive: Callable[[], bool] = lambda: process.poll() is None  # noqa: E731
    else:  # started by an earlier `code` and still starting up
        alive = functools.partial(is_router_process, pid)
    if wait_ready(where, alive):
        return where
    if not alive():  # it died: its PID file would only be stale
        where.pid_file.unlink(missing_ok=True)
    print(
        f"anthropic-router: the background router did not become ready at {where.url}; "
        f"the end of {where.log_file}:\n{log_tail(where.log_file)}",
        file=sys.stderr,
    )
    return None


def code(settings: Settings, claude_args: list[str]) -> int:
    """`anthropic-router code [claude arguments...]`; returns only on failure."""
    for warning in settings.warnings():  # e.g. no OPENROUTER_API_KEY: say it before Claude does
        print(f"anthropic-router: warning: {warning}", file=sys.stderr)
    claude = shutil.which("claude")
    if claude is None:
        print(INSTALL_HINT, file=sys.stderr)
        return NOT_FOUND
    where = ensure_router(settings, os.environ)
    if where is None:
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(claude, ["claude", *claude_args], claude_env(settings, where.url, os.environ))


def status(settings: Settings) -> int:
    where = place(settings, os.environ)
    pid, note = running_pid(where)
    if note:
        print(f"anthropic-router: {note}")
    if pid is not None:
        state = "ready" if answers(where.url) else "not answering yet"
        print(f"running (pid {pid}) at {where.url}, {state}; log {where.log_file}")
        return 0
    if answers(where.url):
        print(f"a router answers at {where.url} (not started by `anthropic-router code`)")
        return 0
    print(f"not running (nothing answers at {where.url})")
    return NOT_RUNNING


def stop(settings: Settings, grace: float | None = None) -> int:
    """SIGTERM the background router, SIGKILL it if it outlives the shutdown grace."""
    where = place(settings, os.environ)
    pid, note = running_pid(where)
    if note:
        print(f"anthropic-router: {note}")
    if pid is None:
        print("no background router is running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + (settings.shutdown_grace_seconds if grace is None else grace) + 5
    while is_router_process(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_router_process(pid):
        os.kill(pid, signal.SIGKILL)
    where.pid_file.unlink(missing_ok=True)
    print(f"stopped (pid {pid})")
    return 0
