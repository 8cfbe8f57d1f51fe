"""Prometheus metrics, fed by the exchange record when an exchange ends.

With several worker processes, prometheus-client's multiprocess mode is used: the CLI sets
PROMETHEUS_MULTIPROC_DIR before the workers start and `/metrics` aggregates their files.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

REQUESTS = Counter(
    "anthropic_router_requests_total",
    "Exchanges by route, client model, upstream model, backend and status.",
    ["route", "model", "upstream_model", "backend", "status"],
)
LATENCY = Histogram(
    "anthropic_router_request_duration_seconds",
    "Total time of an exchange.",
    ["route", "stream"],
    buckets=LATENCY_BUCKETS,
)
PHASES = Histogram(
    "anthropic_router_phase_seconds",
    "Time from the start of an exchange to the end of each phase "
    "(read, convert, upstream_headers, first_token, upstream).",
    ["phase"],
    buckets=LATENCY_BUCKETS,
)
TTFT = Histogram(
    "anthropic_router_time_to_first_token_seconds",
    "Time from request start to the first content event sent to the client.",
    ["upstream_model"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "anthropic_router_in_flight_requests",
    "Requests being processed.",
    multiprocess_mode="livesum",
)
UPSTREAM_ERRORS = Counter(
    "anthropic_router_upstream_errors_total",
    "Failed exchanges by backend and Anthropic error type.",
    ["backend", "error_type"],
)
RETRIES = Counter("anthropic_router_retries_total", "Upstream retries.", ["backend"])
FALLBACKS = Counter("anthropic_router_fallbacks_total", "Fallbacks to another target.", ["backend"])
TOKENS = Counter(
    "anthropic_router_tokens_total",
    "Tokens by upstream model and kind (input, output, cache_read, cache_creation).",
    ["upstream_model", "kind"],
)
COST = Counter(
    "anthropic_router_cost_usd_total",
    "Upstream cost in USD, where the upstream reports it (OpenRouter usage.cost).",
    ["upstream_model"],
)
# The response cache (cache/), kept apart by name from Anthropic prompt caching, whose
# tokens are the `cache_read`/`cache_creation` kinds of anthropic_router_tokens_total.
CACHE = Counter(
    "anthropic_router_response_cache_requests_total",
    "Response-cache results per /v1/messages exchange (hit, miss, bypass).",
    ["result"],
)
CACHE_ERRORS = Counter(
    "anthropic_router_response_cache_errors_total",
    "Response-cache store failures (the request went on without the cache).",
    ["store", "operation"],
)
CACHE_BYTES = Gauge(
    "anthropic_router_response_cache_bytes",
    "Bytes held by the in-memory response-cache store.",
    multiprocess_mode="livesum",
)
CACHE_STORED_BYTES = Counter(
    "anthropic_router_response_cache_stored_bytes_total",
    "Bytes of answers written to the response-cache store.",
)
BATCH = Counter("anthropic_router_batch_requests_total", "Batch request results.", ["result"])
INFO = Gauge(
    "anthropic_router_info",
    "Build and configuration: always 1, the labels carry the values.",
    ["version", "backend", "multi_modal", "openrouter_extensions", "openai_advanced"],
    multiprocess_mode="max",
)

# prometheus-client itself reads this once at import; so do we.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

_USAGE_KINDS = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_input_tokens", "cache_read"),
    ("cache_creation_input_tokens", "cache_creation"),
)


def observe(record: dict[str, Any]) -> None:
    """Feed one finished exchange record (see `observability.Exchange.record`)."""
    route = record.get("path", "")
    upstream_model = record.get("upstream_model") or ""
    backend = record.get("backend") or ""
    status = str(record.get("status", 0))
    REQUESTS.labels(route, record.get("client_model") or "", upstream_model, backend, status).inc()
    timings: dict[str, float] = record.get("ms") or {}
    LATENCY.labels(route, str(record.get("stream", False)).lower()).observe(
        timings.get("total", 0.0) / 1000
    )
    for phase, ms in timings.items():
        if phase != "total":
            PHASES.labels(phase).observe(ms / 1000)
    if "first_token" in timings:
        TTFT.labels(upstream_model).observe(timings["first_token"] / 1000)
    if record.get("error_type") and record.get("error_type") != "client_disconnected":
        UPSTREAM_ERRORS.labels(backend, record["error_type"]).inc()
    if record.get("retries"):
        RETRIES.labels(backend).inc(record["retries"])
    if record.get("fallback"):
        FALLBACKS.labels(backend).inc()
    cache = record.get("cache")
    if cache is not None:
        CACHE.labels(cache).inc()
        if cache == "hit":
            return  # no upstream call: its tokens and cost were counted when it was stored
    _observe_usage(upstream_model, record.get("usage") or {}, record.get("cost_usd"))


def _observe_usage(upstream_model: str, usage: dict[str, int], cost: float | None) -> None:
    for key, kind in _USAGE_KINDS:
        if usage.get(key):
            TOKENS.labels(upstream_model, kind).inc(usage[key])
    if cost:
        COST.labels(upstream_model).inc(cost)


def set_info(version: str, backend: str, toggles: dict[str, bool]) -> None:
    INFO.labels(
        version,
        backend,
        str(toggles.get("multi_modal", False)).lower(),
        str(toggles.get("openrouter_extensions", False)).lower(),
        str(toggles.get("openai_advanced", False)).lower(),
    ).set(1)


def exposition() -> tuple[bytes, str]:
    """The text format for `GET /metrics`, aggregated across workers when there are several."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
