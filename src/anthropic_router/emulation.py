"""Anthropic request features the router does itself, as relays that wrap a relay:

- `ContextRelay`: `context_management` edits applied before conversion (convert/context.py),
  `compact_20260112` summaries written by a call to the COMPACTION_MODEL route through the
  same seam, and `context_management.applied_edits` plus the `compaction` block in the reply.
- `FallbackRelay`: the request's `fallbacks` list tried after the requested model, each entry
  through its own route (with that route's targets, retries and fallbacks).

Both pass a call without their field through untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from anthropic_router.config import Settings
from anthropic_router.convert import context, fallbacks
from anthropic_router.convert.ids import new_message_id
from anthropic_router.errors import ApiError
from anthropic_router.observability import Exchange, log_exchange
from anthropic_router.relay import Call, Events, Header, Relay, Reply, header_value
from anthropic_router.routing import Route, Router
from anthropic_router.tokens import count_tokens

log = logging.getLogger("anthropic_router")

JSON = dict[str, Any]

EDITS_HEADER = b"x-anthropic-router-context-edits"
FALLBACK_HEADER = b"x-anthropic-router-fallback"

# Failures another model may not have; the rest (a bad key, a malformed request) it would too.
_SAME_FOR_EVERY_MODEL = frozenset({"authentication_error", "permission_error"})


def emulating(inner: Relay, settings: Settings, router: Router) -> Relay:
    """The relay stack of /v1/messages: context edits outside, so a fallback model gets
    the edited conversation and the summary is written once."""
    return ContextRelay(FallbackRelay(inner, settings, router), settings, router)


# -- context management ----------------------------------------------------------------------


class ContextRelay:
    def __init__(self, inner: Relay, settings: Settings, router: Router) -> None:
        self.inner, self.settings, self.router = inner, settings, router

    async def run(self, call: Call) -> Reply:
        request = call.request
        if call.route.targets[0].wire == "anthropic":
            return await self.inner.run(call)  # Claude's own API does context management
        defaults = self.settings.context_management_default_edits
        plain = not isinstance(request.get("context_management"), dict) and not defaults
        if plain and not _has_compaction(request["messages"]):
            return await self.inner.run(call)
        if defaults:
            call = call.derive(request=context.with_default_edits(request, defaults))
            request = call.request
        if call.deadline is None:  # the summary and the answer share REQUEST_TIMEOUT
            call.deadline = time.monotonic() + self.settings.request_timeout
        unknown = context.unknown_edits(request)
        if unknown:
            call.record.dropped.extend(f"context_management:{name}" for name in unknown)
        edited, applied, tokens = await self._edit(call)
        call.record.context_edits = [edit["type"] for edit in applied]
        compaction = _Compaction()
        edit = context.compaction_edit(request)
        if edit is not None and context.compaction_due(edit, tokens):
            await self._summarise(call, edited, edit, compaction)
            if compaction.summary is not None and edit.get("pause_after_compaction"):
                return self._paused(call, compaction, applied)
            if compaction.summary is not None:
                edited = context.compacted_request(edited, compaction.summary)
        reply = await self.inner.run(call.derive(request=edited))
        asked = isinstance(call.request.get("context_management"), dict)
        reported = applied if asked else None
        return _decorate(reply, reported, compaction)

    async def _edit(self, call: Call) -> tuple[JSON, list[JSON], int]:
        """The edits; with an input-token trigger, off the event loop (counting a long
        conversation takes tens of milliseconds). Cleared tokens are estimated from
        characters at the prompt's own tokens-per-character ratio: tokenizing every
        cleared result again would double the cost for a number that is an estimate."""
        request = call.request
        triggers = context.input_token_triggers(request)
        if not triggers:
            edited, applied = context.apply_context_edits(request, 0, _estimate(_CHAR_RATIO))
            return edited, applied, 0
        return await asyncio.to_thread(_edit_counted, request, call.route.upstream_model, triggers)

    async def _summarise(self, call: Call, request: JSON, edit: JSON, into: _Compaction) -> None:
        """The summary, from the COMPACTION_MODEL route through the same seam. A failure
        leaves the conversation whole and says so with a null-content compaction block."""
        route = self.router.resolve(self.settings.compaction_model or self.settings.small_model)
        body = context.summary_request(request, edit, route.client_model)
        # Its own record (and log line, and metrics under this path): the summary's tokens
        # and cost are real, and the client's record keeps the main answer's.
        record = Exchange(call.record.request_id, "POST", "/v1/messages#compaction")
        record.client_model, record.upstream_model = route.client_model, route.upstream_model
        summary_call = Call(
            body,
            route,
            record,
            client_headers=call.client_headers,
            client_key=call.client_key,
            deadline=call.deadline,
        )
        call.record.context_edits.append(context.COMPACT)
        into.happened = True
        try:
            reply = await self.inner.run(summary_call)
            record.status = 200
        except ApiError as error:
            record.status, record.error_type = error.status, error.error_type
            fields = {"request_id": call.record.request_id, "error": error.error_type}
            log.warning("compaction summary failed", extra={"fields": fields})
            return
        finally:
            log_exchange(record, self.settings.metrics_enable)
        message = reply.message or {}
        into.summary = context.summary_text(message)
        into.usage = message.get("usage")

    def _paused(self, call: Call, compaction: _Compaction, applied: list[JSON]) -> Reply:
        """`pause_after_compaction`: the compaction block alone, stop_reason `compaction`."""
        usage = context.iteration("compaction", compaction.usage)
        usage.pop("type")
        message: JSON = {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": call.route.client_model,
            "content": [context.compaction_block(compaction.summary)],
            "stop_reason": "compaction",
            "stop_sequence": None,
            "usage": {**usage, "iterations": [context.iteration("compaction", compaction.usage)]},
            "context_management": {"applied_edits": applied},
        }
        call.record.stop_reason = "compaction"
        headers = _edit_headers(call.record)
        if not call.stream:
            return Reply(headers, message=message)
        return Reply(headers, events=_one_batch(_paused_events(message, compaction.summary)))


# Tokens per character of English prose and code (about 4 characters a token), for
# estimates when the prompt was not counted.
_CHAR_RATIO = 0.25


def _estimate(ratio: float) -> Callable[[str], int]:
    return lambda text: round(len(text) * ratio)


def _edit_counted(request: JSON, model: str, triggers: list[int]) -> tuple[JSON, list[JSON], int]:
    # UTF-8 bytes bound the token count from above (a token is at least one byte): a prompt
    # of fewer bytes than the lowest trigger is under every trigger, and is not counted.
    size = len(orjson.dumps(request))
    if size < min(triggers):
        tokens, ratio = size, _CHAR_RATIO
    else:
        tokens = count_tokens(request, model)
        ratio = tokens / max(size, 1)
    edited, applied = context.apply_context_edits(request, tokens, _estimate(ratio))
    return edited, applied, tokens - sum(e["cleared_input_tokens"] for e in applied)


def count_with_edits(request: JSON, model: str, defaults: list[JSON], native: bool = False) -> JSON:
    """`count_tokens` as Anthropic answers it with `context_management`: the count after the
    edits, and `context_management.original_input_tokens` before them. `native`: a Claude
    route, which edits for itself (the count is of the request as sent)."""
    if native:
        return {"input_tokens": count_tokens(request, model)}
    if defaults:
        request = context.with_default_edits(request, defaults)
    asked = isinstance(request.get("context_management"), dict)
    if not asked and not _has_compaction(request["messages"]):
        return {"input_tokens": count_tokens(request, model)}
    original = count_tokens(request, model)
    size = max(len(orjson.dumps(request)), 1)
    edited, _ = context.apply_context_edits(request, original, _estimate(original / size))
    answer: JSON = {"input_tokens": count_tokens(edited, model)}
    if asked:
        answer["context_management"] = {"original_input_tokens": original}
    return answer


class _Compaction:
    __slots__ = ("happened", "summary", "usage")

    def __init__(self) -> None:
        self.happened = False
        self.summary: str | None = None
        self.usage: JSON | None = None


def _has_compaction(messages: list[JSON]) -> bool:
    for message in messages:
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        if any(block.get("type") == "compaction" for block in content):
            return True
    return False


def _edit_headers(record: Exchange) -> list[Header]:
    if not record.context_edits:
        return []
    return [(EDITS_HEADER, header_value(",".join(record.context_edits)))]


def _decorate(reply: Reply, applied: list[JSON] | None, compaction: _Compaction) -> Reply:
    """The reply as Anthropic shapes it: the compaction block first, `context_management`
    and the compaction's `usage.iterations` entry with the final usage."""
    headers = [*reply.headers]
    if applied or compaction.happened:
        names = [e["type"] for e in applied or []] + (
            [context.COMPACT] if compaction.happened else []
        )
        headers.append((EDITS_HEADER, header_value(",".join(names))))
    if reply.message is not None:
        return Reply(headers, message=_decorated_message(reply.message, applied, compaction))
    assert reply.events is not None
    return Reply(headers, events=_decorated_events(reply.events, applied, compaction))


