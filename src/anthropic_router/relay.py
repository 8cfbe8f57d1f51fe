"""One /v1/messages exchange relayed to its route's targets: each target in turn (retries
within a target, fallback to the next while nothing has reached the client), the answer
converted back and sent, as JSON or as SSE with keep-alive pings.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

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
from anthropic_router.errors import ApiError
from anthropic_router.http import SSE_HEADERS, Send, send_json
from anthropic_router.observability import Exchange
from anthropic_router.providers.openai_chat import JsonAsStream
from anthropic_router.providers.retry import with_retries
from anthropic_router.routing import Route, Target

log = logging.getLogger("anthropic_router")

DROPPED_HEADER = b"x-anthropic-router-dropped"


class _Prepared:
    """One target's upstream body and what the way back needs."""

    __slots__ = ("body", "dropped", "notes", "tool_names")

    def __init__(self, body: Any, dropped: list[str], notes: list[str], tool_names: Any) -> None:
        self.body, self.dropped, self.notes, self.tool_names = body, dropped, notes, tool_names


class MessagesRelay:
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
