"""Per-key limits: allowed models, spend budget, requests and tokens per minute.

Rates are sliding windows approximated the way Cloudflare's limiter does: two fixed
one-minute counters, the previous one weighted by how much of it still overlaps the last
60 s. That is two integers per key and limit, the same arithmetic in memory and in Redis,
and it never lets more than the limit through in any 60 s (within the approximation of an
even spread over the previous minute).

Without REDIS_URL the counters are per process (N instances allow N times the limit); with
it, one Lua script per request checks both limits and counts the request atomically in the
counters every instance shares. If Redis is unreachable, each process falls back to its own
counters until it is back (`rediskv` warns once per outage).

Tokens are counted after the exchange (input + output, as reported by the upstream), so a
key is refused once the last minute's tokens reached its limit; one request in flight can
overshoot it, as with Anthropic's own token limits.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from anthropic_router.errors import ApiError
from anthropic_router.gateway.keys import KeyRecord, iso_time
from anthropic_router.store import StoreError

log = logging.getLogger("anthropic_router.limits")

WINDOW = 60.0
Header = tuple[bytes, bytes]

# KEYS: requests now, requests before, tokens now, tokens before.
# ARGV: fraction of the current window elapsed, request limit, token limit (0: none), ttl,
# 1 to count this request (0: check only).
# Returns {allowed, requests now, requests before, tokens now, tokens before}.
ADMIT_SCRIPT = """
local rc = tonumber(redis.call('GET', KEYS[1]) or '0')
local rp = tonumber(redis.call('GET', KEYS[2]) or '0')
local tc = tonumber(redis.call('GET', KEYS[3]) or '0')
local tp = tonumber(redis.call('GET', KEYS[4]) or '0')
local keep = 1 - tonumber(ARGV[1])
local rlimit = tonumber(ARGV[2])
local tlimit = tonumber(ARGV[3])
if (rlimit > 0 and rp * keep + rc + 1 > rlimit) or (tlimit > 0 and tp * keep + tc >= tlimit) then
  return {0, rc, rp, tc, tp}
end
if ARGV[5] == '1' then
  rc = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return {1, rc, rp, tc, tp}
"""
ADD_SCRIPT = """
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


@dataclass(slots=True)
class Counts:
    """One limit's two fixed windows: `current` is window number `index`."""

    index: int = 0
    current: int = 0
    previous: int = 0

    def roll(self, index: int) -> None:
        if index != self.index:
            self.previous = self.current if index == self.index + 1 else 0
            self.current = 0
            self.index = index


def estimate(current: int, previous: int, elapsed: float) -> float:
    """Events in the last WINDOW seconds, `elapsed` the fraction of the current window."""
    return previous * (1.0 - elapsed) + current


def seconds_until_below(current: int, previous: int, elapsed: float, limit: float) -> float:
    """How long until the estimate drops below `limit` (0 when it already is)."""
    if estimate(current, previous, elapsed) < limit:
        return 0.0
    if current >= limit:  # only the next window's decay of `current` gets it under
        return (1.0 - elapsed) * WINDOW + WINDOW * (1.0 - limit / current)
    return max(0.0, WINDOW * (1.0 - (limit - current) / previous) - elapsed * WINDOW)


def replenished_at(index: int, current: int, previous: int, now: float) -> float:
    """When the window holds nothing any more (Anthropic's `-reset`: fully replenished)."""
    if current:
        return (index + 2) * WINDOW
    if previous:
        return (index + 1) * WINDOW
    return now


def model_allowed(key: KeyRecord, names: tuple[str, ...]) -> bool:
    """Whether any of `names` (the client's model, the upstream model) matches a glob."""
    if key.models is None:
        return True
    return any(fnmatch.fnmatchcase(name, glob) for glob in key.models for name in names if name)


