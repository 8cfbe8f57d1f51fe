"""A/B of the router's CPU cost between two versions of its source, interleaved.

    python3 bench/ab.py HEAD~1 HEAD                 # default scenarios, 3 repetitions
    python3 bench/ab.py main WORKTREE --reps 5 --scenarios paced_c200,ns_c16

Each side is a git revision (exported with `git archive` into bench/results/raw/ab/) or
`WORKTREE` (this checkout's src/). The router runs from that source (`PYTHONPATH`) on core 0,
the upstream and the load client on core 1, as in run.py. The sides alternate scenario by
scenario, repetition by repetition, so a busy spell of the shared machine hits both alike;
nothing waits for the machine to be quiet. The figure is CPU time (utime+stime of the router
process) per request, which moves far less with other load than latency does; the output
gives every repetition, the median and the spread, so the noise is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py: processes, venv, upstream

SCENARIOS = {
    "ns_c16": {"stream": False, "concurrency": 16, "delay_ms": 0},
    "st_c64": {"stream": True, "concurrency": 64, "delay_ms": 0},
    "paced_c200": {"stream": True, "concurrency": 200, "delay_ms": 20},
}
CHUNKS_PER_STREAM = 53  # message_start .. message_stop of the benchmark's stream, as reads


def export(rev: str) -> Path:
    if rev == "WORKTREE":
        return run.ROOT
    sha = subprocess.run(
        ["git", "-C", str(run.ROOT), "rev-parse", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = run.RAW / "ab" / sha[:12]
    if not (dest / "src").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(run.ROOT), "archive", sha, "src"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def start_router(src: Path, up_port: int, env_extra: dict[str, str]) -> tuple[run.Server, int]:
    port = run.free_port()
    logfile = run.RAW / "logs" / f"ab-{src.name}-{port}.log"
    env = dict(
        os.environ,
        OPENROUTER_BASE_URL=f"http://127.0.0.1:{up_port}/api/v1",
        OPENROUTER_API_KEY="sk-bench",
        BIG_MODEL=run.payloads.UPSTREAM_MODEL,
        SMALL_MODEL=run.payloads.UPSTREAM_MODEL,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(src / "src"),
    )
    env.update(env_extra)
    cmd = [str(run._venv_python(run.VENV)), "-m", "anthropic_router", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    server = run.Server("router", cmd, env, run.SERVER_CORE, logfile)
    for _ in range(600):
        if run.http("GET", f"http://127.0.0.1:{port}/health", timeout=0.5)[0] == 200:
            return server, port
        time.sleep(0.02)
    raise RuntimeError("router did not start: " + server.log_tail())


def measure(name: str, server: run.Server, port: int, up_port: int) -> dict:
    sc = SCENARIOS[name]
    target = run.Router()
    spec = {
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "path": target.path,
        "headers": target.headers(),
        "server_pid": server.pid,
        "load_pids": [],
        "stream": sc["stream"],
        "concurrency": sc["concurrency"],
        "body": target.body(sc["stream"]),
        "ttft_marker": target.marker if sc["stream"] else None,
        "duration_s": 3.0 if sc["delay_ms"] else 2.0,
        "warmup_s": 1.2 if sc["delay_ms"] else 0.3,
        "max_duration_s": 10.0,
        "min_requests": 20,
        "max_requests": 10**6 if sc["delay_ms"] else 6000,
        "stagger_s": 1.0 if sc["delay_ms"] else 0.0,
        "request_timeout_s": 60.0,
    }
    run.set_delay(up_port, sc["delay_ms"])
    try:
        r = run.run_loadgen(spec)
    finally:
        run.set_delay(up_port, 0)
    if r.get("failed"):
        raise RuntimeError(f"{name}: loadgen failed: {r.get('stderr')}")
    ms = r.get("server_cpu_ms_per_req_window") or r.get("server_cpu_ms_per_req")
    out = {"cpu_ms": ms, "rate": r.get("rps")}
    if sc["stream"]:
        out["us_per_chunk"] = ms * 1000 / CHUNKS_PER_STREAM if ms else None
        out["ttft_p99"] = (r.get("ttft_ms") or {}).get("p99")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scenarios", default="ns_c16,st_c64,paced_c200")
    ap.add_argument("--env-a", default="", help="KEY=VALUE,... for side A only")
    ap.add_argument("--env-b", default="", help="KEY=VALUE,... for side B only")
    a = ap.parse_args()
    if Path(sys.prefix).resolve() != run.VENV.resolve():
        run.ensure_bench_venv()
        py = str(run._venv_python(run.VENV))
        os.execv(py, [py, str(Path(__file__).resolve()), *sys.argv[1:]])
    run._raise_nofile()
    names = a.scenarios.split(",")
    sides = {
        "A": (export(a.a), dict(kv.split("=", 1) for kv in a.env_a.split(",") if kv)),
        "B": (export(a.b), dict(kv.split("=", 1) for kv in a.env_b.split(",") if kv)),
    }
    up_port = run.free_port()
    up = run.start_upstream(up_port, "ab")
    if up is None:
        return 1
    results: dict = {s: {n: [] for n in names} for s in sides}
    try:
        for rep in range(a.reps):
            for side in ("A", "B") if rep % 2 == 0 else ("B", "A"):
                src, env = sides[side]
                server, port = start_router(src, up_port, env)
                try:
                    for n in names:
                        m = measure(n, server, port, up_port)
                        results[side][n].append(m)
                        run.log(f"rep {rep + 1} {side} {n}: {m}")
                finally:
                    server.stop()
    finally:
        up.stop()
    print(f"\nA = {a.a} {sides['A'][1] or ''}   B = {a.b} {sides['B'][1] or ''}")
    summary = {}
    for n in names:
        line = [n]
        for side in sides:
            vals = [m["cpu_ms"] for m in results[side][n] if m["cpu_ms"]]
            med = statistics.median(vals)
            spread = (max(vals) - min(vals)) / med if med else 0
            summary[f"{side}/{n}"] = {"median_cpu_ms": med, "all": vals}
            line.append(f"{side} {med * 1000:.0f} us (spread {spread:.0%}; {vals})")
        a_med = summary[f"A/{n}"]["median_cpu_ms"]
        b_med = summary[f"B/{n}"]["median_cpu_ms"]
        line.append(f"B/A {b_med / a_med:.2f}")
        print("  ".join(line))
    (run.RAW / "ab-last.json").write_text(json.dumps({"args": vars(a), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
