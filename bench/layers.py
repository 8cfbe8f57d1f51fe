"""Where a request's CPU goes, layer by layer, against the scripted upstream (bench/upstream.py).

    python3 bench/layers.py [--reps 3]

Four measurements, each CPU time (utime+stime) of the process doing the work, per request:
  client     the upstream HTTP client alone (providers/http1.py; aiohttp beside it, as before)
             in one process: POST, read the body to its end, c=16
  relay-min  a minimal ASGI app under uvicorn that forwards the upstream's bytes unchanged
             (no parsing, conversion, logging or metrics): the floor of uvicorn + the client
             + asyncio for one exchange, over HTTP, measured like bench/ab.py
  app        the router's ASGI App driven in process (no HTTP server: receive/send are
             plain coroutines), c=16: everything the router does except the server's share
  router     the router itself over HTTP (`anthropic-router serve`), measured like ab.py
Each for non-streaming, back-to-back streaming (one upstream read per stream) and paced
streaming (20 ms per chunk, about 50 reads per stream; c=200 over HTTP, c=16 in process).
The router process is on core 0, the upstream and the load client on core 1 (as run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab  # bench/ab.py: measure()
import payloads
import run  # bench/run.py: processes, venv, upstream

BENCH = run.BENCH
SRC = run.ROOT / "src"
sys.path.insert(0, str(SRC))  # the client measurement imports this checkout's router

MINIMAL_APP = r"""
import os
from anthropic_router.providers import http1

