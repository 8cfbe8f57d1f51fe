"""The ASGI application: routes, auth, the messages handler and its error rendering.

A raw ASGI app rather than a framework: the request path is JSON in, convert, HTTP out, SSE
back, and every layer a framework adds sits on that hot path (see docs/11-benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import signal
import threading
from typing import Any

from anthropic_router import __version__
from anthropic_router.batches import api as batches_api
from anthropic_router.batches.runner import Runner
from anthropic_router.cache.key import cache_mode
from anthropic_router.config import Settings
from anthropic_router.convert.sse import encode_events
from anthropic_router.emulation import count_with_edits, emulating
from anthropic_router.errors import ApiError, not_found
from anthropic_router.http import (
    JSON_TYPE,
    SSE_HEADERS,
    BodyBudget,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    parse_json,
    read_body,
    send_bytes,
    send_json,
)
from anthropic_router.models import list_models_page, model_info
from anthropic_router.observability import (
    Exchange,
    body_for_log,
    key_id,
    log_exchange,
    new_request_id,
)
from anthropic_router.rediskv import KVUnavailable, RedisKV, open_redis
from anthropic_router.relay import Call, Relay, Reply, UpstreamRelay
from anthropic_router.routing import Router
from anthropic_router.servers import detect_local
from anthropic_router.side_calls import SideCallRelay
from anthropic_router.store import Store, StoreError, open_store
from anthropic_router.tokens import preload_tokenizers
from anthropic_router.tools.loop import ServerToolLoop
from anthropic_router.wire.anthropic import parse_messages_request

log = logging.getLogger("anthropic_router")


class App:
    """`create_app(settings)` builds one; uvicorn calls it per request."""

    def __init__(self, settings: Settings, router: Router | None = None) -> None:
        self.settings = settings
        self.router = router or Router(settings)
        self.provider = self.router.default_provider
        # The one exchange seam; features (cache, server tools, ...) wrap it.
        self.relay: Relay = emulating(UpstreamRelay(settings), settings, self.router)
        # Web search, web fetch and MCP tools, run by the router for any model; each of the
        # loop's model turns goes through the emulation and the upstream relay.
        self.server_tools = ServerToolLoop(self.relay, settings)
        self.relay = self.server_tools
        self._keys = settings.client_keys
        self.ready = False
        self._active = 0
        self._metrics: Any = None
        self.store: Store | None = None
        self.batch_runner: Runner | None = None  # while the lifespan runs
        self.redis: RedisKV | None = None
        self.gateway: Any = None
        if settings.gateway_enabled:  # keys, limits, ledger, reports, /ui (gateway/, ui/)
            from anthropic_router.gateway import Gateway

            self.gateway = Gateway(settings)
        self.body_budget = BodyBudget(settings.max_inflight_body_bytes)
        self.drain = StreamDrain()
        if settings.metrics_enable:
            from anthropic_router import metrics

            self._metrics = metrics
            metrics.set_known_models(self.router.configured_models())
            metrics.set_info(
                __version__,
                settings.backend.value,
                {
                    "multi_modal": settings.multi_modal_enable,
                    "openrouter_extensions": settings.openrouter_extensions_enable,
                    "openai_advanced": settings.openai_advanced_enable,
                },
            )
        self.response_cache = settings.response_cache_enabled
        if self.response_cache:
            from anthropic_router import cache

            self.relay = self._cache = cache.wrap(self.relay, settings, metrics=self._metrics)
        if settings.local_side_calls:
            self.relay = SideCallRelay(self.relay)  # answered before anything else runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._open_storage()
                except StoreError as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                for provider in self.router.providers():
                    provider.open()
                if self.gateway is not None:
                    await self.gateway.start(self.store, self.redis)
                self._watch_for_shutdown()
                self._preload = asyncio.get_running_loop().run_in_executor(
                    None, _warm_up, self.router.configured_models()
                )
                await detect_local(self.router, self.settings.openai_compatible_detect_timeout)
                self._start_batches()
                if self.settings.gc_tuning:
                    tune_gc()
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                if self.batch_runner is not None:  # before the providers and store close
                    await self.batch_runner.stop()
                    self.batch_runner = None
                for provider in self.router.providers():
                    await provider.aclose()
                await self.server_tools.aclose()
                if self.gateway is not None:
                    await self.gateway.close()
                await self._close_storage()
                if self._metrics is not None:  # last: after the last exchange was counted
                    self._metrics.flush()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _open_storage(self) -> None:
        """The store (when a feature needs it; a StoreError names DATABASE_URL, without its
        password) and Redis (when REDIS_URL is set)."""
        settings = self.settings
        if settings.store_enabled:
            try:
                self.store = await open_store(
                    settings.database_url,
                    pool_size=settings.database_pool_size,
                    connect_timeout=settings.database_connect_timeout,
                )
            except StoreError as error:
                # The error names the database (password hidden); one line, no traceback.
                detail = " ".join(str(error).split())
                raise StoreError(f"DATABASE_URL: cannot open the store: {detail}") from None
        if settings.redis_url:
            self.redis = open_redis(settings)
            # Redis down at start-up is an outage like any other: logged, not fatal.
            with contextlib.suppress(KVUnavailable):
                await self.redis.ping()
            if self.response_cache:  # shared by every instance on this Redis
                from anthropic_router import cache

                self._cache.store = cache.open_store(settings, self.redis, self._metrics)

    def _start_batches(self) -> None:
        if self.settings.batch_processing_enable and self.store is not None:
            self.batch_runner = Runner(
                self.settings,
                self.store,
                self.relay,
                self.router,
                self._metrics,
                interactive=lambda: self._active,  # batch work yields to these
                finished=self.gateway.finished if self.gateway is not None else None,
            )
            self.batch_runner.start()

    async def _close_storage(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self.redis is not None:
            await self.redis.close()
            self.redis = None

    def _watch_for_shutdown(self) -> None:
        """On SIGTERM/SIGINT (after uvicorn's own handler, which stops accepting), close the
        streams still open just before SHUTDOWN_GRACE_SECONDS runs out, with an error event
        the client can act on, instead of letting uvicorn cut them mid-body."""
        if threading.current_thread() is not threading.main_thread():
            return  # an embedded app: whoever runs the loop owns the signals
        loop = asyncio.get_running_loop()
        grace = max(self.settings.shutdown_grace_seconds - 0.25, 0.0)

        def begin_drain() -> None:
            loop.call_later(grace, self.drain.close_all)

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)

            def handler(number: int, frame: Any, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(begin_drain)
                if callable(previous):
                    previous(number, frame)

            signal.signal(signum, handler)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = Exchange(new_request_id(), scope["method"], scope["path"])
        headers = [(b"request-id", exchange.request_id.encode())]
        in_flight = self._metrics.IN_FLIGHT if self._metrics and "/v1/" in scope["path"] else None
        if in_flight is not None:
            in_flight.inc()
        try:
            await self._dispatch(scope, receive, send, exchange, headers)
        except ApiError as error:
            await self._send_error(send, exchange, headers, error)
        except ClientDisconnected:
            exchange.status = 499
            exchange.error_type = "client_disconnected"
        except Exception:
            log.exception("unhandled error", extra={"fields": {"request_id": exchange.request_id}})
            internal = ApiError("api_error", "internal error in anthropic-router")
            await self._send_error(send, exchange, headers, internal)
        if in_flight is not None:
            in_flight.dec()
        if "/v1/" in exchange.path:
            log_exchange(exchange, self._metrics is not None)
            if self.gateway is not None:
                await self.gateway.finished(exchange)

    async def _send_error(
        self, send: Send, exchange: Exchange, headers: list[tuple[bytes, bytes]], error: ApiError
    ) -> None:
        exchange.status = error.status
        exchange.error_type = error.error_type
        exchange.error_message = error.message
        extra = [(b"retry-after", error.retry_after.encode())] if error.retry_after else []
        extra += getattr(error, "headers", ())  # a key's anthropic-ratelimit-* headers
        if exchange.method == "HEAD":
            await send_bytes(send, error.status, b"", [*headers, *extra])
            return
        await send_json(send, error.status, error.body(exchange.request_id), [*headers, *extra])

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        method, path = scope["method"], _api_path(scope["path"])
        if path in ("/", "/health", "/ready") and method in ("GET", "HEAD"):
            await self._status(send, method, path, headers)
            return
        if path == "/metrics" and method == "GET" and self._metrics is not None:
            await self._authenticate(scope, exchange)
            body, content_type = self._metrics.exposition()
            await send_bytes(send, 200, body, [(b"content-type", content_type.encode()), *headers])
            return
        if self.gateway is not None and await self._gateway_pages(scope, receive, send, path):
            exchange.status = 200
            return
        if not path.startswith("/v1/"):
            raise not_found(f"no route for {method} {scope['path']}")
        client_key = await self._authenticate(scope, exchange)
        if path == "/v1/messages" and method == "POST":
            await self._messages(receive, send, exchange, headers, client_key, scope)
        elif path.startswith("/v1/messages/batches"):
            await batches_api.handle(self, scope, receive, send, exchange, headers, client_key)
        elif path == "/v1/messages/count_tokens" and method == "POST":
            await self._count_tokens(receive, send, exchange, headers)
        elif path == "/v1/models" and method == "GET":
            page = await list_models_page(
                self.router, self.provider, scope.get("query_string", b"")
            )
            await send_json(send, 200, page, headers)
            exchange.status = 200
        elif path.startswith("/v1/models/") and method == "GET":
            info = await model_info(self.router, self.provider, path.removeprefix("/v1/models/"))
            await send_json(send, 200, info, headers)
            exchange.status = 200
        else:
            raise not_found(f"no route for {method} {scope['path']}")

    async def _status(
        self, send: Send, method: str, path: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        ok = path != "/ready" or (self.ready and all(p.is_open for p in self.router.providers()))
        body: dict[str, Any] = {
            "status": "ok" if ok else "starting",
            "service": "anthropic-router",
            "version": __version__,
        }
        if path == "/ready" and (local := self.router.local_profiles()):
            body["local_servers"] = local  # which profile each local route uses, and why
        if method == "HEAD":
            await send_bytes(send, 200 if ok else 503, b"", headers)
        else:
            await send_json(send, 200 if ok else 503, body, headers)

    async def _gateway_pages(self, scope: Scope, receive: Receive, send: Send, path: str) -> bool:
        """The Admin-API-shaped reports and /ui, when ADMIN_API_KEY is set; True if served."""
        if path.startswith("/v1/organizations/"):
            from anthropic_router.gateway.reports import serve_report

            return await serve_report(self.gateway, scope, send, path)
        if path == "/ui" or path.startswith("/ui/"):
            from anthropic_router.ui.page import serve_ui

            return await serve_ui(self, scope, receive, send, path)
        return False

    async def _authenticate(self, scope: Scope, exchange: Exchange) -> str | None:
        """Check the client's key when PROXY_API_KEY is set or store keys are on (then
        `exchange` names the key); return the presented key."""
        presented = header(scope, b"x-api-key")
        if presented is None:
            authorization = header(scope, b"authorization") or ""
            if authorization[:7].lower() == "bearer ":
                presented = authorization[7:].strip()
        exchange.client_key_id = key_id(presented)
        gateway_keys = self.gateway is not None and self.gateway.keys_enabled
        if not self._keys and not gateway_keys:
            return presented
        candidate = (presented or "").encode()
        # Compare against every key so the time taken does not reveal which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched and gateway_keys:
            await self.gateway.authenticate(presented, exchange)
        elif not matched:
            raise ApiError("authentication_error", "invalid or missing API key")
        return presented

    async def _read_request(self, receive: Receive, exchange: Exchange, **checks: Any) -> Any:
        raw = await read_body(receive, self.settings.max_request_body, self.body_budget)
        try:
            body = parse_json(raw)
        finally:
            self.body_budget.give(len(raw))  # parsed (or refused): the raw bytes are done
        exchange.mark("read")
        if self.settings.log_bodies:
            fields = {"request_id": exchange.request_id, "body": body_for_log(body)}
            log.info("request body", extra={"fields": fields})
        return parse_messages_request(body, **checks)

    async def _count_tokens(
        self, receive: Receive, send: Send, exchange: Exchange, headers: list[tuple[bytes, bytes]]
    ) -> None:
        request = await self._read_request(receive, exchange, require_max_tokens=False)
        route = self.router.resolve(request["model"])
        exchange.client_model, exchange.upstream_model = route.client_model, route.upstream_model
        if self.gateway is not None:  # a store key's model, budget and rates; not counted
            headers += await self.gateway.admit(exchange, route, count=False)
        # Tokenising an 80 KB Claude Code request takes milliseconds: keep it off the loop.
        defaults = self.settings.context_management_default_edits
        native = route.targets[0].wire == "anthropic"
        counted = await asyncio.to_thread(
            count_with_edits, dict(request), route.upstream_model, defaults, native
        )
        await send_json(send, 200, counted, headers)
        exchange.status = 200

    async def _messages(
        self,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        headers: list[tuple[bytes, bytes]],
        client_key: str | None,
        scope: Scope,
    ) -> None:
        if self._active >= self.settings.max_concurrent_requests:
            # Shed load at once rather than queue without bound; clients retry 529s.
            raise ApiError("overloaded_error", "too many concurrent requests", retry_after="1")
        self._active += 1
        try:
            await self._messages_within_limit(receive, send, exchange, headers, client_key, scope)
        finally:
            self._active -= 1

    async def _messages_within_limit(
        self,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        headers: list[tuple[bytes, bytes]],
        client_key: str | None,
        scope: Scope,
    ) -> None:
        betas = header(scope, b"anthropic-beta") or ""
        request = await self._read_request(
            receive, exchange, interleaved_thinking="interleaved-thinking" in betas
        )
        _refuse_thread_continuation(request)
        route = self.router.route(request)  # task rules first (rules.py), then the model
        exchange.client_model, exchange.route_reason = route.client_model, route.reason
        exchange.stream = bool(request.get("stream"))
        if self.gateway is not None:  # a store key's model, budget and rates
            headers += await self.gateway.admit(exchange, route)
        call = Call(
            request,
            route,
            exchange,
            stream=exchange.stream,
            client_headers=_anthropic_headers(scope),
        )
        if self.response_cache:
            call.cache_mode = cache_mode(
                header(scope, b"cache-control"), header(scope, b"x-anthropic-router-cache")
            )
        if client_key and self.settings.forward_client_key and exchange.key_name is None:
            # Documented opt-in: with no OPENROUTER_API_KEY, each client pays with its own key.
            call.client_key = client_key
        work = self._answer(call, send, headers)
        await _until_disconnect(work, receive)

    async def _answer(self, call: Call, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        reply = await self.relay.run(call)
        ping = self.settings.stream_ping_interval
        await send_reply(send, reply, headers, call.record, ping, self.drain)


class StreamDrain:
    """The streams being sent; at shutdown each is ended with an `overloaded_error` event
    (clients retry it) rather than cut."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    def close_all(self) -> None:
        self.closing = True
        for task in list(self.tasks):
            task.cancel()


