"""Tool ids and tool names: the two identifiers whose rules differ between the APIs."""

from __future__ import annotations

import hashlib
import re
import secrets

_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_NAME_OK = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

MAX_FUNCTION_NAME = 64


def new_tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def to_anthropic_tool_id(upstream_id: str | None) -> str:
    """Anthropic requires `^[a-zA-Z0-9_-]+$`; upstreams send `call_…`, `functions.Bash:0`, ``."""
    if not upstream_id:
        return new_tool_id()
    return _ID_UNSAFE.sub("_", upstream_id)


def to_upstream_tool_name(name: str) -> str:
    """OpenAI function names are `^[a-zA-Z0-9_-]{1,64}$`; Anthropic allows 128 characters.

    Longer or unsafe names become a readable prefix plus a hash of the original, which is
    deterministic, so the client's history maps to the same name on every turn.
    """
    if _NAME_OK.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    safe = _ID_UNSAFE.sub("_", name)[: MAX_FUNCTION_NAME - 9] or "tool"
    return f"{safe}_{digest}"
