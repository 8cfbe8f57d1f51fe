"""Retries around a provider call, only while nothing has reached the client."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from anthropic_router.errors import ApiError

T = TypeVar("T")

BASE_DELAY = 0.5
MAX_DELAY = 8.0


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    deadline: float,
    on_retry: Callable[[ApiError], None] | None = None,
) -> T:
    """Call `attempt` until it succeeds, fails with a non-retryable error, runs out of
    retries, or the next wait would pass `deadline` (a `time.monotonic()` value).

    Waits use exponential backoff with full jitter and never less than the upstream's
    `retry-after`.
    """
    retries = 0
    while True:
        try:
            return await attempt()
        except ApiError as error:
            if not error.retryable or retries >= max_retries:
                raise
            delay = _delay(retries, error.retry_after)
            if time.monotonic() + delay > deadline:
                raise
            retries += 1
            if on_retry is not None:
                on_retry(error)
            await asyncio.sleep(delay)


def _delay(retries: int, retry_after: str | None) -> float:
    backoff = random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2**retries))
    try:
        floor = float(retry_after) if retry_after else 0.0
    except ValueError:
        floor = 0.0  # an HTTP date: rare from LLM upstreams; fall back to backoff
    return max(backoff, floor)
