"""`POST /v1/messages` and `/v1/messages/count_tokens`: read and check the request, route it,
admit it (keys, limits), run it through the relay and render the reply; the client going
away cancels the work. Functions of the `App` (app.py), which dispatches to them."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from anthropic_router.cache.key import cache_mode
from anthropic_router.emulation import count_with_edits
from anthropic_router.errors import ApiError
from anthropic_router.http import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    parse_json,
    read_body,
    send_json,
)
from anthropic_router.observability import Exchange, body_for_log
from anthropic_router.relay import Call
from anthropic_router.render import send_reply
from anthropic_router.wire.anthropic import parse_messages_request

if TYPE_CHECKING:
    from anthropic_router.app import App

log = logging.getLogger("anthropic_router")


async def read_request(app: App, receive: Receive, exchange: Exchange, **checks: Any) -> Any:
    raw = await read_body(receive, app.settings.max_request_body, app.body_budget)
    try:
        body = parse_json(raw)
    finally:
        app.body_budget.give(len(raw))  # parsed (or refused): the raw bytes are done
    exchange.mark("read")
    if app.settings.log_bodies:
        fields = {"request_id": exchange.request_id, "body": body_for_log(body)}
        log.info("request body", extra={"fields": fields})
    return parse_messages_request(body, **checks)


async def count_tokens(
    app: App, receive: Receive, send: Send, exchange: Exchange, headers: list[tuple[bytes, bytes]]
) -> None:
    request = await read_request(app, receive, exchange, require_max_tokens=False)
    route = app.router.resolve(request["model"])
    exchange.client_model, exchange.upstream_model = route.client_model, route.upstream_model
    if app.gateway is not None:  # a store key's model, budget and rates; not counted
        headers += await app.gateway.admit(exchange, route, count=False)
    # Tokenising an 80 KB Claude Code request takes milliseconds: keep it off the loop.
    defaults = app.settings.context_management_default_edits
    native = route.targets[0].wire == "anthropic"
    counted = await asyncio.to_thread(
        count_with_edits, dict(request), route.upstream_model, defaults, native
    )
    await send_json(send, 200, counted, headers)
    exchange.status = 200


async def messages(
    app: App,
    receive: Receive,
    send: Send,
    exchange: Exchange,
    headers: list[tuple[bytes, bytes]],
    client_key: str | None,
    scope: Scope,
) -> None:
    if app.active >= app.settings.max_concurrent_requests:
        # Shed load at once rather than queue without bound; clients retry 529s.
        raise ApiError("overloaded_error", "too many concurrent requests", retry_after="1")
    app.active += 1
    try:
        call = await _call_for(app, receive, exchange, headers, client_key, scope)
        await _until_disconnect(_answer(app, call, send, headers), receive)
    finally:
        app.active -= 1


async def _call_for(
    app: App,
    receive: Receive,
    exchange: Exchange,
    headers: list[tuple[bytes, bytes]],
    client_key: str | None,
    scope: Scope,
) -> Call:
    """The request read, checked, routed and admitted (a store key's headers join
    `headers`), as the Call the relay runs."""
    betas = header(scope, b"anthropic-beta") or ""
    request = await read_request(
        app, receive, exchange, interleaved_thinking="interleaved-thinking" in betas
    )
    _refuse_thread_continuation(request)
    route = app.router.route(request)  # task rules first (rules.py), then the model
    exchange.client_model, exchange.route_reason = route.client_model, route.reason
    exchange.stream = bool(request.get("stream"))
    if app.gateway is not None:  # a store key's model, budget and rates
        headers += await app.gateway.admit(exchange, route)
    call = Call(
        request,
        route,
        exchange,
        stream=exchange.stream,
        client_headers=_anthropic_headers(scope),
    )
    if app.response_cache:
        call.cache_mode = cache_mode(
            header(scope, b"cache-control"), header(scope, b"x-anthropic-router-cache")
        )
    if client_key and app.settings.forward_client_key and exchange.key_name is None:
        # Documented opt-in: with no OPENROUTER_API_KEY, each client pays with its own key.
        call.client_key = client_key
    return call


async def _answer(app: App, call: Call, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    reply = await app.relay.run(call)
    ping = app.settings.stream_ping_interval
    await send_reply(send, reply, headers, call.record, ping, app.drain)


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
