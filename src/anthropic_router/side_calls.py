"""Claude Code's side calls that need no model, answered locally (`LOCAL_SIDE_CALLS=true`).

Claude Code sends `max_tokens: 1` requests whose answer it never reads as text: the check of a
model chosen with `/model` (`"Hi"`), the quota probe (`"quota"`), and the token-count fallback
when `count_tokens` is missing (it reads `usage.input_tokens`). Each would cost an upstream
call and its input tokens. The local answer is a complete Message with the input tokens counted
by the offline tokenizer, so the usage Claude Code reads is still right.

`SideCallRelay` wraps the exchange seam: a side call never reaches the relay it wraps, and is
recorded like any exchange (backend `local`, its usage).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from anthropic_router.convert.ids import new_message_id
from anthropic_router.convert.stream import message_events
from anthropic_router.relay import Call, Relay, Reply, one_batch
from anthropic_router.tokens import count_tokens

JSON = dict[str, Any]

LOCAL_BACKEND = "local"  # the exchange record's `backend` for an answer made here


def is_side_call(request: Mapping[str, Any]) -> bool:
    """A request only a probe sends: one output token at most. Any client's `max_tokens: 1`
    request qualifies, which is why the setting is off by default (docs/02)."""
    max_tokens = request.get("max_tokens")
    return isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens == 1


def local_message(request: Mapping[str, Any], input_tokens: int, message_id: str) -> JSON:
    """The answer: no content, stopped by `max_tokens`, nothing generated. Empty content is
    what the API returns when the limit is hit before any text; it is never replayed."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": str(request.get("model", "")),
        "content": [],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


class SideCallRelay:
    """LOCAL_SIDE_CALLS=true: side calls answered here, everything else passed to `inner`."""

    def __init__(self, inner: Relay) -> None:
        self.inner = inner

    async def run(self, call: Call) -> Reply:
        if not is_side_call(call.request):
            return await self.inner.run(call)
        # The tokenizer of the route's upstream family, as for count_tokens; a few ms for a
        # big request, so off the event loop.
        model = call.route.upstream_model
        tokens = await asyncio.to_thread(count_tokens, dict(call.request), model)
        message = local_message(call.request, tokens, new_message_id())
        record = call.record
        record.backend, record.upstream_model = LOCAL_BACKEND, None
        record.route_reason = "local side call"
        record.usage, record.stop_reason = message["usage"], message["stop_reason"]
        headers = [(b"x-anthropic-router-backend", LOCAL_BACKEND.encode())]
        if call.stream:
            return Reply(headers, events=one_batch(message_events(message)))
        return Reply(headers, message=message)