URL = os.environ["OPENROUTER_BASE_URL"] + "/chat/completions"
_pool = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"] + ".complete"
            await send({"type": kind})
            if message["type"] == "lifespan.shutdown":
                return
    body = []
    while True:
        message = await receive()
        body.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if not _pool:
        _pool.append(http1.Pool(http1.Origin(URL), connect_timeout=5))
    pool = _pool[0]
    stream = b'"stream":true' in b"".join(body) or b'"stream": true' in b"".join(body)
    flag = b"true" if stream else b"false"
    upstream_body = b'{"model":"bench-model","stream":%s,"messages":[]}' % flag
    head = http1.encode_head(
        "POST", http1.target_of(URL), pool.origin.host_header, {"Content-Type": "application/json"}
    )
    response = await pool.request(head, upstream_body, 10)
    kind = b"text/event-stream" if stream else b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    while data := await response.readany():
        await send({"type": "http.response.body", "body": data, "more_body": True})
    response.release()
    await send({"type": "http.response.body", "body": b""})
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- in process
def client_cpu(url: str, stream: bool, n: int) -> dict[str, float]:
    """µs of CPU per exchange for http1 and aiohttp, c=16, in this process."""
    import aiohttp
    import orjson
    import uvloop

    from anthropic_router.providers import http1

    body = orjson.dumps(payloads.openai_request(stream))
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}

    async def with_aiohttp() -> float:
        connector = aiohttp.TCPConnector(limit=0)
        session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))

        async def one() -> None:
            async with session.post(url, data=body, headers=headers) as response:
                while await response.content.readany():
                    pass

        await asyncio.gather(*[one() for _ in range(16)])
        start = cpu()
        for _ in range(n // 16):
            await asyncio.gather(*[one() for _ in range(16)])
        spent = cpu() - start
        await session.close()
        return spent

    async def with_http1() -> float:
        pool = http1.Pool(http1.Origin(url), connect_timeout=5)
        head = http1.encode_head("POST", http1.target_of(url), pool.origin.host_header, headers)

        async def one() -> None:
            response = await pool.request(head, body, 10)
            while await response.readany():
                pass
            response.release()

        await asyncio.gather(*[one() for _ in range(16)])
        start = cpu()
        for _ in range(n // 16):
            await asyncio.gather(*[one() for _ in range(16)])
        spent = cpu() - start
        pool.close()
        return spent

    return {
        "http1": uvloop.run(with_http1()) / n * 1e6,
        "aiohttp": uvloop.run(with_aiohttp()) / n * 1e6,
    }


APP_CHILD = r"""
import asyncio, json, logging, os, resource, sys
import uvloop
from anthropic_router.app import create_app_from_env

STREAM, C, N = sys.argv[1] == "stream", int(sys.argv[2]), int(sys.argv[3])
BODY = sys.stdin.buffer.read()
HEADERS = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
           (b"anthropic-version", b"2023-06-01"), (b"content-length", str(len(BODY)).encode())]


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main():
    app = create_app_from_env()
    for handler in logging.getLogger().handlers:
        handler.stream = open(os.devnull, "w")  # the log line is built, not written to a pipe
    queue, started = asyncio.Queue(), asyncio.Event()

    async def lifespan_send(message):
        started.set()

    lifespan = asyncio.ensure_future(app({"type": "lifespan"}, queue.get, lifespan_send))
    await queue.put({"type": "lifespan.startup"})
    await started.wait()
    await app._preload  # the tokenizer preload thread must not land in the window

    async def one():
        done = asyncio.Event()
        pending = [{"type": "http.request", "body": BODY, "more_body": False}]

        async def receive():
            if pending:
                return pending.pop()
            await done.wait()
            return {"type": "http.disconnect"}

        status = []

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        scope = {"type": "http", "http_version": "1.1", "method": "POST", "path": "/v1/messages",
                 "raw_path": b"/v1/messages", "query_string": b"", "headers": HEADERS}
        await app(scope, receive, send)
        done.set()
        assert status == [200], status

    await asyncio.gather(*[one() for _ in range(C)])
    start = cpu()
    for _ in range(N // C):
        await asyncio.gather(*[one() for _ in range(C)])
    print(json.dumps({"us": (cpu() - start) / N * 1e6}))
    await queue.put({"type": "lifespan.shutdown"})
    await lifespan


uvloop.run(main())
"""


def app_cpu(up_port: int, stream: bool, concurrency: int, n: int) -> float:
    env = dict(
        os.environ,
        PYTHONPATH=str(SRC),
        OPENROUTER_API_KEY="sk-bench",  # pragma: allowlist secret
        OPENROUTER_BASE_URL=f"http://127.0.0.1:{up_port}/api/v1",
        BIG_MODEL=payloads.UPSTREAM_MODEL,
        SMALL_MODEL=payloads.UPSTREAM_MODEL,
    )
    mode = "stream" if stream else "ns"
    cmd = ["taskset", "-c", run.SERVER_CORE, sys.executable, "-c", APP_CHILD, mode]
    cmd += [str(concurrency), str(n)]
    body = payloads.dumps(payloads.anthropic_request(stream))
    out = subprocess.run(cmd, input=body, capture_output=True, env=env, timeout=300, check=True)
    return float(json.loads(out.stdout.decode().strip().splitlines()[-1])["us"])


# --------------------------------------------------------------------------- over HTTP
def start_minimal(up_port: int) -> tuple[run.Server, int]:
    app_dir = run.RAW / "layers"
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "minimal_relay.py").write_text(MINIMAL_APP)
    port = run.free_port()
    env = dict(
        os.environ,
        PYTHONPATH=f"{app_dir}:{SRC}",
        OPENROUTER_BASE_URL=f"http://127.0.0.1:{up_port}/api/v1",
    )
    cmd = [sys.executable, "-m", "uvicorn", "minimal_relay:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    cmd += ["--log-level", "warning", "--no-proxy-headers"]
    server = run.Server("minimal", cmd, env, run.SERVER_CORE, run.RAW / "logs" / "layers-min.log")
    for _ in range(300):
        if run.http("GET", f"http://127.0.0.1:{port}/health", timeout=0.5)[0] == 200:
            return server, port
        time.sleep(0.05)
    raise RuntimeError("minimal relay did not start: " + server.log_tail())


def over_http(kind: str, up_port: int) -> dict[str, float]:
    if kind == "relay-min":
        server, port = start_minimal(up_port)
    else:
        server, port = ab.start_router(run.ROOT, up_port, {})
    try:
        return {
            name: ab.measure(name, server, port, up_port)["cpu_ms"] * 1000 for name in ab.SCENARIOS
        }
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    up_port = run.free_port()
    upstream_cmd = [sys.executable, str(BENCH / "upstream.py"), "--port", str(up_port)]
    upstream = run.Server(
        "upstream",
        upstream_cmd,
        dict(os.environ),
        run.LOAD_CORE,
        run.RAW / "logs" / "layers-up.log",
    )
    time.sleep(1.0)
    url = f"http://127.0.0.1:{up_port}/api/v1/chat/completions"
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)
        run.log(f"{name}: {value:.1f} µs")

    try:
        for _ in range(args.reps):
            run.set_delay(up_port, 0)
            for stream in (False, True):
                label = "stream" if stream else "ns"
                for client, us in client_cpu(url, stream, 4000 if not stream else 2000).items():
                    add(f"client {client} {label} c=16", us)
                add(f"app in process {label} c=16", app_cpu(up_port, stream, 16, 4000))
            run.set_delay(up_port, 20)
            add("app in process paced c=16", app_cpu(up_port, True, 16, 320))
            run.set_delay(up_port, 0)
            for kind in ("relay-min", "router"):
                for scenario, us in over_http(kind, up_port).items():
                    add(f"{kind} over HTTP {scenario}", us)
    finally:
        run.set_delay(up_port, 0)
        upstream.stop()
    print("\nµs of CPU per exchange (median of the repetitions, then every repetition):")
    for name, values in rows.items():
        each = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {name:42s} {statistics.median(values):8.1f}   [{each}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
