"""The real anthropic-router server, started as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

SRC_DIR = Path(__file__).resolve().parents[2] / "src"
UPSTREAM_API_KEY = "test-upstream-key-0000"
INHERITED_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH")
OUTPUT_FILES = ("stdout.log", "stderr.log")

EnvOverrides = Mapping[str, str | None]


class RouterStartError(RuntimeError):
    """The router exited or did not answer /health in time; the message holds its output."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def router_env(upstream_url: str | None, overrides: EnvOverrides | None = None) -> dict[str, str]:
    """A minimal environment: a few inherited variables, the test defaults, then `overrides`
    (a None value removes the variable). `src/` is put first on PYTHONPATH."""
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    # Coverage of the server process itself (scripts/test.sh measures subprocesses too).
    env.update({k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC_DIR), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"  # logs reach the files while the process runs
    env["OPENROUTER_API_KEY"] = UPSTREAM_API_KEY
    env["LOG_LEVEL"] = "INFO"
    if upstream_url is not None:
        env["OPENROUTER_BASE_URL"] = f"{upstream_url}/api/v1"
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class RouterProcess:
    """`python -m anthropic_router serve` in a temporary working directory (so no stray .env
    is read), with stdout and stderr captured to files."""

    def __init__(
        self,
        upstream_url: str | None = None,
        env: EnvOverrides | None = None,
        *,
        port: int | None = None,
        startup_timeout: float = 20.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.env = router_env(upstream_url, env)
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._final_outputs: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            *("-m", "anthropic_router", "serve"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *self.extra_args,
        ]

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def start(self) -> RouterProcess:
        """Spawn the server and wait for `GET /health` to return 200."""
        self._workdir = tempfile.TemporaryDirectory(prefix="anthropic-router-test-")
        workdir = Path(self._workdir.name)
        # The child keeps its own copies of the file descriptors.
        with (
            open(workdir / OUTPUT_FILES[0], "wb") as out,
            open(workdir / OUTPUT_FILES[1], "wb") as err,
        ):
            self._process = subprocess.Popen(
                self.command,
                cwd=workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.returncode is not None:
                raise RouterStartError(self._failure(f"router exited with {self.returncode}"))
            if _health_ok(f"{self.url}/health"):
                return
            time.sleep(0.05)
        raise RouterStartError(self._failure(f"no healthy /health in {self.startup_timeout}s"))

    def _failure(self, reason: str) -> str:
        return f"{reason}\ncommand: {' '.join(self.command)}\n--- output ---\n{self.logs()}"

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._workdir is not None:
            self._final_outputs = {name: self._read_output(name) for name in OUTPUT_FILES}
            self._workdir.cleanup()
            self._workdir = None
        return None if process is None else process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown runs (logs stay readable until stop())."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> RouterProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stdout(self) -> str:
        return self._read_output("stdout.log")

    def stderr(self) -> str:
        return self._read_output("stderr.log")

    def logs(self) -> str:
        """Everything the process wrote so far, stdout then stderr; still readable after stop()."""
        return self.stdout() + self.stderr()

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        """Wait until `text` appears in the logs; returns the logs or raises AssertionError."""
        deadline = time.monotonic() + timeout
        while text not in (logs := self.logs()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in router logs after {timeout}s:\n{logs}")
            time.sleep(0.05)
        return logs

    def _read_output(self, name: str) -> str:
        if self._workdir is None:
            return self._final_outputs.get(name, "")
        text = (Path(self._workdir.name) / name).read_text(errors="replace")
        if self._process is not None and self._process.poll() is None:
            # A line still being written (a worker mid-write, seen by CI as a half JSON record)
            # is not part of the log yet: readers get whole lines only while the router runs.
            text = text[: text.rfind("\n") + 1]
        return text


# Loopback must never go through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _health_ok(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=1.0) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False
