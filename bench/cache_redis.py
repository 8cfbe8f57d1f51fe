#!/usr/bin/env python3
"""What a response-cache miss and hit cost with the Redis store: this checkout against a git
revision (main by default), interleaved, best of N.

    python3 bench/cache_redis.py [--rev main] [--requests 2000] [--reps 3]

Each version runs in its own process (its `src/` from `git archive`) with uvloop, against
one throw-away local `redis-server`: the real `ResponseCache` over `RedisStore` and the
router's `RedisKV`, around an inner relay that answers at once with bench/payloads.py's
request. A miss is a new question each time (lookup, single-flight claim, upstream, store);
a hit asks a stored one again. Figures per request: process CPU (µs), wall time (µs, one
request at a time: the Redis round trips) and Redis round trips.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))


async def _measure(url: str, requests: int) -> dict[str, dict[str, float]]:
    import payloads

    from anthropic_router.cache import ResponseCache
    from anthropic_router.cache.stores import RedisStore
    from anthropic_router.config import Settings
    from anthropic_router.observability import Exchange
    from anthropic_router.rediskv import KVUnavailable, RedisKV
    from anthropic_router.relay import Call, Reply
    from anthropic_router.routing import Router

    settings = Settings(_env_file=None, openrouter_api_key="sk-bench", big_model="bench-model")
    route = Router(settings).resolve(payloads.CLAUDE_MODEL)
    base = payloads.anthropic_request(False)
    message = {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "bench-model",
        "content": [{"type": "text", "text": "an answer " * 80}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 900, "output_tokens": 200},
    }  # fmt: skip

    class Answer:
        async def run(self, call: Call) -> Reply:
            return Reply([], message=dict(message))

    class Counted(RedisKV):  # the round trips to Redis (a script's own calls are not)
        calls = 0

        async def _call(self, command: Any, script: Any = None) -> Any:
            self.calls += 1
            return await super()._call(command, script)

    kv = Counted(url, prefix="bench:", socket_timeout=5.0, connect_timeout=5.0)
    store = RedisStore(kv, "rc", KVUnavailable, lambda store, op: None)
    cache = ResponseCache(Answer(), store, ttl=600, max_entry_bytes=1 << 24, wait_timeout=60)

    def request(n: int) -> dict:
        messages = [*base["messages"][:-1], {"role": "user", "content": f"question {n}"}]
        return {**base, "messages": messages}

    async def ask(body: dict) -> str:
        record = Exchange("req_bench", "POST", "/v1/messages")
        await cache.run(Call(body, route, record))
        return str(record.cache)

    out: dict[str, dict[str, float]] = {}
    tag = os.getpid()
    bodies = [request(tag * 10_000_000 + n) for n in range(requests)]
    for kind in ("miss", "hit"):  # the hits ask the questions the misses stored
        for body in bodies[:50]:
            await ask(body)  # warm: connection open, scripts loaded
        before = kv.calls
        cpu, wall = time.process_time(), time.perf_counter()
        results = {await ask(body) for body in bodies[50:]}
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        count = len(bodies) - 50
        assert results == {kind}, results
        trips = (kv.calls - before) / count
        out[kind] = {"cpu_us": cpu / count * 1e6, "wall_us": wall / count * 1e6, "trips": trips}
    await kv.close()
    return out


def _child(url: str, requests: int) -> None:
    import uvloop

    print(json.dumps(uvloop.run(_measure(url, requests))))


def _source(rev: str, into: Path) -> Path:
    command = ["git", "-C", str(ROOT), "archive", rev, "src"]
    archive = subprocess.run(command, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rev", default="main")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        _child(options.child, options.requests)
        return
    from redis_cost import start_redis

    root = Path(tempfile.mkdtemp(prefix="cache-redis-"))
    versions = {options.rev: _source(options.rev, root / "old"), "this checkout": ROOT / "src"}
    process, url = start_redis(root)
    results: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in versions}
    try:
        for rep in range(options.reps):
            for name in versions if rep % 2 == 0 else reversed(versions):
                env = {**os.environ, "PYTHONPATH": str(versions[name])}
                command = [sys.executable, __file__, "--child", url]
                command += ["--requests", str(options.requests)]
                done = subprocess.run(
                    command, env=env, check=True, capture_output=True, text=True, timeout=60
                )
                results[name].append(json.loads(done.stdout))
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(root, ignore_errors=True)
    print(f"per request, best of {options.reps} ({options.requests - 50} requests each)")
    print("| path | version | CPU µs | wall µs | Redis round trips |")
    print("|---|---|---|---|---|")
    for kind in ("miss", "hit"):
        for name, runs in results.items():
            cpu = min(run[kind]["cpu_us"] for run in runs)
            wall = min(run[kind]["wall_us"] for run in runs)
            trips = runs[0][kind]["trips"]
            print(f"| {kind} | {name} | {cpu:.1f} | {wall:.1f} | {trips:.2f} |")


if __name__ == "__main__":
    main()