SHUTDOWN_EVENT = encode_events(
    [
        {
            "type": "error",
            "error": {
                "type": "overloaded_error",
                "message": "anthropic-router is shutting down; retry the request",
            },
        }
    ]
)


async def send_reply(
    send: Send,
    reply: Reply,
    headers: list[tuple[bytes, bytes]],
    record: Exchange,
    ping_interval: float,
    drain: StreamDrain | None = None,
) -> None:
    """A relay's reply as HTTP: the Message as JSON, or its events as SSE with `ping`
    frames while the upstream is silent (long reasoning, queued providers), so idle
    timeouts of clients and intermediaries do not cut the stream."""
    if reply.encoded is not None:
        await _send_encoded(send, reply, [*headers, *reply.headers])
        record.status = 200
        return
    if reply.events is None:
        await send_json(send, 200, reply.message, [*headers, *reply.headers])
        record.status = 200
        return
    record.status = 200
    events = reply.events
    start = [*SSE_HEADERS, *headers, *reply.headers]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": start})
    except BaseException:
        await events.aclose()  # never started: its cleanup (upstream, MCP sessions) runs now
        raise
    pinger = _Pinger(send, ping_interval)
    task = asyncio.current_task(pinger.loop)  # the loop given: no getpid() (watchdog.py)
    if drain is not None and task is not None:
        drain.tasks.add(task)
    open_block: int | None = None  # for the drain: a block must close before the error
    try:
        async for batch in events:
            await send(
                {"type": "http.response.body", "body": encode_events(batch), "more_body": True}
            )
            pinger.sent_at = pinger.loop.time()
            open_block = _open_block(batch, open_block)
    except asyncio.CancelledError:
        if drain is None or not drain.closing or task is None:
            raise
        task.uncancel()  # our own shutdown drain, not the client going away
        record.error_type = "overloaded_error"
        record.error_message = "closed at shutdown"
        closing = b""
        if open_block is not None:
            closing = encode_events([{"type": "content_block_stop", "index": open_block}])
        body = closing + SHUTDOWN_EVENT
        await send({"type": "http.response.body", "body": body, "more_body": True})
    finally:
        pinger.close()
        if drain is not None and task is not None:
            drain.tasks.discard(task)
        await events.aclose()
    await send({"type": "http.response.body", "body": b""})


