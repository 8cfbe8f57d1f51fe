"""CPU per RedisKV call: redis-py's asyncio client (rediskv.py as on a git revision, main by
default) against our own RESP client (rediskv.py in this checkout), interleaved, best of N.

    python3 bench/redis_cost.py [--rev main] [--calls 3000] [--reps 3]

Process CPU time (time.process_time) per call, under uvloop, against a throw-away local
`redis-server` on a free port: a GET of a 2 KB value and an EVALSHA of gateway/limits.py's
ADMIT_SCRIPT with its real arguments, one call at a time and 16 concurrent.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import uvloop  # noqa: E402

from anthropic_router.gateway.limits import ADMIT_SCRIPT  # noqa: E402


def load(name: str, source: str) -> ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


async def cpu_per_call(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> float:
    """Microseconds of process CPU per call, `concurrency` callers at a time."""
    for _ in range(200):  # warm: connections open, script loaded
        await call()

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    start = time.process_time()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    return (time.process_time() - start) / (calls // concurrency * concurrency) * 1e6


async def measure(module: ModuleType, url: str, calls: int) -> dict[str, float]:
    # Long timeouts: a busy machine must not turn a slow call into an outage mid-run.
    kv = module.RedisKV(url, prefix="bench:", socket_timeout=5.0, connect_timeout=5.0)
    try:
        await kv.set("value", b"x" * 2048, 600)
        names = [f"rl:key:{kind}:{i}" for kind in "rt" for i in (100, 99)]
        args = [repr(12.5), 1_000_000, 1_000_000_000, 121, 1]
        ops: dict[str, Callable[[], Awaitable[Any]]] = {
            "GET 2 KB": lambda: kv.get("value"),
            "EVALSHA admit": lambda: kv.eval(ADMIT_SCRIPT, names, args),
        }
        out = {}
        for op, call in ops.items():
            for concurrency in (1, 16):
                out[f"{op}, c={concurrency}"] = await cpu_per_call(call, calls, concurrency)
        return out
    finally:
        await kv.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rev", default="main", help="git revision of the redis-py RedisKV")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=3)
    options = parser.parse_args()
    old_source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{options.rev}:src/anthropic_router/rediskv.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    clients = {
        f"redis-py ({options.rev})": load("rediskv_old", old_source),
        "own RESP": load("rediskv_new", (ROOT / "src/anthropic_router/rediskv.py").read_text()),
    }
    root = Path(tempfile.mkdtemp(prefix="redis-cost-"))
    process, url = start_redis(root)
    results: dict[str, dict[str, list[float]]] = {name: {} for name in clients}
    try:
        for rep in range(options.reps):
            order = list(clients) if rep % 2 == 0 else list(reversed(clients))
            for name in order:
                figures = uvloop.run(measure(clients[name], url, options.calls))
                for op, value in figures.items():
                    results[name].setdefault(op, []).append(value)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(root, ignore_errors=True)
    ops = list(next(iter(results.values())))
    print(f"CPU µs per call, best of {options.reps} ({options.calls} calls each)")
    print("| call | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for op in ops:
        cells = " | ".join(f"{min(results[name][op]):.1f}" for name in results)
        print(f"| {op} | {cells} |")


if __name__ == "__main__":
    main()
