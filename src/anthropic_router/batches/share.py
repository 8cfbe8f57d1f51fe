"""How much of the event loop batch work may take: interactive requests come first.

Batch and interactive requests share one event loop per process. Work queued behind batch
requests makes interactive ones wait, and the loop's lateness measures exactly that. So
while an interactive request is in flight, the number of batch requests allowed to run
halves whenever a short timer fires late by more than LAG_LIMIT, and grows by one for each
on-time probe (additive increase, multiplicative decrease, as in TCP). With no interactive
request in flight the batch runs at BATCH_CONCURRENCY.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

LAG_LIMIT = 0.0015  # seconds late a 10 ms timer may fire (libuv timers: 1 ms steps)
PROBE_INTERVAL = 0.01


class Share:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.limit = concurrency

    def observe(self, lag: float, interactive: int) -> None:
        """One probe: the timer's lateness in seconds, interactive requests in flight."""
        if not interactive:
            self.limit = self.concurrency
        elif lag > LAG_LIMIT:
            self.limit = max(1, self.limit // 2)
        else:
            self.limit = min(self.concurrency, self.limit + 1)


async def probe(
    share: Share, interactive: Callable[[], int], grew: Callable[[], None], busy: asyncio.Event
) -> None:
    """Feed `share` while batch requests run (`busy` set); call `grew()` when the limit rises
    (more work may start). Between batches it waits on `busy` without a timer, so an idle
    router does not wake 100 times a second (about 2 % of a core on this VM, for nothing)."""
    while True:
        if not busy.is_set():
            share.limit = share.concurrency  # nothing runs: the next batch starts at full width
            await busy.wait()
        # perf_counter, not loop.time(): uvloop's clock moves in whole milliseconds.
        start = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL)
        before = share.limit
        share.observe(time.perf_counter() - start - PROBE_INTERVAL, interactive())
        if share.limit > before:
            grew()