def _decorated_message(message: JSON, applied: list[JSON] | None, compaction: _Compaction) -> JSON:
    message = dict(message)
    if compaction.happened:
        message["content"] = [context.compaction_block(compaction.summary), *message["content"]]
        message["usage"] = _with_iterations(message["usage"], compaction)
    if applied is not None:
        message["context_management"] = {"applied_edits": applied}
    return message


def _with_iterations(usage: JSON, compaction: _Compaction) -> JSON:
    iterations = [
        context.iteration("compaction", compaction.usage),
        context.iteration("message", usage),
    ]
    return {**usage, "iterations": iterations}


async def _decorated_events(
    events: Events, applied: list[JSON] | None, compaction: _Compaction
) -> Events:
    shift = 1 if compaction.happened else 0
    try:
        async for batch in events:
            out: list[JSON] = []
            for event in batch:
                kind = event.get("type")
                if shift and kind in (
                    "content_block_start",
                    "content_block_delta",
                    "content_block_stop",
                ):
                    event = {**event, "index": event["index"] + shift}
                elif kind == "message_delta":
                    event = dict(event)
                    if compaction.happened:
                        event["usage"] = _with_iterations(event.get("usage") or {}, compaction)
                    if applied is not None:
                        event["context_management"] = {"applied_edits": applied}
                out.append(event)
                if kind == "message_start" and compaction.happened:
                    out.extend(context.compaction_events(compaction.summary))
            yield out
    finally:
        await events.aclose()


