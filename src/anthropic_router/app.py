"""The ASGI application: routes, auth, the messages handler and its error rendering.

A raw ASGI app rather than a framework: the request path is JSON in, convert, HTTP out, SSE
back, and every layer a framework adds sits on that hot path (see docs/11-benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from typing import Any

from anthropic_router import __version__
from anthropic_router.config import Settings
from anthropic_router.convert.common import anthropic_usage
from anthropic_router.convert.passthrough import (
    AnthropicRelay,
    passthrough_message,
    to_anthropic_request,
)
from anthropic_router.convert.request import to_openai_request
from anthropic_router.convert.response import to_anthropic_message
from anthropic_router.convert.sse import SSEDecoder, encode_events
from anthropic_router.convert.stream import StreamTranslator, message_events
from anthropic_router.errors import ApiError, not_found
from anthropic_router.http import (
    SSE_HEADERS,
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
from anthropic_router.providers.openai_chat import JsonAsStream
from anthropic_router.providers.retry import with_retries
from anthropic_router.routing import Route, Router, Target
from anthropic_router.tokens import count_tokens
from anthropic_router.wire.anthropic import parse_messages_request

log = logging.getLogger("anthropic_router")

DROPPED_HEADER = b"x-anthropic-router-dropped"


class App:
    """`create_app(settings)` builds one; uvicorn calls it per request."""

    def __init__(self, settings: Settings, router: Router | None = None) -> None:
        self.settings = settings
        self.router = router or Router(settings)
        self.provider = self.router.default_provider
        self._keys = settings.client_keys
        self.ready = False
        self._active = 0
        if settings.metrics_enable:
            from anthropic_router import metrics

            self._metrics: Any = metrics
            metrics.set_info(
                __version__,
                settings.backend.value,
                {
                    "multi_modal": settings.multi_modal_enable,
                    "openrouter_extensions": settings.openrouter_extensions_enable,
                    "openai_advanced": settings.openai_advanced_enable,
                },
            )
        else:
            self._metrics = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for provider in self.router.providers():
                    provider.open()
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                for provider in self.router.providers():
                    await provider.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

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

    async def _send_error(
        self, send: Send, exchange: Exchange, headers: list[tuple[bytes, bytes]], error: ApiError
    ) -> None:
        exchange.status = error.status
        exchange.error_type = error.error_type
        exchange.error_message = error.message
        extra = [(b"retry-after", error.retry_after.encode())] if error.retry_after else []
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
            self._authenticate(scope, exchange)
            body, content_type = self._metrics.exposition()
            await send_bytes(send, 200, body, [(b"content-type", content_type.encode()), *headers])
            return
        if not path.startswith("/v1/"):
            raise not_found(f"no route for {method} {scope['path']}")
        client_key = self._authenticate(scope, exchange)
        if path == "/v1/messages" and method == "POST":
            await self._messages(receive, send, exchange, headers, client_key, scope)
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
        body = {
            "status": "ok" if ok else "starting",
            "service": "anthropic-router",
            "version": __version__,
        }
        if method == "HEAD":
            await send_bytes(send, 200 if ok else 503, b"", headers)
        else:
            await send_json(send, 200 if ok else 503, body, headers)

    def _authenticate(self, scope: Scope, exchange: Exchange) -> str | None:
        """Check the client's key when PROXY_API_KEY is set; return the presented key."""
        presented = header(scope, b"x-api-key")
        if presented is None:
            authorization = header(scope, b"authorization") or ""
            if authorization[:7].lower() == "bearer ":
                presented = authorization[7:].strip()
        exchange.client_key_id = key_id(presented)
        if not self._keys:
            return presented
        candidate = (presented or "").encode()
        # Compare against every key so the time taken does not reveal which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise ApiError("authentication_error", "invalid or missing API key")
        return presented

    async def _read_request(self, receive: Receive, exchange: Exchange, **checks: Any) -> Any:
        body = parse_json(await read_body(receive, self.settings.max_request_body))
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
        # Tokenising an 80 KB Claude Code request takes milliseconds: keep it off the loop.
        tokens = await asyncio.to_thread(count_tokens, dict(request), route.upstream_model)
        await send_json(send, 200, {"input_tokens": tokens}, headers)
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
        request = await self._read_request(receive, exchange)
        _refuse_thread_continuation(request)
        route = self.router.resolve(request["model"])
        exchange.client_model, exchange.route_reason = route.client_model, route.reason
        exchange.stream = bool(request.get("stream"))
        call = _Call(self.settings, route, exchange, request, _anthropic_headers(scope))
        if client_key and self.settings.forward_client_key and not self._keys:
            # Documented opt-in: with no OPENROUTER_API_KEY, each client pays with its own key.
            call.client_key = client_key
        await _until_disconnect(call.run(send, headers), receive)


