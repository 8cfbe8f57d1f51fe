"""The message-batch benchmark: a 10,000-request batch through the router against the
scripted upstream (bench/upstream.py), on one core, with and without interactive traffic.

For each scenario (upstream think time, BATCH_CONCURRENCY):
  floor        the upstream alone at the batch's concurrency (loadgen, closed loop)
  idle p50     interactive /v1/messages latency at concurrency 1 on an idle router
  batch alone  a 10,000-request batch: requests/s from created_at to ended_at, router CPU
               per request, peak RSS; then the results download (time, peak RSS)
  batch + p50  a second 10,000-request batch with the same interactive load running beside
               it: interactive p50 against the idle one, and the batch's requests/s

Run: PYTHONPATH=src python bench/batches.py [--requests N] [--quick]
Writes bench/results/batches.json; the table goes into docs/11-benchmarks.md by hand.
Bounded: every wait has a deadline (a scenario stops at --max-seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import payloads  # noqa: E402
from run import LOAD_CORE, SERVER_CORE, Server, free_port, http, wait_idle  # noqa: E402

RESULTS = BENCH / "results"
ROUTER_KEY = "sk-bench-client"


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_flag = pid, 0, threading.Event()

    def run(self) -> None:
        self.peak = rss_kb(self.pid)
        while not self.stop_flag.wait(0.05):
            self.peak = max(self.peak, rss_kb(self.pid))

    def finish(self) -> int:
        self.stop_flag.set()
        self.join()
        return max(self.peak, rss_kb(self.pid))


def run_loadgen(spec: dict) -> dict:
    import subprocess

    cmd = ["taskset", "-c", LOAD_CORE, sys.executable, str(BENCH / "loadgen.py")]
    p = subprocess.run(
        [*cmd, "--spec", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=spec["duration_s"] + 60,
    )
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    result: dict = json.loads(p.stdout.strip().splitlines()[-1])
    return result


def interactive_spec(port: int, pid: int, seconds: float) -> dict:
    return {
        "host": "127.0.0.1",
        "port": port,
        "path": "/v1/messages",
        "headers": {"x-api-key": ROUTER_KEY, "content-type": "application/json"},
        "body": payloads.dumps(payloads.anthropic_request(False)).decode(),
        "concurrency": 1,
        "duration_s": seconds,
        "warmup_s": 1.0,
        "server_pid": pid,
    }


def floor_rps(up_port: int, concurrency: int, seconds: float) -> dict:
    spec = {
        "host": "127.0.0.1",
        "port": up_port,
        "path": "/api/v1/chat/completions",
        "headers": {"Authorization": "Bearer sk-bench", "content-type": "application/json"},
        "body": payloads.dumps(payloads.openai_request(False)).decode(),
        "concurrency": concurrency,
        "duration_s": seconds,
        "warmup_s": 1.0,
    }
    r = run_loadgen(spec)
    return {"rps": r["rps"], "p50_ms": r["lat_ms"]["p50"]}


def api(port: int, method: str, path: str, body: Any = None, timeout: float = 120) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"x-api-key": ROUTER_KEY, "content-type": "application/json"}
    status, raw = http(method, f"http://127.0.0.1:{port}{path}", data, headers, timeout)
    if status != 200:
        raise RuntimeError(f"{method} {path}: HTTP {status}: {raw[:500]!r}")
    return json.loads(raw)


def batch_body(n: int) -> dict:
    params = payloads.anthropic_request(False)
    return {"requests": [{"custom_id": f"r{i}", "params": params} for i in range(n)]}


def run_batch(port: int, pid: int, n: int, max_s: float, beside: dict | None = None) -> dict:
    """Create a batch, wait for its end (optionally with interactive load beside it)."""
    body = batch_body(n)
    cpu0 = loadgen.cpu_seconds(pid)
    sampler = RssSampler(pid)
    sampler.start()
    t0 = time.perf_counter()
    created = api(port, "POST", "/v1/messages/batches", body)
    create_s = time.perf_counter() - t0
    del body
    interactive: dict | None = None
    if beside is not None:
        interactive = run_loadgen(beside)
        status = api(port, "GET", f"/v1/messages/batches/{created['id']}")["processing_status"]
        interactive["batch_ran_throughout"] = status != "ended"
    deadline = time.monotonic() + max_s
    batch = created
    while batch["processing_status"] != "ended":
        if time.monotonic() > deadline:
            raise RuntimeError(f"batch not ended in {max_s}s: {batch['request_counts']}")
        time.sleep(0.25)
        batch = api(port, "GET", f"/v1/messages/batches/{created['id']}")
    cpu = loadgen.cpu_seconds(pid) - cpu0
    peak = sampler.finish()
    start = _seconds(batch["created_at"])
    elapsed = _seconds(batch["ended_at"]) - start
    out = {
        "requests": n,
        "create_s": round(create_s, 2),
        "elapsed_s": round(elapsed, 2),
        "rps": round(n / elapsed, 1),
        "cpu_ms_per_request": round(cpu * 1000 / n, 3),
        "peak_rss_mb": round(peak / 1024, 1),
        "counts": batch["request_counts"],
    }
    if interactive is not None:
        out["interactive"] = {
            "p50_ms": interactive["lat_ms"]["p50"],
            "p90_ms": interactive["lat_ms"]["p90"],
            "requests": interactive["requests"],
            "errors": interactive["errors"],
            # False: the batch ended inside the window, so the figure is not "beside" a batch
            "batch_ran_throughout": interactive["batch_ran_throughout"],
        }
    out["results"] = download(port, pid, created["id"], n)
    api(port, "DELETE", f"/v1/messages/batches/{created['id']}")
    return out


def download(port: int, pid: int, batch_id: str, n: int) -> dict:
    sampler = RssSampler(pid)
    sampler.start()
    t0 = time.perf_counter()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/messages/batches/{batch_id}/results",
        headers={"x-api-key": ROUTER_KEY},
    )
    lines = size = 0
    with urllib.request.urlopen(request, timeout=300) as response:
        for line in response:
            lines += 1
            size += len(line)
    seconds = time.perf_counter() - t0
    assert lines == n, f"{lines} result lines for {n} requests"
    return {
        "seconds": round(seconds, 2),
        "mb": round(size / 1e6, 1),
        "peak_rss_mb": round(sampler.finish() / 1024, 1),
    }


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def start_router(up_port: int, workdir: Path, concurrency: int) -> tuple[Server, int]:
    port = free_port()
    env = dict(
        os.environ,
        OPENROUTER_BASE_URL=f"http://127.0.0.1:{up_port}/api/v1",
        OPENROUTER_API_KEY="sk-bench",
        BIG_MODEL=payloads.UPSTREAM_MODEL,
        MIDDLE_MODEL=payloads.UPSTREAM_MODEL,
        SMALL_MODEL=payloads.UPSTREAM_MODEL,
        PROXY_API_KEY=ROUTER_KEY,
        LOG_LEVEL="WARNING",
        DATABASE_URL=f"sqlite:///{workdir / f'bench-{port}.db'}",
        BATCH_CONCURRENCY=str(concurrency),
        BATCH_POLL_INTERVAL="0.2",
        PYTHONUNBUFFERED="1",
    )
    cmd = [sys.executable, "-m", "anthropic_router", "serve", "--port", str(port)]
    server = Server("router", [*cmd, "--host", "127.0.0.1"], env, SERVER_CORE, workdir / "r.log")
    for _ in range(400):
        if http("GET", f"http://127.0.0.1:{port}/health", timeout=0.5)[0] == 200:
            return server, port
        time.sleep(0.05)
    raise RuntimeError("router did not start: " + server.log_tail())


def scenario(up_port: int, delay_ms: float, concurrency: int, a: argparse.Namespace) -> dict:
    http(
        "POST",
        f"http://127.0.0.1:{up_port}/_bench/config",
        json.dumps({"nonstream_delay_ms": delay_ms}).encode(),
    )
    print(f"scenario: upstream {delay_ms} ms, BATCH_CONCURRENCY={concurrency}", flush=True)
    result: dict = {"upstream_delay_ms": delay_ms, "batch_concurrency": concurrency}
    result["floor"] = floor_rps(up_port, concurrency, a.window)
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as tmp:
        router, port = start_router(up_port, Path(tmp), concurrency)
        try:
            wait_idle(router.pid)
            idle = run_loadgen(interactive_spec(port, router.pid, a.window))
            result["idle_p50_ms"] = idle["lat_ms"]["p50"]
            result["idle_rss_mb"] = round(rss_kb(router.pid) / 1024, 1)
            result["alone"] = run_batch(port, router.pid, a.requests, a.max_seconds)
            print("  alone:", result["alone"], flush=True)
            wait_idle(router.pid)
            beside = interactive_spec(port, router.pid, a.window)
            result["beside"] = run_batch(port, router.pid, a.requests, a.max_seconds, beside)
            print("  beside:", result["beside"], flush=True)
        finally:
            router.stop()
    p50 = result["beside"]["interactive"]["p50_ms"]
    result["interactive_p50_change"] = round(p50 / result["idle_p50_ms"] - 1, 3)
    result["rps_vs_floor"] = round(result["alone"]["rps"] / result["floor"]["rps"], 3)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--window", type=float, default=8.0, help="seconds of each load window")
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--quick", action="store_true", help="1,000 requests, the first scenario")
    ap.add_argument("--only", type=int, default=None, help="run only scenario N (0, 1, 2)")
    a = ap.parse_args()
    if a.quick:
        a.requests, a.window = 1000, 4.0
    up_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        upstream = Server(
            "upstream",
            [sys.executable, str(BENCH / "upstream.py"), "--port", str(up_port)],
            dict(os.environ),
            LOAD_CORE,
            Path(tmp) / "upstream.log",
        )
        try:
            for _ in range(200):
                if http("GET", f"http://127.0.0.1:{up_port}/health", timeout=0.5)[0] == 200:
                    break
                time.sleep(0.05)
            plans = [(0.0, 8)] if a.quick else [(0.0, 8), (50.0, 8), (50.0, 64)]
            if a.only is not None:
                plans = [plans[a.only]]
            runs = [scenario(up_port, delay, conc, a) for delay, conc in plans]
        finally:
            upstream.stop()
    RESULTS.mkdir(exist_ok=True)
    partial = a.quick or a.only is not None
    out = RESULTS / ("batches-partial.json" if partial else "batches.json")
    out.write_text(json.dumps({"requests": a.requests, "scenarios": runs}, indent=2) + "\n")
    print(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
