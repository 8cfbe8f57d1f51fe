"""Start-up imports only what serving a request needs: aiohttp (about 0.2 s and 7 MB) serves
the cold paths (model lists, probes, OAuth tokens, server tools) and loads with the first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import asyncio, sys
from anthropic_router.app import create_app_from_env

async def main():
    app = create_app_from_env()
    queue, started = asyncio.Queue(), asyncio.Event()

    async def send(message):
        assert message["type"] != "lifespan.startup.failed", message
        started.set()

    lifespan = asyncio.ensure_future(app({"type": "lifespan"}, queue.get, send))
    await queue.put({"type": "lifespan.startup"})
    await started.wait()
    await app._preload
    print("started", "aiohttp" in sys.modules)
    app.provider.session  # the first cold-path use opens the session
    print("cold path", "aiohttp" in sys.modules)
    await queue.put({"type": "lifespan.shutdown"})
    await lifespan

asyncio.run(main())
"""


def test_aiohttp_is_not_a_start_up_import(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(SRC),
        "OPENROUTER_API_KEY": "sk-or-test-startup",  # pragma: allowlist secret
        "METRICS_ENABLE": "false",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.decode().split("\n")[:2]
    assert lines == ["started False", "cold path True"]
