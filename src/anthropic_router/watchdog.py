"""A per-read deadline for a stream's reads that costs an attribute write per read.

`asyncio.timeout` builds a context manager and schedules and cancels a timer handle on every
read: about 5 µs, twice per relayed chunk (STREAM_IDLE_TIMEOUT in the provider,
REQUEST_TIMEOUT in the relay), on a path whose whole budget is about 35 µs. A `Watchdog`
keeps one timer for the whole stream. A read moves the instant it must end by (a float); the
timer, when it fires, re-arms itself for that instant if it has moved, and cancels the
reading task only when a read really outlasted it. Between reads (the consumer writing to
the client) it never fires anything, the semantics of `asyncio.timeout` around each read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Watchdog:
    """`await dog.within(awaitable, at)`: the awaitable's result, or TimeoutError once the
    loop clock passes `at` (a `loop.time()` instant) while it is still pending."""

    __slots__ = ("_at", "_fired", "_handle", "_loop", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._at: float | None = None  # the current read's end; None between reads
        self._fired = False

    async def within(self, awaitable: Awaitable[T], at: float) -> T:
        if self._loop.time() >= at:
            raise TimeoutError
        # With the loop given: CPython 3.11 looks the running loop up with a getpid() system
        # call (a fork check), 0.4 µs on every read otherwise.
        self._task = asyncio.current_task(self._loop)
        self._at = at
        if self._handle is None or self._handle.when() > at:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(at, self._check)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._fired and self._task is not None:
                self._fired = False
                self._task.uncancel()
                raise TimeoutError from None
            raise
        finally:
            self._at = None

    def _check(self) -> None:
        self._handle = None
        at = self._at
        if at is None or self._task is None:
            return  # between reads: the next read arms it again
        if self._loop.time() >= at:
            self._fired = True
            self._task.cancel()
        else:
            self._handle = self._loop.call_at(at, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
