"""The batch runner: one background task per router instance that claims batch requests
with leases and runs each through `App.relay`, the same seam as an interactive request.

Several instances (or one restarted after a SIGKILL) share the work through the store: a
request whose owner died is claimed again once its lease runs out, so an upstream call in
flight at a crash may be made twice, but only one result is ever written (storage.py).

Batch work is bounded by BATCH_CONCURRENCY and never counts against the interactive
MAX_CONCURRENT_REQUESTS, so a large batch neither sheds nor starves interactive clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from anthropic_router.batches import shapes, storage
from anthropic_router.batches.share import Share, probe
from anthropic_router.batches.storage import Claimed
from anthropic_router.config import Settings
from anthropic_router.errors import ApiError
from anthropic_router.observability import Exchange, log_exchange, new_request_id
from anthropic_router.relay import Call, Relay
from anthropic_router.routing import Router
from anthropic_router.store import Store, StoreError
from anthropic_router.wire.anthropic import parse_messages_request

log = logging.getLogger("anthropic_router")

BATCH_PATH = "/v1/messages/batches"
# Failures worth trying again later: a batch has hours, not seconds, to get an answer.
_RETRYABLE_TYPES = ("rate_limit_error", "overloaded_error", "timeout_error")
_RETRYABLE_STATUS = (408, 409, 429, 500, 502, 503, 504, 529)


def is_retryable(error: ApiError) -> bool:
    return (
        error.retryable or error.error_type in _RETRYABLE_TYPES or error.status in _RETRYABLE_STATUS
    )


def backoff(attempts: int, base: float, cap: float, retry_after: str | None) -> float:
    """Exponential backoff with jitter, never below the upstream's `retry-after`."""
    delay = min(cap, base * 2 ** max(0, attempts - 1)) * random.uniform(0.5, 1.0)
    try:
        floor = float(retry_after) if retry_after else 0.0
    except ValueError:
        floor = 0.0
    return float(max(delay, min(floor, cap)))


