"""Two benchmark set-ups beside run.py's: LiteLLM's published gateway benchmark, and a TLS
upstream.

    python3 bench/gateway.py                 # both, router and direct (the floor)
    python3 bench/gateway.py --litellm       # also LiteLLM (bench/.venv-litellm), slow
    python3 bench/gateway.py --only tls      # or: --only gateway

*Gateway* reproduces the set-up of BerriAI/ai-gateway-bench (a deterministic upstream with a
fixed latency, a persistent keep-alive client, concurrency 1, 4, 16 and 64; p99 added
latency and throughput against calling the upstream directly) with run.py's upstream
(`latency_ms`, 20 ms: their direct arm's 2,856 req/s at c=64 implies about 22 ms) and load
client. The published figures of Bifrost, LiteLLM-Rust, LiteLLM-Python and Portkey were
measured on their hardware with their Rust mock and driver: they sit beside ours, they are
not comparable to a microsecond.

*TLS*: the same router against the same upstream served over HTTPS (a self-signed
certificate made here with `openssl`, trusted by the router through OpenSSL's standard
`SSL_CERT_FILE`, which aiohttp's default context reads), against plain HTTP, interleaved:
what TLS to the upstream (OpenRouter is HTTPS) costs per request and per relayed chunk.

Results: bench/results/gateway.json, and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab  # bench/ab.py: a router from a source tree, one scenario
import run  # bench/run.py: processes, venv, upstream, load client

LATENCY_MS = 20
LEVELS = (1, 4, 16, 64)
# BerriAI/ai-gateway-bench README and results/latency_vs_concurrency.csv @35ba690a, as
# quoted in /work/shared/reference/field-2026-12.md: PUBLISHED, their hardware, their mock.
PUBLISHED = {
    "p99 added ms, c=1": {
        "litellm-rust": 0.89,
        "litellm-python": 9.79,
        "bifrost": 0.75,
        "portkey": 2.78,
    },
    "p99 added ms, c=16": {
        "litellm-rust": 0.33,
        "litellm-python": 251.3,
        "bifrost": 0.89,
        "portkey": 8.24,
    },
    "p99 added ms, c=64": {"litellm-rust": 40.3, "litellm-python": 546.0, "bifrost": 28.7},
    "req/s, c=64": {"direct": 2856, "litellm-rust": 2722, "litellm-python": 179.8, "bifrost": 2719},
}


def configure(base: str, context: ssl.SSLContext | None = None, **cfg: float) -> None:
    body = json.dumps({"delay_ms": 0, "first_gap_ms": 0, "latency_ms": 0, **cfg}).encode()
    request = urllib.request.Request(f"{base}/_bench/config", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5, context=context) as response:
        assert response.status == 200


def load(port: int, pid: int, stream: bool, concurrency: int, path: str, **extra: object) -> dict:
    target = run.Router()
    spec = {
        "name": f"c{concurrency}",
        "host": "127.0.0.1",
        "port": port,
        "path": path,
        "headers": target.headers(),
        "server_pid": pid,
        "load_pids": [],
        "stream": stream,
        "concurrency": concurrency,
        "body": target.body(stream),
        "ttft_marker": target.marker if stream else None,
        "duration_s": 3.0,
        "warmup_s": 0.5,
        "max_duration_s": 10.0,
        "min_requests": 20,
        "max_requests": 20000,
        **extra,
    }
    r = run.run_loadgen(spec)
    if r.get("failed"):
        raise RuntimeError(f"loadgen failed: {r.get('stderr')}")
    return r


def gateway(up: run.Server, up_port: int, with_litellm: bool) -> dict:
    base = f"http://127.0.0.1:{up_port}"
    out: dict = {"latency_ms": LATENCY_MS, "published": PUBLISHED, "targets": {}}
    configure(base, latency_ms=LATENCY_MS)
    floor = run.Floor()
    direct = {}
    for c in LEVELS:
        r = load(up_port, up.pid, False, c, floor.path, body=floor.body(False))
        direct[c] = {"p50": r["lat_ms"]["p50"], "p99": r["lat_ms"]["p99"], "rps": r["rps"]}
        run.log(f"gateway direct c={c}: {direct[c]}")
    out["targets"]["direct"] = direct
    servers: list[tuple[str, run.Server, int]] = []
    router, port = ab.start_router(run.ROOT, up_port, {})
    servers.append(("router", router, port))
    if with_litellm:
        lite = run.LiteLLM()
        lport = run.free_port()
        srv = lite.start(up_port, lport, run.RAW / "logs" / "gateway-litellm.log")
        st = run.measure_startup(lite, srv, lport, 180.0)
        if st.get("failed"):
            srv.stop()
        else:
            servers.append(("litellm", srv, lport))
    try:
        for name, srv, port in servers:
            rows = {}
            for c in LEVELS:
                r = load(port, srv.pid, False, c, "/v1/messages")
                rows[c] = {
                    "p50": r["lat_ms"]["p50"],
                    "p99": r["lat_ms"]["p99"],
                    "rps": r["rps"],
                    "cpu_ms": r.get("server_cpu_ms_per_req_window"),
                    "p50_added": round(r["lat_ms"]["p50"] - direct[c]["p50"], 3),
                    "p99_added": round(r["lat_ms"]["p99"] - direct[c]["p99"], 3),
                    "errors": r.get("errors"),
                }
                run.log(f"gateway {name} c={c}: {rows[c]}")
            out["targets"][name] = rows
    finally:
        for _, srv, _ in servers:
            srv.stop()
        configure(base)
    return out


def make_cert(where: Path) -> tuple[Path, Path]:
    where.mkdir(parents=True, exist_ok=True)
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls(up_port: int, reps: int) -> dict:
    cert, key = make_cert(run.RAW / "tls")
    tport = run.free_port()
    tup = run.Server(
        "upstream-tls",
        [
            *(str(run._venv_python(run.VENV)), str(run.BENCH / "upstream.py")),
            *("--port", str(tport), "--tls-cert", str(cert), "--tls-key", str(key)),
        ],
        dict(os.environ),
        run.LOAD_CORE,
        run.RAW / "logs" / "upstream-tls.log",
    )
    context = ssl.create_default_context(cafile=str(cert))
    tbase = f"https://127.0.0.1:{tport}"
    for _ in range(400):
        try:
            configure(tbase, context)
            break
        except OSError:
            time.sleep(0.02)
    sides = {
        "http": {},
        "https": {
            "OPENROUTER_BASE_URL": f"{tbase}/api/v1",
            "SSL_CERT_FILE": str(cert),
        },
    }
    cases = {"ns_c16": (False, 16, 0), "st_c64": (True, 64, 0), "paced_c200": (True, 200, 20)}
    results: dict = {side: {case: [] for case in cases} for side in sides}
    try:
        for rep in range(reps):
            for side in ("http", "https") if rep % 2 == 0 else ("https", "http"):
                router, port = ab.start_router(run.ROOT, up_port, sides[side])
                try:
                    for case, (stream, c, delay) in cases.items():
                        for base, ctx in ((f"http://127.0.0.1:{up_port}", None), (tbase, context)):
                            configure(base, ctx, delay_ms=delay)
                        extra = {"stagger_s": 1.0, "warmup_s": 1.2} if delay else {}
                        r = load(port, router.pid, stream, c, "/v1/messages", **extra)
                        if r.get("errors"):
                            raise RuntimeError(f"{side} {case}: {r.get('error_samples')}")
                        ms = r.get("server_cpu_ms_per_req_window")
                        results[side][case].append(ms)
                        run.log(f"tls rep {rep + 1} {side} {case}: {ms} ms CPU per request")
                finally:
                    router.stop()
        with urllib.request.urlopen(f"{tbase}/_bench/stats", timeout=5, context=context) as r:
            stats = json.loads(r.read())
        served = stats["nonstream"] + stats["stream"]
        if not served:
            raise RuntimeError("the HTTPS upstream served nothing: the router did not use it")
    finally:
        for base, ctx in ((f"http://127.0.0.1:{up_port}", None), (tbase, context)):
            configure(base, ctx)
        tup.stop()
    summary = {
        case: {side: statistics.median(results[side][case]) for side in sides} for case in cases
    }
    return {"cpu_ms_per_request": results, "median": summary, "https_upstream_served": served}


def markdown(result: dict) -> str:
    lines = []
    if "gateway" in result:
        g = result["gateway"]
        lines += [
            f"Gateway set-up (upstream latency {g['latency_ms']} ms, non-streaming, persistent "
            "keep-alive client):",
            "",
            "| Target | "
            + " | ".join(f"c={c} p99 added (p50 added), ms" for c in LEVELS)
            + " | req/s c=64 |",
            "|---|" + "---|" * (len(LEVELS) + 1),
        ]
        for name, rows in g["targets"].items():
            if name == "direct":
                cells = [f"p99 {rows[c]['p99']} (p50 {rows[c]['p50']})" for c in LEVELS]
            else:
                cells = [f"{rows[c]['p99_added']} ({rows[c]['p50_added']})" for c in LEVELS]
            lines.append(f"| {name} (this run) | " + " | ".join(cells) + f" | {rows[64]['rps']} |")
        for who in ("bifrost", "litellm-rust", "portkey", "litellm-python"):
            pub = g["published"]
            cells = [str(pub.get(f"p99 added ms, c={c}", {}).get(who, "–")) for c in LEVELS]
            rps = pub["req/s, c=64"].get(who, "–")
            row = f"| {who} (published, their hardware) | " + " | ".join(cells)
            lines.append(row + f" | {rps} |")
        lines.append("")
    if "tls" in result:
        lines += [
            "TLS upstream vs plain HTTP, router CPU per request (median of the repetitions):",
            "",
            "| Scenario | HTTP upstream (ms) | HTTPS upstream (ms) | HTTPS / HTTP |",
            "|---|---|---|---|",
        ]
        for case, m in result["tls"]["median"].items():
            lines.append(
                f"| {case} | {m['http']:.3f} | {m['https']:.3f} | {m['https'] / m['http']:.2f}× |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("gateway", "tls"))
    ap.add_argument("--litellm", action="store_true", help="also LiteLLM in the gateway set-up")
    ap.add_argument("--reps", type=int, default=2, help="TLS: interleaved repetitions")
    a = ap.parse_args()
    if Path(sys.prefix).resolve() != run.VENV.resolve():
        run.ensure_bench_venv()
        py = str(run._venv_python(run.VENV))
        os.execv(py, [py, str(Path(__file__).resolve()), *sys.argv[1:]])
    run._raise_nofile()
    up_port = run.free_port()
    up = run.start_upstream(up_port, "gateway")
    if up is None:
        return 1
    result: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        if a.only in (None, "gateway"):
            result["gateway"] = gateway(up, up_port, a.litellm)
        if a.only in (None, "tls"):
            result["tls"] = tls(up_port, a.reps)
    finally:
        up.stop()
    (run.RESULTS / "gateway.json").write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
