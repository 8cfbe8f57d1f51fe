"""Claude Code's side calls that need no model, answered locally (`LOCAL_SIDE_CALLS=true`).

Claude Code sends `max_tokens: 1` requests whose answer it never reads as text: the check of a
model chosen with `/model` (`"Hi"`), the quota probe (`"quota"`), and the token-count fallback
when `count_tokens` is missing (it reads `usage.input_tokens`). Each would cost an upstream
call and its input tokens. The local answer is a complete Message with the input tokens counted
by the offline tokenizer, so the usage Claude Code reads is still right. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
