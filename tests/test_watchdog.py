"""The per-stream read deadline (watchdog.py) keeps `asyncio.timeout`'s semantics."""

from __future__ import annotations

import asyncio

import pytest

from anthropic_router.watchdog import Watchdog


def test_a_read_that_finishes_in_time_returns_its_value():
    async def main() -> list[int]:
        dog = Watchdog()
        loop = asyncio.get_running_loop()
        values = [await dog.within(asyncio.sleep(0, i), loop.time() + 30) for i in range(5)]
        dog.close()
        return values

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_a_read_that_outlasts_its_instant_is_a_timeout_and_the_task_stays_usable():
    async def main() -> str:
        dog = Watchdog()
        loop = asyncio.get_running_loop()
        never = loop.create_future()
        with pytest.raises(TimeoutError):
            await dog.within(never, loop.time() + 0.05)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # our cancel was taken back
        await asyncio.sleep(0)  # no stray cancellation is left pending
        return await dog.within(asyncio.sleep(0, "after"), loop.time() + 30)

    assert asyncio.run(main()) == "after"


def test_time_spent_between_reads_does_not_count():
    """The deadline bounds each read: a slow consumer between two fast reads is not cut."""

    async def main() -> list[str]:
        dog = Watchdog()
        loop = asyncio.get_running_loop()
        got = [await dog.within(asyncio.sleep(0, "one"), loop.time() + 0.05)]
        await asyncio.sleep(0.1)  # the consumer busy past the first read's instant
        got.append(await dog.within(asyncio.sleep(0, "two"), loop.time() + 0.05))
        return got

    assert asyncio.run(main()) == ["one", "two"]


def test_an_instant_already_past_is_a_timeout_without_waiting():
    async def main() -> None:
        dog = Watchdog()
        loop = asyncio.get_running_loop()
        never = loop.create_future()
        with pytest.raises(TimeoutError):
            await dog.within(never, loop.time() - 1)
        never.cancel()

    asyncio.run(main())


def test_a_moving_instant_re_arms_the_one_timer():
    """Each read moves the instant forward (the idle timeout); only a read that outlasts its
    own instant times out."""

    async def main() -> int:
        dog = Watchdog()
        loop = asyncio.get_running_loop()
        reads = 0
        for _ in range(6):
            await dog.within(asyncio.sleep(0.02), loop.time() + 0.05)
            reads += 1
        never = loop.create_future()
        with pytest.raises(TimeoutError):
            await dog.within(never, loop.time() + 0.05)
        return reads

    assert asyncio.run(main()) == 6


def test_an_outside_cancellation_stays_a_cancellation():
    async def main() -> None:
        dog = Watchdog()
        loop = asyncio.get_running_loop()
        reader = asyncio.ensure_future(dog.within(loop.create_future(), loop.time() + 30))
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader

    asyncio.run(main())