class _Prepared:
    """One target's upstream body and what the way back needs."""

    __slots__ = ("body", "dropped", "notes", "tool_names")

    def __init__(self, body: Any, dropped: list[str], notes: list[str], tool_names: Any) -> None:
        self.body, self.dropped, self.notes, self.tool_names = body, dropped, notes, tool_names


class _Call:
    """One /v1/messages exchange: each target in turn (retries within a target, fallback to
    the next while nothing reached the client), conversion back, sending."""

    def __init__(
        self,
        settings: Settings,
        route: Route,
        exchange: Exchange,
        request: Any,
        client_headers: dict[str, str],
    ) -> None:
        self.settings = settings
        self.route = route
        self.exchange = exchange
        self.request = request
        self.stop_sequences = list(request.get("stop_sequences") or [])
        self.deadline = time.monotonic() + settings.request_timeout
        self.upstream_headers = {"x-request-id": exchange.request_id}
        self.client_headers = client_headers
        self.failures: list[str] = []
        self.client_key: str | None = None  # FORWARD_CLIENT_KEY, for OpenRouter targets

    async def run(self, send: Send, headers: list[Any]) -> None:
        targets = self.route.targets
        for position, target in enumerate(targets):
            self.exchange.upstream_model, self.exchange.backend = (
                target.upstream_model,
                target.backend,
            )
            prepared = self._prepare(target)
            try:
                await self._serve(target, prepared, send, headers)
                return
            except ApiError as error:
                last = position == len(targets) - 1
                if last or not error.retryable or time.monotonic() >= self.deadline:
                    raise
                self._fell_back(target, error)

    def _prepare(self, target: Target) -> _Prepared:
        if target.wire == "anthropic":
            body, report = to_anthropic_request(dict(self.request), target.options)
            return _Prepared(body, report.dropped_names, report.notes, {})
        conversion = to_openai_request(dict(self.request), target.options)
        report = conversion.report
        dropped = report.dropped_names
        unsupported = getattr(target.provider, "unsupported", None)  # LiteLLM's drop_params
        if unsupported is not None:
            dropped += [name for name in unsupported(conversion.body) if name not in dropped]
        return _Prepared(conversion.body, dropped, report.notes, conversion.tool_names)

    def _fell_back(self, target: Target, error: ApiError) -> None:
        self.failures.append(f"{target.backend}:{target.upstream_model} ({error.error_type})")
        self.exchange.fallback = " -> ".join(self.failures)
        fields = {"request_id": self.exchange.request_id, "failed": self.failures[-1]}
        log.warning("falling back to the next target", extra={"fields": {**fields}})

    def _served(self, target: Target, prepared: _Prepared, headers: list[Any]) -> list[Any]:
        """Record which target served; the response headers say so too."""
        exchange = self.exchange
        exchange.upstream_model, exchange.backend = target.upstream_model, target.backend
        exchange.dropped = list(prepared.dropped)
        if prepared.notes:
            fields = {"request_id": exchange.request_id, "notes": prepared.notes}
            log.warning("conversion degraded", extra={"fields": fields})
        served = [
            *headers,
            (b"x-anthropic-router-upstream-model", _header_value(target.upstream_model)),
            (b"x-anthropic-router-backend", target.backend.encode()),
        ]
        if exchange.dropped:
            served.append((DROPPED_HEADER, _header_value(",".join(exchange.dropped))))
        if self.failures:
            served.append((b"x-anthropic-router-fallback", _header_value(exchange.fallback or "")))
        return served

    def _on_retry(self, error: ApiError) -> None:
        self.exchange.retries += 1

    async def _retrying(self, attempt: Any) -> Any:
        return await with_retries(
            attempt,
            max_retries=self.settings.upstream_max_retries,
            deadline=self.deadline,
            on_retry=self._on_retry,
        )

    def _extra_headers(self, target: Target) -> dict[str, str]:
        headers = dict(self.upstream_headers)
        if self.client_key is not None and _takes_openrouter_key(target):
            # FORWARD_CLIENT_KEY: a client's key is its OpenRouter key, for OpenRouter only;
            # other backends (and fallbacks to them) use their own configured credentials.
            headers["Authorization"] = f"Bearer {self.client_key}"
        if target.wire == "anthropic":
            return {**self.client_headers, **headers}
        return headers

    async def _serve(
        self, target: Target, prepared: _Prepared, send: Send, headers: list[Any]
    ) -> None:
        self.exchange.mark("convert")
        if self.exchange.stream:
            await self._stream(target, prepared, send, headers)
        else:
            await self._complete(target, prepared, send, headers)

    async def _complete(
        self, target: Target, prepared: _Prepared, send: Send, headers: list[Any]
    ) -> None:
        provider, body, extra = target.provider, prepared.body, self._extra_headers(target)
        try:
            async with asyncio.timeout_at(self.deadline):
                completion = await self._retrying(lambda: provider.complete(body, extra))
        except TimeoutError:
            raise ApiError(
                "timeout_error", "upstream did not answer within REQUEST_TIMEOUT"
            ) from None
        self.exchange.mark("upstream")
        message = self._message(target, prepared, completion)
        self.exchange.stop_reason = message["stop_reason"]
        self.exchange.usage = message["usage"]
        self.exchange.cost_usd = _cost(completion.get("usage"))
        await send_json(send, 200, message, self._served(target, prepared, headers))
        self.exchange.status = 200

    def _message(self, target: Target, prepared: _Prepared, completion: Any) -> dict[str, Any]:
        if target.wire == "anthropic":
            return passthrough_message(completion, self.route.client_model)
        return _to_message(
            completion,
            model=self.route.client_model,
            tool_names=prepared.tool_names,
            stop_sequences=self.stop_sequences,
        )

    async def _stream(
        self, target: Target, prepared: _Prepared, send: Send, headers: list[Any]
    ) -> None:
        provider, body, extra = target.provider, prepared.body, self._extra_headers(target)
        try:
            async with asyncio.timeout_at(self.deadline):
                upstream = await self._retrying(lambda: provider.open_stream(body, extra))
        except TimeoutError:
            raise ApiError(
                "timeout_error", "upstream did not answer within REQUEST_TIMEOUT"
            ) from None
        except JsonAsStream as answer:
            message = self._message(target, prepared, answer.completion)
            await self._start(send, self._served(target, prepared, headers))
            await send(
                {"type": "http.response.body", "body": encode_events(message_events(message))}
            )
            self.exchange.stop_reason = message["stop_reason"]
            self.exchange.usage = message["usage"]
            return
        self.exchange.mark("upstream_headers")
        await self._start(send, self._served(target, prepared, headers))
        translator: Any
        if target.wire == "anthropic":
            translator = AnthropicRelay(model=self.route.client_model)
        else:
            translator = StreamTranslator(
                model=self.route.client_model,
                tool_names=prepared.tool_names,
                stop_sequences=self.stop_sequences,
            )
        try:
            await self._pump(upstream, translator, send)
        finally:
            await upstream.aclose()

    async def _start(self, send: Send, headers: list[Any]) -> None:
        self.exchange.status = 200
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]}
        )

    async def _pump(self, upstream: Any, translator: Any, send: Send) -> None:
        await _send_more(send, encode_events(translator.start()))
        pinger = asyncio.ensure_future(_keep_alive(send, self.settings.stream_ping_interval))
        try:
            events = await self._relay(upstream, translator, send)
        finally:
            pinger.cancel()
        await send({"type": "http.response.body", "body": encode_events(events)})
        if translator.failed is not None:
            self.exchange.error_type = translator.failed.error_type
            self.exchange.error_message = translator.failed.message
        self.exchange.dropped.extend(translator.dropped)
        self.exchange.stop_reason = translator.stop_reason
        if isinstance(translator, AnthropicRelay):
            self.exchange.usage = translator.anthropic_usage or None
        elif translator.usage is not None:
            self.exchange.usage = anthropic_usage(translator.usage)
            self.exchange.cost_usd = _cost(translator.usage)

    async def _relay(self, upstream: Any, translator: Any, send: Send) -> list[dict[str, Any]]:
        """Relay translated events as chunks arrive; return the closing events."""
        decoder = SSEDecoder()
        try:
            async with asyncio.timeout_at(self.deadline):
                return await self._relay_chunks(upstream, translator, send, decoder)
        except TimeoutError:
            message = "the stream exceeded REQUEST_TIMEOUT"
            return list(translator.fail(ApiError("timeout_error", message)))

    async def _relay_chunks(
        self, upstream: Any, translator: Any, send: Send, decoder: SSEDecoder
    ) -> list[dict[str, Any]]:
        first = True
        try:
            async for chunk in upstream.chunks():
                events: list[dict[str, Any]] = []
                for payload in decoder.feed(chunk):
                    events.extend(translator.feed_data(payload))
                if events:
                    if first:
                        self.exchange.mark("first_token")
                        first = False
                    await _send_more(send, encode_events(events))
                if translator.done:
                    return []
            events = []
            for payload in decoder.flush():
                events.extend(translator.feed_data(payload))
            return events + list(translator.end_of_input())
        except ApiError as error:
            return list(translator.fail(error))
        except ValueError as error:
            message = f"upstream stream is malformed: {error}"
            return list(translator.fail(ApiError("api_error", message)))