class Runner:
    """`start()` in the lifespan, `stop()` at shutdown; `wake()` when a batch was created."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        relay: Relay,
        router: Router,
        metrics: Any = None,
        interactive: Callable[[], int] = lambda: 0,
        finished: Callable[[Exchange], Awaitable[None]] | None = None,
    ) -> None:
        """`interactive()` is the number of interactive requests in flight (see share.py)."""
        self.settings = settings
        self.store = store
        self.relay = relay
        self.router = router
        self.finished = finished  # the gateway's accounting (ledger row, key's tokens)
        self.metrics = metrics
        self.owner = "inst_" + secrets.token_hex(8)
        self.running: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches: dict[str, tuple[dict[str, str], str | None]] = {}
        # Results of finished requests, written by the loop in one transaction per wake-up:
        # under load many results share one commit (a group commit), alone it is one each.
        self._finished: list[tuple[Claimed, str, bytes]] = []
        self._hold_until = 0.0  # a rate limit pauses claiming for a while
        self._store_down = False
        self.share = Share(settings.batch_concurrency)
        self._interactive = interactive
        self._probe: asyncio.Task[None] | None = None
        self._busy = asyncio.Event()  # batch requests are running: the share probe runs

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batch-runner")
        self._probe = asyncio.create_task(
            probe(self.share, self._interactive, self.wake, self._busy), name="batch-share"
        )

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop claiming, cancel running requests and hand their leases back."""
        tasks = [t for t in (self._task, self._probe, *self.running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(StoreError, TimeoutError):
            async with asyncio.timeout(5):
                await self._flush()
                await storage.release(self.store, self.owner, time.time())

    async def _loop(self) -> None:
        settings = self.settings
        renew_every = settings.batch_lease_seconds / 3
        next_sweep = next_renew = 0.0
        while True:
            now = time.time()
            try:
                if now >= next_sweep:
                    await self._sweep(now)
                    next_sweep = now + settings.batch_sweep_interval
                if self.running and now >= next_renew:
                    await storage.renew(self.store, self.owner, now + settings.batch_lease_seconds)
                    next_renew = now + renew_every
                claimed = await self._step(now)
                self._recovered()
            except StoreError as error:
                self._store_failed(error)
                claimed = []
            if not claimed:
                await self._wait(next_renew)

    async def _wait(self, next_renew: float) -> None:
        """Until a request finishes, a batch is created or cancelled, the next poll for due
        work (retries whose backoff ended, other instances' expired leases) or renewal."""
        settings = self.settings
        full = len(self.running) >= self.share.limit
        timeout = settings.batch_lease_seconds / 3 if full else settings.batch_poll_interval
        if self.running:
            timeout = min(timeout, max(0.01, next_renew - time.time()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()
        self._wakeup.clear()

    async def _step(self, now: float) -> list[Claimed]:
        """Write what finished and claim as many requests as there are free slots, in one
        transaction; start them; end the batches that have nothing left. On a store error
        the results stay queued; if the outage outlasts the lease, whoever reclaims the
        requests runs them again and these writes are fenced out."""
        free = self.share.limit - len(self.running)
        if now < self._hold_until:
            free = 0
        done, self._finished = self._finished, []
        if not done and free <= 0:
            return []
        lease = self.settings.batch_lease_seconds
        try:
            written, claimed = await storage.finish_and_claim(
                self.store, self.owner, done, max(0, free), now, lease
            )
        except StoreError:
            self._finished = done + self._finished
            raise
        for item in claimed:
            task = asyncio.create_task(self._run(item), name=f"batch-{item.custom_id}")
            self.running.add(task)
            task.add_done_callback(self._done)
            self._busy.set()
        self._written(done, written)
        for batch_id in {item.batch_id for item, _, _ in done}:
            await self._end_if_done(batch_id, now)
        return claimed

    def _written(self, done: list[tuple[Claimed, str, bytes]], written: list[bool]) -> None:
        for ok, (item, state, _) in zip(written, done, strict=True):
            if not ok:
                fields = {"batch_id": item.batch_id, "custom_id": item.custom_id}
                log.warning("batch lease lost; result dropped", extra={"fields": fields})
            elif self.metrics is not None:
                self.metrics.BATCH.labels(state).inc()

    async def _end_if_done(self, batch_id: str, now: float) -> None:
        if await storage.end_if_done(self.store, batch_id, now):
            self._batches.pop(batch_id, None)
            log.info("batch ended", extra={"fields": {"batch_id": batch_id}})

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        if not self.running:
            self._busy.clear()
        self._wakeup.set()

    async def _sweep(self, now: float) -> None:
        retention = self.settings.batch_results_retention_days * 86400
        for batch_id in await storage.sweep(self.store, now, retention):
            self._batches.pop(batch_id, None)
            log.info("batch ended", extra={"fields": {"batch_id": batch_id}})
        if self.metrics is not None:
            by_status, depth = await storage.gauges(self.store)
            self.metrics.set_batch_gauges(by_status, depth)

    def _store_failed(self, error: StoreError) -> None:
        if not self._store_down:
            log.warning("batch runner: store unavailable", extra={"fields": {"error": str(error)}})
        self._store_down = True

    def _recovered(self) -> None:
        if self._store_down:
            log.info("batch runner: store available again")
        self._store_down = False

    async def _batch(self, batch_id: str) -> tuple[dict[str, str], str | None]:
        """The batch's headers and owner key id (cached: they never change)."""
        known = self._batches.get(batch_id)
        if known is None:
            row = await storage.get_batch(self.store, batch_id)
            headers = orjson.loads(row["headers"]) if row else {}
            known = (headers, row["owner"] if row else None)
            if len(self._batches) > 1000:
                self._batches.clear()
            self._batches[batch_id] = known
        return known

    async def _run(self, item: Claimed) -> None:
        record = Exchange(new_request_id(), "POST", BATCH_PATH)
        record.batch_id, record.custom_id = item.batch_id, item.custom_id
        try:
            outcome = await self._exchange(item, record)
            if outcome is not None:
                self._finished.append((item, *outcome))
        except StoreError as error:
            # The lease runs out and the request is run again, by this instance or another.
            fields = {"batch_id": item.batch_id, "custom_id": item.custom_id, "error": str(error)}
            log.warning("batch result not stored", extra={"fields": fields})
        log_exchange(record, self.metrics is not None)
        if self.finished is not None:
            await self.finished(record)

    async def _exchange(self, item: Claimed, record: Exchange) -> tuple[str, bytes] | None:
        """Run the request: ("succeeded"|"errored", result), or None when it was put back
        to be retried later."""
        try:
            request: dict[str, Any] = dict(parse_messages_request(orjson.loads(item.params)))
            route = self.router.route(request)  # task rules apply to batch requests too
            record.client_model, record.route_reason = route.client_model, route.reason
            headers, owner = await self._batch(item.batch_id)
            record.client_key_id = owner
            reply = await self.relay.run(Call(request, route, record, client_headers=headers))
            record.status = 200
            return "succeeded", shapes.succeeded(reply.message or {})
        except ApiError as error:
            record.status, record.error_type = error.status, error.error_type
            record.error_message = error.message
            if is_retryable(error):
                await self._retry_later(item, error)
                return None
            return "errored", shapes.errored(error.body(record.request_id))
        except (ValueError, TypeError, KeyError) as exc:  # a row this version cannot read
            return self._internal(record, f"batch request could not be run: {exc}")
        except StoreError:
            raise
        except Exception:  # a bug: one errored line, not a request retried until expiry
            log.exception("batch request failed", extra={"fields": {"custom_id": item.custom_id}})
            return self._internal(record, "internal error in anthropic-router")

    def _internal(self, record: Exchange, message: str) -> tuple[str, bytes]:
        record.status, record.error_type, record.error_message = 500, "api_error", message
        failure = ApiError("api_error", message)
        return "errored", shapes.errored(failure.body(record.request_id))

    async def _retry_later(self, item: Claimed, error: ApiError) -> None:
        settings = self.settings
        delay = backoff(
            item.attempts,
            settings.batch_retry_base_delay,
            settings.batch_retry_max_delay,
            error.retry_after,
        )
        now = time.time()
        if error.error_type in ("rate_limit_error", "overloaded_error"):
            # Everyone is likely being limited: slow the whole batch, not only this request.
            pause = min(delay, settings.batch_retry_base_delay)
            self._hold_until = max(self._hold_until, now + pause)
        await storage.retry_later(self.store, self.owner, item, now + delay)
        if self.metrics is not None:
            self.metrics.BATCH.labels("retried").inc()

    async def _flush(self) -> None:
        """At shutdown: write what finished (nothing is claimed)."""
        if self._finished:
            done, self._finished = self._finished, []
            written = await storage.finish_many(self.store, self.owner, done, time.time())
            self._written(done, written)
            for batch_id in {item.batch_id for item, _, _ in done}:
                await self._end_if_done(batch_id, time.time())