def _paused_events(message: JSON, summary: str | None) -> list[JSON]:
    zero = {
        k: 0
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    }
    start = {**message, "content": [], "stop_reason": None, "usage": zero}
    start.pop("context_management")
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "compaction", "stop_sequence": None},
        "usage": message["usage"],
        "context_management": message["context_management"],
    }
    return [
        {"type": "message_start", "message": start},
        *context.compaction_events(summary),
        delta,
        {"type": "message_stop"},
    ]


async def _one_batch(events: list[JSON]) -> Events:
    yield events


# -- request fallbacks -----------------------------------------------------------------------


class FallbackRelay:
    def __init__(self, inner: Relay, settings: Settings, router: Router) -> None:
        self.inner, self.settings, self.router = inner, settings, router

    async def run(self, call: Call) -> Reply:
        if "fallbacks" not in call.request:
            return await self.inner.run(call)
        entries = fallbacks.fallback_entries(call.request)
        base = call.derive(request=fallbacks.without_fallbacks(call.request))
        if not entries:  # "default": the route's own fallback chain is the server's default
            return await self.inner.run(base)
        if call.deadline is None:  # one deadline for the whole chain, as for one route
            call.deadline = time.monotonic() + self.settings.request_timeout
        attempts = [base.derive(deadline=call.deadline)] + [
            call.derive(
                route=self.router.resolve(e["model"]),
                request=fallbacks.fallback_request(call.request, e),
            )
            for e in entries
        ]
        return await _Chain(self.inner, call, attempts).run()


class _Chain:
    """One call's way through the requested model and its fallback models."""

    def __init__(self, inner: Relay, call: Call, attempts: list[Call]) -> None:
        self.inner, self.call, self.attempts = inner, call, attempts
        self.failures: list[str] = []
        self.declined: list[JSON] = []  # content of models that refused, and the markers

    async def run(self) -> Reply:
        for position, attempt in enumerate(self.attempts):
            last = position == len(self.attempts) - 1
            try:
                reply = await self.inner.run(attempt)
            except ApiError as error:
                if last or not self._worth_another(error):
                    raise
                self._failed(attempt.route, error.error_type)
                continue
            message = reply.message
            if message is not None and message.get("stop_reason") == "refusal" and not last:
                # Anthropic's trigger for fallbacks: keep what the model said, mark the hop.
                self.declined += message["content"]
                following = self.attempts[position + 1].route.client_model
                self.declined.append(
                    fallbacks.fallback_block(attempt.route.client_model, following)
                )
                self._failed(attempt.route, "refusal")
                continue
            return self._served(reply, attempt.route, position)
        raise ApiError("api_error", "no fallback model answered")  # the loop always returns

    def _worth_another(self, error: ApiError) -> bool:
        if error.error_type in _SAME_FOR_EVERY_MODEL:
            return False
        if error.error_type == "invalid_request_error":  # a longer context may fit elsewhere
            return "too long" in error.message or "context" in error.message
        return time.monotonic() < (self.call.deadline or 0)

    def _failed(self, route: Route, why: str) -> None:
        self.failures.append(f"{route.client_model} ({why})")
        fields = {"request_id": self.call.record.request_id, "failed": self.failures[-1]}
        log.warning("falling back to the next requested model", extra={"fields": fields})

    def _served(self, reply: Reply, route: Route, position: int) -> Reply:
        if position == 0:
            return reply
        record = self.call.record
        chain = " -> ".join([*self.failures, route.client_model])
        record.fallback = f"{chain}; {record.fallback}" if record.fallback else chain
        headers = [h for h in reply.headers if h[0] != FALLBACK_HEADER]
        headers.append((FALLBACK_HEADER, header_value(record.fallback)))
        if reply.message is None:
            return Reply(headers, events=reply.events)
        message = dict(reply.message)
        message["content"] = [*self.declined, *message["content"]]
        usage = message["usage"]
        fallback = context.iteration("fallback_message", usage, model=route.client_model)
        message["usage"] = {**usage, "iterations": [*usage.get("iterations", []), fallback]}
        return Reply(headers, message=message)