async def _send_encoded(send: Send, reply: Reply, headers: list[tuple[bytes, bytes]]) -> None:
    """A reply rendered in advance (a cache hit): one write, no encoding."""
    if reply.events is None:
        await send_bytes(send, 200, reply.encoded or b"", [JSON_TYPE, *headers])
        return
    await reply.events.aclose()
    start = [*SSE_HEADERS, *headers]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    await send({"type": "http.response.body", "body": reply.encoded, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _open_block(batch: list[dict[str, Any]], open_block: int | None) -> int | None:
    """The index of the block left open after `batch` (the last start or stop decides)."""
    for event in reversed(batch):
        kind = event["type"]
        if kind == "content_block_start":
            return int(event["index"])
        if kind == "content_block_stop":
            return None
    return open_block


_PING = encode_events([{"type": "ping"}])


class _Pinger:
    """A `ping` frame once the stream has been silent for `interval`. One timer handle per
    stream, re-armed from the time of the last write when it fires (like the Watchdog);
    a task exists only while a ping is being sent, not one per stream."""

    __slots__ = ("_handle", "_interval", "_send", "_sending", "loop", "sent_at")

    def __init__(self, send: Send, interval: float) -> None:
        self.loop = asyncio.get_running_loop()
        self._send, self._interval = send, interval
        self.sent_at = self.loop.time()
        self._sending: asyncio.Task[None] | None = None
        self._handle: asyncio.TimerHandle | None = self.loop.call_at(
            self.sent_at + interval, self._check
        )

    def _check(self) -> None:
        now = self.loop.time()
        due = self.sent_at + self._interval
        if now >= due:
            if self._sending is None:  # else the last ping is still waiting to be written
                self._sending = self.loop.create_task(self._ping())
            due = now + self._interval
        self._handle = self.loop.call_at(due, self._check)

    async def _ping(self) -> None:
        try:
            await self._send({"type": "http.response.body", "body": _PING, "more_body": True})
            self.sent_at = self.loop.time()
        finally:
            self._sending = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._sending is not None:
            self._sending.cancel()


# Client headers an Anthropic-speaking upstream needs to see (beta features, API version).
_PASSED_HEADERS = (b"anthropic-version", b"anthropic-beta")


def _anthropic_headers(scope: Scope) -> dict[str, str]:
    found = {}
    for name in _PASSED_HEADERS:
        value = header(scope, name)
        if value:
            found[name.decode()] = value
    return found


def _refuse_thread_continuation(request: Any) -> None:
    """The router keeps no server-side threads. `thread_not_found` makes the SDK's tool
    runner resend the whole history (`{"type":"create"}`), which is served statelessly."""
    thread = request.get("thread")
    if isinstance(thread, dict) and thread.get("type") == "continue":
        raise ApiError(
            "invalid_request_error",
            "thread not found: anthropic-router keeps no server-side threads; "
            "resend the full history",
            details={"error_code": "thread_not_found"},
        )


def _api_path(path: str) -> str:
    """Claude Code keeps any base-URL path (`/prefix/v1/messages`): serve it as `/v1/...`."""
    path = path.rstrip("/") or "/"
    start = path.find("/v1/")
    return path[start:] if start > 0 else path


async def _until_disconnect(work: Any, receive: Receive) -> None:
    """Run `work`, cancelling it when the client goes away so the upstream request is
    closed at once instead of generating (and billing) an answer nobody reads.

    `work` runs in this task (a task of its own and `asyncio.wait` cost about 20 µs per
    request); the watcher task cancels this one on a disconnect, and the cancellation is
    told apart from any other by the flag it sets."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)  # the loop given: no getpid() (watchdog.py)
    assert task is not None
    state = {"gone": False, "finished": False}

    def on_disconnect(watcher: asyncio.Future[None]) -> None:
        if watcher.cancelled() or watcher.exception() is not None or state["finished"]:
            return
        state["gone"] = True
        task.cancel()

    watcher = loop.create_task(_wait_disconnect(receive))
    watcher.add_done_callback(on_disconnect)
    try:
        await work
        state["finished"] = True
    except asyncio.CancelledError:
        state["finished"] = True
        if state["gone"] and task.uncancel() == 0:
            raise ClientDisconnected from None
        raise
    finally:
        watcher.remove_done_callback(on_disconnect)
        watcher.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _warm_up(upstream_models: set[str]) -> None:
    """Off the event loop after start-up: the tokenizers the configured models use and the
    modules the first requests need but start-up does not (jsonschema, for checking tool
    inputs), so neither the first count_tokens nor the first tool call pays for loading."""
    preload_tokenizers(upstream_models)
    import jsonschema  # noqa: F401


# Young-generation threshold: CPython's default, 700 net container allocations, is crossed
# over and over by the objects requests in flight hold (a parsed 3 KB request is hundreds of
# dicts and lists), so a collection ran about every eighth request and found nothing to free.
GC_THRESHOLDS = (7000, 10, 10)


def tune_gc() -> None:
    """At the end of start-up: the modules, tables and settings loaded so far live as long
    as the process, so they move to the permanent generation (`gc.freeze`) and no full
    collection walks them again; and young collections run a tenth as often. Reference
    cycles are still collected, just in larger, rarer batches. GC_TUNING=false keeps
    CPython's defaults."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(settings: Settings) -> App:
    return App(settings)


def create_app_from_env() -> App:
    """Factory for `uvicorn --factory` and multi-worker runs: each worker reads the settings."""
    from anthropic_router.observability import configure_logging

    settings = Settings()
    configure_logging(
        settings.log_level,
        settings.json_logs,
        settings.log_file,
        settings.log_file_max_bytes,
        settings.log_file_backups,
    )
    return App(settings)


__all__ = ["App", "create_app", "create_app_from_env"]
