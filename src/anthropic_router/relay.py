"""The one exchange seam: an Anthropic Messages request in, routing, retries and fallbacks,
the Message (or its events as they come) out. Nothing here knows ASGI.

`Relay.run(call)` is what the HTTP handler, message batches, the response cache and the
server-tool loop all call. Wrappers take a `Relay` and return one (like httpx transports),
so a batch request, a cache replay and a tool-loop turn are the same code path as an
interactive request.

Targets are tried in turn: retries within a target, fallback to the next while nothing has
reached the client. For a stream, "reached the client" starts with the first event, so a
stream falls back only while it is being opened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from anthropic_router.config import Settings
from anthropic_router.convert.common import anthropic_usage, has_usage
from anthropic_router.convert.passthrough import (
    AnthropicRelay,
    passthrough_message,
    to_anthropic_request,
)
from anthropic_router.convert.repair import ToolRepair
from anthropic_router.convert.request import to_openai_request
from anthropic_router.convert.response import to_anthropic_message
from anthropic_router.convert.sse import SSEDecoder
from anthropic_router.convert.stream import StreamTranslator, message_events
from anthropic_router.errors import ApiError
from anthropic_router.observability import Exchange
from anthropic_router.providers.base import JsonAsStream, UpstreamStream
from anthropic_router.providers.retry import with_retries
from anthropic_router.routing import Route, Target
from anthropic_router.tokens import estimate_input_tokens, estimate_usage

log = logging.getLogger("anthropic_router")

JSON = dict[str, Any]
Header = tuple[bytes, bytes]
Events = AsyncGenerator[list[JSON], None]

DROPPED_HEADER = b"x-anthropic-router-dropped"
ROUTE_HEADER = b"x-anthropic-router-route"  # the routing file's rule that chose the route
REPAIRED_HEADER = b"x-anthropic-router-repaired"


@dataclass(slots=True)
class Call:
    """One Anthropic Messages request to run, and the record it fills.

    `request` is the parsed, validated body; `stream` chooses the reply's form (a batch asks
    for a Message, an SSE client for events). `deadline` is a `time.monotonic()` instant;
    None means REQUEST_TIMEOUT from when the relay starts it."""

    request: JSON
    route: Route
    record: Exchange
    stream: bool = False
    client_headers: dict[str, str] = field(default_factory=dict)  # anthropic-version/-beta
    client_key: str | None = None  # FORWARD_CLIENT_KEY: the client's own OpenRouter key
    deadline: float | None = None
    # The response cache's instruction from the request headers: "use" (look up, store),
    # "refresh" (`cache-control: no-cache`: skip the lookup, store), "no-store" (neither).
    cache_mode: str = "use"

    def derive(self, **changes: Any) -> Call:
        """A copy with some fields changed (a tool-loop turn, a cache's fresh fetch)."""
        return dataclasses.replace(self, **changes)


@dataclass(slots=True)
class Reply:
    """What a relay answers: response headers beyond `request-id`, and either the Message
    or its events. Each item of `events` is the list of events one upstream read produced,
    to be written together; an error after the start is an `error` event, not an
    exception. Consumers must `aclose()` events they stop reading.

    `encoded`, when set, is the reply already rendered as the response body (JSON for a
    message, SSE for events: a cache hit); the handler sends it as is. A wrapper that
    changes the answer must set it back to None."""

    headers: list[Header]
    message: JSON | None = None
    events: Events | None = None
    encoded: bytes | None = None


class Relay(Protocol):
    async def run(self, call: Call) -> Reply:
        """The answer to `call`, or ApiError if none could be obtained before anything
        reached the client."""
        ...


class _Prepared:
    """One target's upstream body and what the way back needs."""

    __slots__ = ("body", "dropped", "notes", "tool_names")

    def __init__(self, body: Any, dropped: list[str], notes: list[str], tool_names: Any) -> None:
        self.body, self.dropped, self.notes, self.tool_names = body, dropped, notes, tool_names


class UpstreamRelay:
    """The innermost relay: the call's route, target by target, to the upstreams."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, call: Call) -> Reply:
        if call.deadline is None:
            call.deadline = time.monotonic() + self.settings.request_timeout
        return await _Attempt(self.settings, call).run()


class _Attempt:
    """One call's way through its targets."""

    def __init__(self, settings: Settings, call: Call) -> None:
        self.settings = settings
        self.call = call
        self.record = call.record
        self.deadline: float = call.deadline or time.monotonic() + settings.request_timeout
        self.stop_sequences = list(call.request.get("stop_sequences") or [])
        self.failures: list[str] = []

    async def run(self) -> Reply:
        targets = self.call.route.targets
        for position, target in enumerate(targets):
            self.record.upstream_model, self.record.backend = target.upstream_model, target.backend
            prepared = self._prepare(target)
            try:
                self.record.mark("convert")
                if self.call.stream:
                    return await self._open_stream(target, prepared)
                return await self._complete(target, prepared)
            except ApiError as raised:
                error = self._own_credentials(target, raised)
                last = position == len(targets) - 1
                if last or not error.retryable or time.monotonic() >= self.deadline:
                    raise error from None
                self._fell_back(target, error)
        raise ApiError("api_error", "the route has no targets")  # routing never builds one

    def _own_credentials(self, target: Target, error: ApiError) -> ApiError:
        """An upstream 401 (or a 403 about keys) for the router's own credentials is the
        operator's problem: a 401 would make Claude Code tell the user their key is invalid
        and ask them to log in again. Answer 502 and log it loudly; a forwarded client key
        keeps its 401."""
        if error.status not in (401, 403) or self._forwards_client_key(target):
            return error
        if error.status == 403 and not _CREDENTIAL_WORDS.search(error.message):
            return error  # content moderation, region, model access: the client's matter
        fields = {
            "request_id": self.record.request_id,
            "backend": target.backend,
            "upstream_status": error.status,
        }
        log.error(
            "the upstream rejected the router's own credentials; check the backend's key",
            extra={"fields": fields},
        )
        message = (
            f"the {target.backend} upstream rejected anthropic-router's credentials "
            f"(upstream status {error.status}); the router's operator must fix its key"
        )
        return ApiError("api_error", message, status=502, retryable=True)

    def _forwards_client_key(self, target: Target) -> bool:
        return self.call.client_key is not None and _takes_openrouter_key(target)

    def _prepare(self, target: Target) -> _Prepared:
        request = self.call.request
        if target.wire == "anthropic":
            body, report = to_anthropic_request(dict(request), target.options)
            return _Prepared(body, report.dropped_names, report.notes, {})
        conversion = to_openai_request(dict(request), target.options)
        report = conversion.report
        dropped = report.dropped_names
        # What the provider itself will not send (LiteLLM's drop_params).
        dropped += [n for n in target.provider.unsupported(conversion.body) if n not in dropped]
        return _Prepared(conversion.body, dropped, report.notes, conversion.tool_names)

    def _fell_back(self, target: Target, error: ApiError) -> None:
        self.failures.append(f"{target.backend}:{target.upstream_model} ({error.error_type})")
        self.record.fallback = " -> ".join(self.failures)
        fields = {"request_id": self.record.request_id, "failed": self.failures[-1]}
        log.warning("falling back to the next target", extra={"fields": fields})

    def _served(
        self, target: Target, prepared: _Prepared, repair: ToolRepair | None = None
    ) -> list[Header]:
        """Record which target served; the response headers say so too."""
        record = self.record
        record.upstream_model, record.backend = target.upstream_model, target.backend
        record.dropped = list(prepared.dropped)
        if prepared.notes:
            fields = {"request_id": record.request_id, "notes": prepared.notes}
            log.warning("conversion degraded", extra={"fields": fields})
        record.rule = self.call.route.rule
        served = [
            (b"x-anthropic-router-upstream-model", header_value(target.upstream_model)),
            (b"x-anthropic-router-backend", target.backend.encode()),
            (ROUTE_HEADER, header_value(record.rule or "default")),
        ]
        if record.dropped:
            served.append((DROPPED_HEADER, header_value(",".join(record.dropped))))
        if self.failures:
            served.append((b"x-anthropic-router-fallback", header_value(record.fallback or "")))
        if repair is not None and repair.repairs:
            served.append((REPAIRED_HEADER, header_value(",".join(repair.names))))
        return served

    def _on_retry(self, error: ApiError) -> None:
        self.record.retries += 1

    async def _retrying(self, attempt: Any) -> Any:
        try:
            async with asyncio.timeout_at(self.deadline):
                return await with_retries(
                    attempt,
                    max_retries=self.settings.upstream_max_retries,
                    deadline=self.deadline,
                    on_retry=self._on_retry,
                )
        except TimeoutError:
            raise ApiError(
                "timeout_error", "upstream did not answer within REQUEST_TIMEOUT"
            ) from None

    def _extra_headers(self, target: Target) -> dict[str, str]:
        headers = {"x-request-id": _upstream_request_id(self.record.request_id, target)}
        if self._forwards_client_key(target):
            # FORWARD_CLIENT_KEY: a client's key is its OpenRouter key, for OpenRouter only;
            # other backends (and fallbacks to them) use their own configured credentials.
            headers["Authorization"] = f"Bearer {self.call.client_key}"
        if target.wire == "anthropic":
            return {**self.call.client_headers, **headers}
        return headers

    async def _complete(self, target: Target, prepared: _Prepared) -> Reply:
        provider, body, extra = target.provider, prepared.body, self._extra_headers(target)
        completion = await self._retrying(lambda: provider.complete(body, extra))
        self.record.mark("upstream")
        repair = self._repair(target)
        message = self._message(target, prepared, completion, repair)
        self._estimate_missing(target, completion, message)
        self.record.stop_reason = message["stop_reason"]
        self.record.usage = message["usage"]
        self.record.cost_usd = _cost(completion.get("usage"))
        return Reply(self._served(target, prepared, repair), message=message)

    def _estimate_missing(self, target: Target, completion: Any, message: JSON) -> None:
        """An answer without usage (some local servers) gets the offline estimate, marked as
        one in the record and metrics, so context meters and ledgers do not read zero."""
        if target.wire == "anthropic" or has_usage(completion.get("usage")):
            return
        usage = self._estimate(target, _output_text(message))
        message["usage"] = {**message["usage"], **anthropic_usage(usage)}
        self.record.usage_estimated = True

    def _estimate(self, target: Target, output_text: str) -> JSON:
        return estimate_usage(self.call.request, target.upstream_model, output_text)

    def _repair(self, target: Target) -> ToolRepair | None:
        """TOOL_CALL_REPAIR: for translated routes (Claude behind a native route needs none)."""
        if not self.settings.tool_call_repair or target.wire == "anthropic":
            return None
        return ToolRepair.for_request(self.call.request)

    def _repaired(self, repair: ToolRepair | None) -> None:
        """What repair did goes to the record; inputs that failed their schema to the log
        (tool name, path and keyword only: values are message content)."""
        if repair is None:
            return
        self.record.repaired = repair.names
        self.record.invalid_tool_inputs = len(repair.invalid)
        if repair.invalid:
            fields = {"request_id": self.record.request_id, "invalid": repair.invalid}
            log.warning("tool input does not match its schema", extra={"fields": fields})

    def _message(
        self, target: Target, prepared: _Prepared, completion: Any, repair: ToolRepair | None
    ) -> JSON:
        if target.wire == "anthropic":
            return passthrough_message(completion, self.call.route.client_model)
        message = _to_message(
            completion,
            model=self.call.route.client_model,
            tool_names=prepared.tool_names,
            stop_sequences=self.stop_sequences,
            repair=repair,
        )
        self._repaired(repair)
        return message

    async def _open_stream(self, target: Target, prepared: _Prepared) -> Reply:
        provider, body, extra = target.provider, prepared.body, self._extra_headers(target)
        try:
            upstream = await self._retrying(lambda: provider.open_stream(body, extra))
        except JsonAsStream as answer:
            repair = self._repair(target)
            message = self._message(target, prepared, answer.completion, repair)
            self._estimate_missing(target, answer.completion, message)
            self.record.stop_reason = message["stop_reason"]
            self.record.usage = message["usage"]
            served = self._served(target, prepared, repair)
            return Reply(served, events=one_batch(message_events(message)))
        self.record.mark("upstream_headers")
        translator: Any
        if target.wire == "anthropic":
            translator = AnthropicRelay(model=self.call.route.client_model)
        else:
            translator = StreamTranslator(
                model=self.call.route.client_model,
                tool_names=prepared.tool_names,
                stop_sequences=self.stop_sequences,
                repair=self._repair(target),
                input_tokens=estimate_input_tokens(self.call.request),
                estimate=lambda text: self._estimate(target, text),
            )
        served = self._served(target, prepared)
        return Reply(served, events=self._events(upstream, translator))

    async def _events(self, upstream: UpstreamStream, translator: Any) -> Events:
        """Translated events, one list per upstream read, the closing events last. A failure
        after the start (timeout, a cut or malformed stream) ends in an `error` event."""
        try:
            opening = translator.start()
            if opening:  # the Anthropic relay waits for the upstream's own message_start
                yield opening
            decoder = SSEDecoder()
            # The stream bounds each read by REQUEST_TIMEOUT too: one timer for both.
            chunks = upstream.chunks(self.deadline).__aiter__()
            first = True
            while not translator.done:
                # One upstream read's events. Inline rather than a coroutine per read: this
                # loop runs for every relayed chunk. The stream bounds each read, so no bound
                # fires while the consumer is busy writing.
                events: list[JSON] = []
                try:
                    chunk = await chunks.__anext__()
                    for payload in decoder.feed(chunk):
                        events.extend(translator.feed_data(payload))
                except StopAsyncIteration:
                    for payload in decoder.flush():
                        events.extend(translator.feed_data(payload))
                    events.extend(translator.end_of_input())
                except ApiError as error:
                    events.extend(translator.fail(error))
                except ValueError as error:
                    message = f"upstream stream is malformed: {error}"
                    events.extend(translator.fail(ApiError("api_error", message)))
                if events:
                    if first:
                        self.record.mark("first_token")
                        first = False
                    yield events
        finally:
            await upstream.aclose()
            self._finished(translator)

    def _finished(self, translator: Any) -> None:
        record = self.record
        if translator.failed is not None:
            record.error_type = translator.failed.error_type
            record.error_message = translator.failed.message
        record.dropped.extend(translator.dropped)
        record.stop_reason = translator.stop_reason
        if isinstance(translator, StreamTranslator):
            # A stream's headers left before any repair: the record alone names them.
            self._repaired(translator.repair)
        if isinstance(translator, AnthropicRelay):
            record.usage = translator.anthropic_usage or None
        elif translator.usage is not None:
            record.usage = anthropic_usage(translator.usage)
            record.cost_usd = _cost(translator.usage)
            record.usage_estimated = translator.usage_estimated


def _upstream_request_id(request_id: str, target: Target) -> str:
    """The request id in the upstream's format: `req_<24 hex>`, or for servers that only
    take UUIDs the same digits as one (zero-padded), so logs still line up."""
    if target.options.capabilities.request_id_format != "uuid":
        return request_id
    digits = request_id.removeprefix("req_")
    try:
        return str(uuid.UUID(digits.ljust(32, "0")[:32]))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, request_id))


