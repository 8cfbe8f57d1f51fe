"""The ASGI application: lifespan, routes, auth and error rendering. `/v1/messages` and
count_tokens are in messages.py, the rendering of a relay's reply in render.py.

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

from anthropic_router import __version__, messages
from anthropic_router.batches import api as batches_api
from anthropic_router.batches.runner import Runner
from anthropic_router.config import Settings
from anthropic_router.emulation import emulating
from anthropic_router.errors import ApiError, not_found
from anthropic_router.http import (
    BodyBudget,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    send_bytes,
    send_json,
)
from anthropic_router.models import list_models_page, model_info
from anthropic_router.observability import (
    Exchange,
    key_id,
    log_exchange,
    new_request_id,
)
from anthropic_router.rediskv import KVUnavailable, RedisKV, open_redis
from anthropic_router.relay import Relay, UpstreamRelay
from anthropic_router.render import StreamDrain
from anthropic_router.routing import Router
from anthropic_router.servers import detect_local
from anthropic_router.side_calls import SideCallRelay
from anthropic_router.store import Store, StoreError, open_store
from anthropic_router.tokens import preload_tokenizers
from anthropic_router.tools.loop import ServerToolLoop

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
        self.active = 0  # /v1/messages requests in flight (messages.py); batches yield to them
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
                    None, preload_tokenizers, self.router.configured_models()
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
                interactive=lambda: self.active,  # batch work yields to these
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
            await messages.messages(self, receive, send, exchange, headers, client_key, scope)
        elif path.startswith("/v1/messages/batches"):
            await batches_api.handle(self, scope, receive, send, exchange, headers, client_key)
        elif path == "/v1/messages/count_tokens" and method == "POST":
            await messages.count_tokens(self, receive, send, exchange, headers)
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


def _api_path(path: str) -> str:
    """Claude Code keeps any base-URL path (`/prefix/v1/messages`): serve it as `/v1/...`."""
    path = path.rstrip("/") or "/"
    start = path.find("/v1/")
    return path[start:] if start > 0 else path


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
