"""The exchange seam driven in process: a `Router` on a loopback upstream, and the `Call` a
`/v1/messages` request would make (tests of the relay, the cache and its single flight)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anthropic_router.config import Settings
from anthropic_router.observability import Exchange, new_request_id
from anthropic_router.relay import Call
from anthropic_router.routing import Router
from anthropic_router.wire.anthropic import parse_messages_request

UPSTREAM_KEY = "test-upstream-key-0000"  # pragma: allowlist secret


@asynccontextmanager
async def open_router(base_url: str) -> AsyncIterator[Router]:
    """A Router on OpenRouter at `base_url`, its providers open until the block ends."""
    settings = Settings(
        _env_file=None, openrouter_api_key=UPSTREAM_KEY, openrouter_base_url=base_url
    )
    router = Router(settings)
    for provider in router.providers():
        provider.open()
    try:
        yield router
    finally:
        for provider in router.providers():
            await provider.aclose()


def messages_call(router: Router, stream: bool, **body: Any) -> Call:
    """The Call of a small `/v1/messages` request (`body` overrides or adds fields)."""
    request = parse_messages_request(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
            **body,
        }
    )
    record = Exchange(new_request_id(), "POST", "/v1/messages")
    return Call(request, router.resolve(request["model"]), record, stream=stream)