def _output_text(message: JSON) -> str:
    """What the model wrote, as the stream estimate sees it: text, thinking, tool input."""
    parts: list[str] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            parts.append(block.get("text") or "")
        elif kind == "thinking":
            parts.append(block.get("thinking") or "")
        elif kind == "tool_use":
            parts.append(orjson.dumps(block.get("input") or {}).decode())
    return "".join(parts)


async def one_batch(events: list[JSON]) -> Events:
    yield events


def _takes_openrouter_key(target: Target) -> bool:
    return target.backend == "openrouter" or (
        target.backend == "litellm" and target.upstream_model.startswith("openrouter/")
    )


def _to_message(completion: JSON, **kwargs: Any) -> JSON:
    """`to_anthropic_message`, with an upstream answer of an unexpected shape (a string where
    an object belongs, say) reported as a 502 instead of crashing the handler."""
    try:
        return to_anthropic_message(completion, **kwargs)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        message = f"upstream answered with an unexpected shape ({type(exc).__name__})"
        raise ApiError("api_error", message, status=502) from None


_HEADER_UNSAFE = re.compile(r"[^\x20-\x7e]")
_CREDENTIAL_WORDS = re.compile(r"key|auth|credential|token|unauthori[sz]ed", re.IGNORECASE)


def header_value(text: str) -> bytes:
    """Client-chosen text (model ids, field names) made safe for a response header."""
    return _HEADER_UNSAFE.sub("?", text)[:1024].encode("ascii")


def _cost(usage: Any) -> float | None:
    """OpenRouter reports the cost of a generation in `usage.cost` (USD)."""
    cost = usage.get("cost") if isinstance(usage, dict) else None
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
