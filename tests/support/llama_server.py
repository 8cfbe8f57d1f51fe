"""llama-cpp-python's real OpenAI-compatible server (`python -m llama_cpp.server`) on a free
loopback port, serving the tiny random-weight model that `support.tiny_gguf` writes.

Installed by scripts/setup-llama.sh (a CPU-only wheel built once from the sdist and cached in
.cache/wheels). The chat format is `chatml-function-calling`, the one that does tool calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from support.router import RouterProcess, free_port
from support.tiny_gguf import CONTEXT, write_model

MODEL_ALIAS = "tiny-llama"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LlamaServerError(RuntimeError):
    """The server exited or did not list its model in time; the message holds its output."""


def installed() -> None:
    """Fail (not skip) with the command that installs the server when it is missing."""
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as exc:
        raise LlamaServerError(
            f"llama-cpp-python's server is not installed ({exc}); run: bash scripts/setup-llama.sh"
        ) from exc


class LlamaServer:
    def __init__(self, startup_timeout: float = 120.0) -> None:
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LlamaServer:
        installed()
        self._dir = tempfile.TemporaryDirectory(prefix="tiny-llama-")
        workdir = Path(self._dir.name)
        model = write_model(workdir / "tiny.gguf")
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model), "--model_alias", MODEL_ALIAS,
            "--chat_format", "chatml-function-calling",
            "--n_ctx", str(CONTEXT), "--n_threads", "2", "--seed", "7",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        with open(workdir / "server.log", "wb") as log:
            self._process = subprocess.Popen(
                command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise LlamaServerError(f"llama_cpp.server exited:\n{self.logs()}")
            if MODEL_ALIAS in json.dumps(self.get("/v1/models") or {}):
                return
            time.sleep(0.2)
        raise LlamaServerError(
            f"llama_cpp.server not ready in {self.startup_timeout}s:\n{self.logs()}"
        )

    def router_env(self) -> dict[str, str | None]:
        """Router settings that send every model to this server (and no OpenRouter key, so
        nothing can go out)."""
        return {
            "PROXY_BACKEND": "OPENAI_COMPATIBLE",
            "OPENAI_COMPATIBLE_BASE_URL": f"{self.url}/v1",
            "BIG_MODEL": MODEL_ALIAS,
            "SMALL_MODEL": MODEL_ALIAS,
            "OPENROUTER_API_KEY": None,
        }

    def router(self, startup_timeout: float = 60.0) -> RouterProcess:
        """A router in front of this server (not started: use it as a context manager)."""
        return RouterProcess(None, self.router_env(), startup_timeout=startup_timeout)

    def get(self, path: str) -> Any:
        try:
            with _DIRECT.open(self.url + path, timeout=2.0) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def logs(self) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
