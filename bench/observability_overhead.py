"""Cost of the per-exchange log line and metrics, in microseconds per exchange.

python bench/observability_overhead.py
"""

from __future__ import annotations

import io
import logging
import time

from anthropic_router.observability import Exchange, JsonFormatter, log_exchange


def _one(metrics: bool) -> None:
    exchange = Exchange("req_x", "POST", "/v1/messages")
    exchange.client_model = "claude-opus-4-8"
    exchange.upstream_model = "anthropic/claude-sonnet-4.5"
    exchange.backend, exchange.status = "openrouter", 200
    exchange.usage = {"input_tokens": 100, "output_tokens": 20}
    for phase in ("read", "convert", "upstream"):
        exchange.mark(phase)
    log_exchange(exchange, metrics)


def _per_call(metrics: bool, n: int = 20_000) -> float:
    for _ in range(2_000):
        _one(metrics)
    start = time.perf_counter()
    for _ in range(n):
        _one(metrics)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("INFO")
    print(f"log line only:        {_per_call(False):6.1f} us/exchange")
    print(f"log line and metrics: {_per_call(True):6.1f} us/exchange")
    root.setLevel("WARNING")
    print(f"metrics, log off:     {_per_call(True):6.1f} us/exchange")


if __name__ == "__main__":
    main()