def period_of(period: str, now: float) -> tuple[str, float]:
    """The budget period's id ("2026-12-01", "2026-12") and when the next one starts (UTC)."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    if period == "day":
        start = today + dt.timedelta(days=1)
        return today.isoformat(), dt.datetime.combine(start, dt.time(), dt.UTC).timestamp()
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    following = dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp()
    return f"{today.year:04d}-{today.month:02d}", following


class Spend:
    """Spend per key and period: what the store's `key_spend` said at the last refresh (all
    instances' flushed ledger rows) plus what this process's ledger writer added since."""

    def __init__(self, store: Any, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._known: dict[tuple[str, str], list[float]] = {}  # -> [fetched, from store, added]

    async def spent(self, key_id: str, period: str) -> float:
        entry = self._known.get((key_id, period))
        now = time.monotonic()
        if entry is None or now - entry[0] >= self.ttl:
            try:
                row = await self.store.fetchone(
                    "SELECT spent_usd FROM key_spend WHERE key_id = ? AND period = ?",
                    (key_id, period),
                )
            except StoreError as error:
                # Unknown spend must not stop every request: the last figure stands (or none).
                log.warning("budget lookup failed", extra={"fields": {"error": str(error)}})
                return entry[1] + entry[2] if entry is not None else 0.0
            entry = [now, float(row["spent_usd"]) if row else 0.0, 0.0]
            self._known[(key_id, period)] = entry
        return entry[1] + entry[2]

    def add(self, key_id: str, period: str, cost: float) -> None:
        entry = self._known.get((key_id, period))
        if entry is not None:
            entry[2] += cost


class Limits:
    """The checks before an exchange (`admit`) and the accounting after it (`add_tokens`)."""

    def __init__(self, spend: Spend, redis: Any = None) -> None:
        self.spend = spend
        self.redis = redis
        self.prefix = "rl:"  # RedisKV adds REDIS_KEY_PREFIX
        self._requests: dict[str, Counts] = {}
        self._tokens: dict[str, Counts] = {}

    async def admit(
        self, key: KeyRecord, names: tuple[str, ...], count: bool = True
    ) -> list[Header]:
        """Raise the Anthropic error that refuses the request, or return the rate-limit
        headers of the response. Order: model (403), budget (402), rates (429). With
        `count` False the rates are checked but the request is not counted."""
        if not model_allowed(key, names):
            globs = ", ".join(key.models or ())
            raise ApiError(
                "permission_error",
                f"this API key may not use model {names[0]!r} (allowed: {globs})",
            )
        if key.budget_usd is not None and key.budget_period is not None:
            await self._check_budget(key)
        if not key.limited:
            return []
        now = time.time()
        index, elapsed = int(now // WINDOW), (now % WINDOW) / WINDOW
        allowed, requests, tokens = await self._count(key, index, elapsed, count)
        headers = _headers(key, requests, tokens, elapsed, now)
        if not allowed:
            # One more request needs room for itself; tokens need to be under the limit.
            wait = max(
                _wait(requests, elapsed, key.rpm - 1 + 1e-9 if key.rpm else None),
                _wait(tokens, elapsed, key.tpm),
            )
            which = _exceeded(key, requests, tokens, elapsed)
            raise RateLimited(f"rate limit exceeded: {which}", math.ceil(wait) or 1, headers)
        return headers

    async def _check_budget(self, key: KeyRecord) -> None:
        assert key.budget_usd is not None and key.budget_period is not None
        period, resets = period_of(key.budget_period, time.time())
        spent = await self.spend.spent(key.id, period)
        if spent >= key.budget_usd:
            raise ApiError(
                "billing_error",
                f"this API key's budget of ${key.budget_usd:.2f} per {key.budget_period} is "
                f"spent (${spent:.4f}); it resets at {iso_time(resets)}",
                details={"budget_resets_at": iso_time(resets)},
            )

    async def _count(
        self, key: KeyRecord, index: int, elapsed: float, count: bool
    ) -> tuple[bool, Counts, Counts]:
        if self.redis is not None:
            shared = await self._count_shared(key, index, elapsed, count)
            if shared is not None:
                return shared
        requests = self._requests.setdefault(key.id, Counts(index))
        tokens = self._tokens.setdefault(key.id, Counts(index))
        requests.roll(index)
        tokens.roll(index)
        if _over(key, requests, tokens, elapsed):
            return False, requests, tokens
        requests.current += int(count)
        return True, requests, tokens

    async def _count_shared(
        self, key: KeyRecord, index: int, elapsed: float, count: bool
    ) -> tuple[bool, Counts, Counts] | None:
        from anthropic_router.rediskv import KVUnavailable

        base = f"{self.prefix}{key.id}:"
        names = [f"{base}{kind}:{i}" for kind in "rt" for i in (index, index - 1)]
        args = [repr(elapsed), key.rpm or 0, key.tpm or 0, int(2 * WINDOW) + 1, int(count)]
        try:
            result = await self.redis.eval(ADMIT_SCRIPT, names, args)
        except KVUnavailable:
            return None
        allowed, rc, rp, tc, tp = (int(value) for value in result)
        return bool(allowed), Counts(index, rc, rp), Counts(index, tc, tp)

    async def add_tokens(self, key: KeyRecord, tokens: int) -> None:
        """Count an exchange's tokens in its key's current window."""
        if not key.tpm or tokens <= 0:
            return
        index = int(time.time() // WINDOW)
        if self.redis is not None:
            from anthropic_router.rediskv import KVUnavailable

            name = f"{self.prefix}{key.id}:t:{index}"
            try:
                await self.redis.eval(ADD_SCRIPT, [name], [tokens, int(2 * WINDOW) + 1])
                return
            except KVUnavailable:
                pass
        counts = self._tokens.setdefault(key.id, Counts(index))
        counts.roll(index)
        counts.current += tokens


class RateLimited(ApiError):
    """429 with `retry-after` and the `anthropic-ratelimit-*` headers."""

    def __init__(self, message: str, retry_after: int, headers: list[Header]) -> None:
        super().__init__("rate_limit_error", message, retry_after=str(retry_after))
        self.headers = headers


def _over(key: KeyRecord, requests: Counts, tokens: Counts, elapsed: float) -> bool:
    """Whether one more request would pass the request limit, or the tokens reached theirs."""
    if key.rpm and estimate(requests.current, requests.previous, elapsed) + 1 > key.rpm:
        return True
    return bool(key.tpm and estimate(tokens.current, tokens.previous, elapsed) >= key.tpm)


def _wait(counts: Counts, elapsed: float, limit: float | None) -> float:
    if not limit:
        return 0.0
    return seconds_until_below(counts.current, counts.previous, elapsed, limit)


def _exceeded(key: KeyRecord, requests: Counts, tokens: Counts, elapsed: float) -> str:
    if key.rpm and estimate(requests.current, requests.previous, elapsed) + 1 > key.rpm:
        return f"{key.rpm} requests per minute"
    return f"{key.tpm} tokens per minute"


def _headers(
    key: KeyRecord, requests: Counts, tokens: Counts, elapsed: float, now: float
) -> list[Header]:
    """Anthropic's rate-limit response headers (limit, remaining, reset as RFC 3339)."""
    headers: list[Header] = []
    for names, limit, counts in (
        (_REQUEST_HEADERS, key.rpm, requests),
        (_TOKEN_HEADERS, key.tpm, tokens),
    ):
        if not limit:
            continue
        used = estimate(counts.current, counts.previous, elapsed)
        reset = replenished_at(counts.index, counts.current, counts.previous, now)
        headers += [
            (names[0], str(limit).encode()),
            (names[1], str(max(0, math.floor(limit - used))).encode()),
            (names[2], _reset_text(reset)),
        ]
    return headers


_REQUEST_HEADERS = tuple(
    f"anthropic-ratelimit-requests-{n}".encode() for n in ("limit", "remaining", "reset")
)
_TOKEN_HEADERS = tuple(
    f"anthropic-ratelimit-tokens-{n}".encode() for n in ("limit", "remaining", "reset")
)
_RESETS: dict[int, bytes] = {}


def _reset_text(moment: float) -> bytes:
    """RFC 3339 of a window boundary, memoized: resets are whole minutes, so few."""
    second = int(moment)
    text = _RESETS.get(second)
    if text is None:
        if len(_RESETS) > 1024:
            _RESETS.clear()
        text = _RESETS[second] = (iso_time(second) or "").encode()
    return text