def _takes_openrouter_key(target: Target) -> bool:
    return target.backend == "openrouter" or (
        target.backend == "litellm" and target.upstream_model.startswith("openrouter/")
    )


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


def _to_message(completion: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """`to_anthropic_message`, with an upstream answer of an unexpected shape (a string where
    an object belongs, say) reported as a 502 instead of crashing the handler."""
    try:
        return to_anthropic_message(completion, **kwargs)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        message = f"upstream answered with an unexpected shape ({type(exc).__name__})"
        raise ApiError("api_error", message, status=502) from None


_HEADER_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _header_value(text: str) -> bytes:
    """Client-chosen text (model ids, field names) made safe for a response header."""
    return _HEADER_UNSAFE.sub("?", text)[:1024].encode("ascii")


def _cost(usage: Any) -> float | None:
    """OpenRouter reports the cost of a generation in `usage.cost` (USD)."""
    cost = usage.get("cost") if isinstance(usage, dict) else None
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None


async def _send_more(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _keep_alive(send: Send, interval: float) -> None:
    """`ping` frames while the upstream is silent (long reasoning, queued providers), so
    idle timeouts of clients and intermediaries do not cut the stream."""
    frame = encode_events([{"type": "ping"}])
    while True:
        await asyncio.sleep(interval)
        await _send_more(send, frame)


def _api_path(path: str) -> str:
    """Claude Code keeps any base-URL path (`/prefix/v1/messages`): serve it as `/v1/...`."""
    path = path.rstrip("/") or "/"
    start = path.find("/v1/")
    return path[start:] if start > 0 else path


async def _until_disconnect(work: Any, receive: Receive) -> None:
    """Run `work`, cancelling it when the client goes away so the upstream request is
    closed at once instead of generating (and billing) an answer nobody reads."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise ClientDisconnected
        task.result()
    finally:
        watcher.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


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
