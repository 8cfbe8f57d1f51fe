"""CPU cost of one exchange's metric updates, single-process vs multiprocess mode.

    PYTHONPATH=src python bench/metrics_cost.py

Each mode runs in a fresh interpreter (prometheus-client reads PROMETHEUS_MULTIPROC_DIR once,
at import): `metrics.observe` of a typical finished record plus the in-flight gauge's
inc/dec, as `App._http` does per request; and one `/metrics` exposition.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, timeit
from anthropic_router import metrics

metrics.set_known_models({"claude-haiku-4-5", "anthropic/claude-haiku-4.5"})
RECORD = {
    "path": "/v1/messages", "status": 200, "client_model": "claude-haiku-4-5",
    "route": "haiku -> SMALL_MODEL", "upstream_model": "anthropic/claude-haiku-4.5",
    "backend": "openrouter", "stream": True,
    "ms": {"read": 0.1, "convert": 0.2, "upstream_headers": 1.0, "first_token": 1.2, "total": 5.0},
    "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 0,
              "cache_creation_input_tokens": 0},
    "cost_usd": 0.0001,
}

def one():
    metrics.IN_FLIGHT.inc()
    metrics.IN_FLIGHT.dec()
    metrics.observe(RECORD)

n = int(sys.argv[1])
one()
best = min(timeit.repeat(one, number=n, repeat=5)) / n * 1e6
result = {"observe_us": round(best, 2)}
files = getattr(metrics, "metrics_files", None)
if metrics.MULTIPROCESS and files is not None:  # the periodic flush: after an exchange, idle
    def changed():
        one()
        files.flush()
    cost = min(timeit.repeat(changed, number=200, repeat=5)) / 200 * 1e6
    result["flush_us"] = round(cost - best, 1)
    idle = min(timeit.repeat(files.flush, number=200, repeat=5)) / 200 * 1e6
    result["idle_flush_us"] = round(idle, 1)
scrape = min(timeit.repeat(metrics.exposition, number=20, repeat=3)) / 20 * 1e6
result["exposition_us"] = round(scrape, 1)
print(json.dumps(result))
"""


def run(multiprocess: bool, n: int) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory() as tmp:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = tmp
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n)], env=env, capture_output=True, text=True
        )
    if out.returncode:
        raise SystemExit(out.stderr)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    for name, multiprocess in (("single-process", False), ("multiprocess", True)):
        result = run(multiprocess, n)
        flush = ""
        if "flush_us" in result:
            flush = f"   flush {result['flush_us']:.1f} µs (idle {result['idle_flush_us']:.1f})"
        print(
            f"{name:15} observe+in_flight {result['observe_us']:6.2f} µs/exchange"
            f"   /metrics {result['exposition_us']:7.0f} µs{flush}"
        )


if __name__ == "__main__":
    main()
