"""Prometheus metrics, fed by the exchange record when an exchange ends.

With several worker processes the CLI sets PROMETHEUS_MULTIPROC_DIR before the workers
start; each worker counts in process and flushes its values to its files there about every
second (metrics_files.py), and `/metrics` aggregates the files.
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

from anthropic_router import metrics_files

# prometheus-client itself reads this once at import; so do we. Before any metric exists:
# the metrics below are built from the value class metrics_files installs.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
MULTIPROCESS = bool(MULTIPROCESS_DIR)
if MULTIPROCESS:
    metrics_files.install(MULTIPROCESS_DIR)

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
ESTIMATED_TOKENS = Counter(
    "anthropic_router_estimated_tokens_total",
    "The part of anthropic_router_tokens_total the router counted itself because the upstream"
    " reported no usage (local servers), by upstream model and kind (input, output).",
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
CACHE_WAITING = Gauge(
    "anthropic_router_response_cache_waiting",
    "Requests waiting for an identical one already with the upstream (single flight).",
    multiprocess_mode="livesum",
)
BATCH = Counter(
    "anthropic_router_batch_requests_total",
    "Batch requests by result (succeeded, errored, retried) as this instance wrote them.",
    ["result"],
)
BATCHES = Gauge(
    "anthropic_router_batches",
    "Message batches in the store by processing status (in_progress, canceling, ended).",
    ["status"],
    multiprocess_mode="max",
)
BATCH_QUEUE = Gauge(
    "anthropic_router_batch_queue_depth",
    "Batch requests not yet finished, across all instances sharing the store.",
    multiprocess_mode="max",
)
SERVER_TOOL_CALLS = Counter(
    "anthropic_router_server_tool_calls_total",
    "Server tool calls run by the router, by tool and outcome (ok or the error code).",
    ["tool", "outcome"],
)
SERVER_TOOL_LATENCY = Histogram(
    "anthropic_router_server_tool_duration_seconds",
    "Time of one server tool call run by the router.",
    ["tool"],
    buckets=LATENCY_BUCKETS,
)
INFO = Gauge(
    "anthropic_router_info",
    "Build and configuration: always 1, the labels carry the values.",
    ["version", "backend", "multi_modal", "openrouter_extensions", "openai_advanced"],
    multiprocess_mode="max",
)

_USAGE_KINDS = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_input_tokens", "cache_read"),
    ("cache_creation_input_tokens", "cache_creation"),
)


# Label values come from fixed sets, never from what a client sent: a client choosing paths
# or model names must not be able to grow the number of series (memory) without bound.
ROUTE_TEMPLATES = (
    ("/v1/messages/count_tokens", "/v1/messages/count_tokens"),
    ("/v1/messages/batches/*/results", "/v1/messages/batches/{id}/results"),
    ("/v1/messages/batches/*/cancel", "/v1/messages/batches/{id}/cancel"),
    ("/v1/messages/batches/*", "/v1/messages/batches/{id}"),
    ("/v1/messages/batches", "/v1/messages/batches"),
    ("/v1/messages", "/v1/messages"),
    ("/v1/models/*", "/v1/models/{id}"),
    ("/v1/models", "/v1/models"),
    ("/v1/organizations/usage_report/messages", "/v1/organizations/usage_report/messages"),
    ("/v1/organizations/cost_report", "/v1/organizations/cost_report"),
)
OTHER = "other"
ERROR_TYPES = frozenset(
    {
        "invalid_request_error", "authentication_error", "billing_error", "permission_error",
        "not_found_error", "request_too_large", "rate_limit_error", "api_error",
        "timeout_error", "overloaded_error",
    }
)  # fmt: skip
_known_models: frozenset[str] = frozenset()
_known_statuses = frozenset(
    {"0", "200", "400", "401", "402", "403", "404", "405", "408", "409", "413", "429", "499"}
    | {"500", "502", "503", "504", "529"}
)
_TIERS = {"haiku": "tier:small", "sonnet": "tier:middle", "default": "tier:big"}


def set_known_models(names: set[str]) -> None:
    """The configured model names (routes, tiers, targets): the only model label values."""
    global _known_models
    _known_models = frozenset(names)


def route_label(path: str) -> str:
    """The route template a path matches (`/prefix/v1/messages` counts as `/v1/messages`)."""
    start = path.find("/v1/")
    path = path[start:].rstrip("/") if start >= 0 else path
    for pattern, template in ROUTE_TEMPLATES:
        if path == pattern or ("*" in pattern and _matches(path, pattern)):
            return template
    return OTHER


def _matches(path: str, pattern: str) -> bool:
    parts, expected = path.split("/"), pattern.split("/")
    return len(parts) == len(expected) and all(
        (e == "*" and bool(p)) or p == e for p, e in zip(parts, expected, strict=True)
    )


def model_label(name: str | None, route_reason: str | None = None) -> str:
    if not name:
        return ""
    if name in _known_models:
        return name
    reason = route_reason or ""
    if reason.startswith("model map ("):
        return reason[len("model map (") : -1] or OTHER  # the routing file's own pattern
    return _TIERS.get(reason.split(" ", 1)[0], OTHER)


_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, cached: prometheus_client validates and looks the labels up
    on every call (about 2 µs each, a dozen per exchange). The label values are bounded
    (known models, statuses, "other"), and so is this cache."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def observe(record: dict[str, Any]) -> None:
    """Feed one finished exchange record (see `observability.Exchange.record`)."""
    route = route_label(record.get("path", ""))
    upstream_model = _upstream_label(record.get("upstream_model"))
    backend = record.get("backend") or ""
    status = str(record.get("status", 0))
    status = status if status in _known_statuses else OTHER
    client_model = model_label(record.get("client_model"), record.get("route"))
    child(REQUESTS, route, client_model, upstream_model, backend, status).inc()
    timings: dict[str, float] = record.get("ms") or {}
    child(LATENCY, route, str(record.get("stream", False)).lower()).observe(
        timings.get("total", 0.0) / 1000
    )
    for phase, ms in timings.items():
        if phase != "total":
            child(PHASES, phase).observe(ms / 1000)
    if "first_token" in timings:
        child(TTFT, upstream_model).observe(timings["first_token"] / 1000)
    if record.get("error_type") and record.get("error_type") != "client_disconnected":
        error_type = record["error_type"]
        child(UPSTREAM_ERRORS, backend, error_type if error_type in ERROR_TYPES else OTHER).inc()
    if record.get("retries"):
        child(RETRIES, backend).inc(record["retries"])
    if record.get("fallback"):
        child(FALLBACKS, backend).inc()
    cache = record.get("cache")
    if cache is not None:
        child(CACHE, cache).inc()
        if cache == "hit":
            return  # no upstream call: its tokens and cost were counted when it was stored
    _observe_usage(
        upstream_model,
        record.get("usage") or {},
        record.get("cost_usd"),
        bool(record.get("usage_estimated")),
    )
    for tool_call in record.get("server_tools") or ():
        SERVER_TOOL_CALLS.labels(tool_call["tool"], tool_call["outcome"]).inc()
        SERVER_TOOL_LATENCY.labels(tool_call["tool"]).observe(tool_call["ms"] / 1000)


def _upstream_label(name: str | None) -> str:
    if not name:
        return ""
    return name if name in _known_models else OTHER


def _observe_usage(
    upstream_model: str, usage: dict[str, int], cost: float | None, estimated: bool = False
) -> None:
    for key, kind in _USAGE_KINDS:
        if usage.get(key):
            child(TOKENS, upstream_model, kind).inc(usage[key])
            if estimated:
                child(ESTIMATED_TOKENS, upstream_model, kind).inc(usage[key])
    if cost:
        child(COST, upstream_model).inc(cost)


def set_batch_gauges(by_status: dict[str, int], depth: int) -> None:
    for status in ("in_progress", "canceling", "ended"):
        BATCHES.labels(status).set(by_status.get(status, 0))
    BATCH_QUEUE.set(depth)


def set_info(version: str, backend: str, toggles: dict[str, bool]) -> None:
    INFO.labels(
        version,
        backend,
        str(toggles.get("multi_modal", False)).lower(),
        str(toggles.get("openrouter_extensions", False)).lower(),
        str(toggles.get("openai_advanced", False)).lower(),
    ).set(1)


def flush() -> None:
    """Write this worker's counts to its metric files now (at shutdown: a worker re-raises
    SIGTERM when it is done and dies of it, so atexit does not run)."""
    if MULTIPROCESS:
        metrics_files.flush()


def exposition() -> tuple[bytes, str]:
    """The text format for `GET /metrics`, aggregated across workers when there are several."""
    if MULTIPROCESS:
        metrics_files.flush()  # this worker's own counts are exact; the others' up to 1 s old
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
