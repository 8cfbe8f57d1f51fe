"""GC_TUNING: at the end of start-up the heap is frozen out of the collector and young
collections get a higher threshold; with GC_TUNING=false CPython's defaults stay. Run in a
child interpreter: the settings are process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import asyncio, gc, json
from anthropic_router.app import create_app
from anthropic_router.config import Settings


async def main():
    before = gc.get_threshold()
    app = create_app(Settings(_env_file=None, openrouter_api_key="test-key-not-real"))
    messages = [{"type": "lifespan.startup"}]
    started = asyncio.Event()
    stop = asyncio.Event()

    async def receive():
        if messages:
            return messages.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message):
        if message["type"] == "lifespan.startup.complete":
            started.set()

    task = asyncio.ensure_future(app({"type": "lifespan"}, receive, send))
    await started.wait()
    print(json.dumps({"before": before, "after": gc.get_threshold(),
                      "frozen": gc.get_freeze_count()}))
    stop.set()
    await task


asyncio.run(main())
"""


def _start_up(gc_tuning: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "GC_TUNING": gc_tuning}
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_start_up_freezes_the_heap_and_raises_the_young_threshold() -> None:
    result = _start_up("true")
    assert result["after"] == [7000, 10, 10]
    assert isinstance(result["frozen"], int) and result["frozen"] > 10_000


def test_gc_tuning_false_keeps_the_defaults() -> None:
    result = _start_up("false")
    assert result["after"] == result["before"]
    assert result["frozen"] == 0
