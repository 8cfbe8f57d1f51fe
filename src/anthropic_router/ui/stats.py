"""Live figures of this process for the status page: 10-second buckets over the last
30 minutes (requests, errors by type, latency and TTFT histograms, per-target errors,
cache hits) and the last exchanges' metadata (never content).

Feeding one exchange costs a few dictionary updates; latencies go into log-spaced
histogram bins (25 % wide), so percentiles need no stored samples and memory is fixed.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from anthropic_router.observability import Exchange

BUCKET = 10.0
KEEP = 180  # buckets: 30 minutes
RECENT = 50
_BIN_RATIO = math.log(1.25)
_BINS = 64  # 1 ms .. ~1.6 h


@dataclass(slots=True)
class Bucket:
    start: float
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: list[int] = field(default_factory=lambda: [0] * _BINS)
    ttft: list[int] = field(default_factory=lambda: [0] * _BINS)
    targets: dict[str, list[int]] = field(default_factory=dict)  # target -> [requests, errors]
    cache_lookups: int = 0
    cache_hits: int = 0


def _bin(ms: float) -> int:
    return 0 if ms <= 1.0 else min(_BINS - 1, int(math.log(ms) / _BIN_RATIO) + 1)


def percentile(histogram: list[int], fraction: float) -> float | None:
    """The upper edge (ms) of the bin holding the `fraction` quantile; None when empty."""
    total = sum(histogram)
    if not total:
        return None
    rank, seen = fraction * total, 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return round(1.25**index, 1)
    return round(1.25 ** (_BINS - 1), 1)


class Live:
    """The status page's in-memory figures (per process)."""

    def __init__(self) -> None:
        self.buckets: deque[Bucket] = deque(maxlen=KEEP)
        self.recent: deque[tuple[float, Exchange, str | None, int | None]] = deque(maxlen=RECENT)
        self.started = time.time()

    def observe(self, record: Exchange, key_name: str | None, cache_hit: int | None) -> None:
        now = time.time()
        bucket = self._bucket(now)
        bucket.requests += 1
        error = record.error_type
        if error:
            bucket.errors[error] = bucket.errors.get(error, 0) + 1
        total = record.timings.get("total")
        if total is not None:
            bucket.latency[_bin(total)] += 1
        first = record.timings.get("first_token")
        if first is not None:
            bucket.ttft[_bin(first)] += 1
        if record.backend:
            target = f"{record.backend}:{record.upstream_model}"
            counts = bucket.targets.setdefault(target, [0, 0])
            counts[0] += 1
            counts[1] += 1 if record.status >= 500 or record.status == 429 else 0
        if cache_hit is not None:
            bucket.cache_lookups += 1
            bucket.cache_hits += cache_hit
        # The record itself: its row is built only when the page asks (snapshot).
        self.recent.append((now, record, key_name, cache_hit))

    def _bucket(self, now: float) -> Bucket:
        start = now - now % BUCKET
        if not self.buckets or self.buckets[-1].start != start:
            self.buckets.append(Bucket(start))
        return self.buckets[-1]

    def snapshot(self, window: float = 300.0) -> dict[str, Any]:
        """The page's JSON: a series over 30 minutes and totals over the last `window` s."""
        now = time.time()
        recent = [b for b in self.buckets if b.start >= now - window]
        latency, ttft = _merge([b.latency for b in recent]), _merge([b.ttft for b in recent])
        errors: dict[str, int] = {}
        targets: dict[str, list[int]] = {}
        for bucket in recent:
            for name, count in bucket.errors.items():
                errors[name] = errors.get(name, 0) + count
            for name, (count, failed) in bucket.targets.items():
                entry = targets.setdefault(name, [0, 0])
                entry[0] += count
                entry[1] += failed
        lookups = sum(b.cache_lookups for b in recent)
        requests = sum(b.requests for b in recent)
        span = max(BUCKET, min(window, now - self.started))
        return {
            "now": round(now, 3),
            "window_s": window,
            "requests": requests,
            "requests_per_s": round(requests / span, 3),
            "errors": errors,
            "latency_ms": {"p50": percentile(latency, 0.5), "p99": percentile(latency, 0.99)},
            "ttft_ms": {"p50": percentile(ttft, 0.5), "p99": percentile(ttft, 0.99)},
            "targets": {
                name: {"requests": n, "errors": e, "error_rate": round(e / n, 4)}
                for name, (n, e) in sorted(targets.items())
            },
            "cache": {
                "lookups": lookups,
                "hits": sum(b.cache_hits for b in recent),
                "hit_rate": round(sum(b.cache_hits for b in recent) / lookups, 4)
                if lookups
                else None,
            },
            "series": [_point(bucket) for bucket in self.buckets],
            "recent": [_recent(*item) for item in reversed(self.recent)],
        }


def _recent(ts: float, record: Exchange, key_name: str | None, cache_hit: int | None) -> Any:
    usage = record.usage or {}
    return {
        "ts": round(ts, 3),
        "request_id": record.request_id,
        "key": key_name or record.client_key_id,
        "model": record.client_model,
        "upstream_model": record.upstream_model,
        "backend": record.backend,
        "status": record.status,
        "error_type": record.error_type,
        "stream": record.stream,
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "latency_ms": record.timings.get("total"),
        "ttft_ms": record.timings.get("first_token"),
        "cache_hit": cache_hit,
    }


def _merge(histograms: list[list[int]]) -> list[int]:
    return [sum(column) for column in zip(*histograms, strict=True)] if histograms else []


def _point(bucket: Bucket) -> list[Any]:
    return [
        bucket.start,
        round(bucket.requests / BUCKET, 3),
        round(sum(bucket.errors.values()) / BUCKET, 3),
        percentile(bucket.latency, 0.5),
        percentile(bucket.latency, 0.99),
        percentile(bucket.ttft, 0.5),
    ]
