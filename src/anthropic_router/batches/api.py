"""The six Message Batches endpoints (`/v1/messages/batches...`) and create-time validation.

Requests are checked by the same rules as `/v1/messages` before anything is stored, and no
upstream is called here: the runner (runner.py) does the work in the background.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from anthropic_router.batches import shapes, storage
from anthropic_router.errors import ApiError, invalid_request, not_found
from anthropic_router.http import Receive, Scope, Send, header, parse_json, read_body, send_json
from anthropic_router.observability import Exchange, key_id
from anthropic_router.store import Store, StoreError
from anthropic_router.wire.anthropic import parse_messages_request

if TYPE_CHECKING:
    from anthropic_router.app import App

log = logging.getLogger("anthropic_router")
JSON = dict[str, Any]
Headers = list[tuple[bytes, bytes]]
PREFIX = "/v1/messages/batches"
RESULTS_PAGE = 500  # rows per store read while streaming a results file
_SHOWN_ERRORS = 10  # in the message; `details.errors` lists up to _LISTED_ERRORS
_LISTED_ERRORS = 100
_PASSED_HEADERS = (b"anthropic-version", b"anthropic-beta")


def validate_requests(
    body: Any, max_size: int, resolve: Callable[[str], object]
) -> list[tuple[str, JSON]]:
    """The batch's (custom_id, params) pairs, or one `invalid_request_error` naming every
    bad request by index and custom_id. `resolve` is the router's (it may refuse a model)."""
    if not isinstance(body, dict):
        raise invalid_request("request body must be a JSON object")
    requests = body.get("requests")
    if not isinstance(requests, list):
        raise invalid_request("requests: Field required (a list of {custom_id, params})")
    if not 1 <= len(requests) <= max_size:
        raise invalid_request(
            f"requests: a batch holds 1 to {max_size} requests (BATCH_MAX_SIZE), "
            f"got {len(requests)}"
        )
    problems: list[JSON] = []
    seen: set[str] = set()
    valid: list[tuple[str, JSON]] = []
    for index, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        message = _check_item(item, seen, resolve)
        if message is None:
            valid.append((item["custom_id"], item["params"]))
        else:
            problems.append({"index": index, "custom_id": custom_id, "message": message})
        if isinstance(custom_id, str):
            seen.add(custom_id)
    if problems:
        raise _invalid_batch(problems)
    return valid


def _check_item(item: Any, seen: set[str], resolve: Callable[[str], object]) -> str | None:
    """What is wrong with one entry of `requests`, or None."""
    if not isinstance(item, dict):
        return "Input should be an object with custom_id and params"
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not shapes.CUSTOM_ID.match(custom_id):
        return "custom_id: 1 to 64 characters of A-Z, a-z, 0-9, _ and -"
    if custom_id in seen:
        return f"custom_id: {custom_id!r} is used more than once in this batch"
    params = item.get("params")
    if not isinstance(params, dict):
        return "params: Input should be an object (the body of a /v1/messages request)"
    if params.get("stream") not in (None, False):
        return "params.stream: streaming is not supported in a batch"
    try:
        request = parse_messages_request(params)
        resolve(request["model"])
    except ApiError as error:
        return f"params.{error.message}"
    return None


def _invalid_batch(problems: list[JSON]) -> ApiError:
    shown = "; ".join(
        f"requests.{p['index']} (custom_id {p['custom_id']!r}): {p['message']}"
        for p in problems[:_SHOWN_ERRORS]
    )
    more = len(problems) - _SHOWN_ERRORS
    suffix = f"; and {more} more" if more > 0 else ""
    return ApiError(
        "invalid_request_error",
        f"{len(problems)} invalid request(s) in the batch: {shown}{suffix}",
        details={"errors": problems[:_LISTED_ERRORS]},
    )


async def handle(
    app: App,
    scope: Scope,
    receive: Receive,
    send: Send,
    exchange: Exchange,
    headers: Headers,
    client_key: str | None,
) -> None:
    """Dispatch one `/v1/messages/batches...` request (path already without any prefix)."""
    if not app.settings.batch_processing_enable or app.store is None:
        raise not_found("message batches are disabled on this router (BATCH_PROCESSING_ENABLE)")
    try:
        await _route(app, scope, receive, send, headers, client_key, exchange)
    except StoreError as error:
        log.warning("batch store unavailable", extra={"fields": {"error": str(error)}})
        raise ApiError(
            "api_error", "the batch store is unavailable; try again", status=503, retry_after="5"
        ) from None
    exchange.status = 200


async def _route(
    app: App,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: Headers,
    client_key: str | None,
    exchange: Exchange,
) -> None:
    method = scope["method"]
    path = _path(scope)
    parts = path.removeprefix(PREFIX).strip("/").split("/") if path != PREFIX else []
    owner = key_id(client_key)
    # Batches are private to their key when clients hold different keys.
    several = len(app.settings.client_keys) > 1 or app.settings.keys_enable
    visible_to = owner if several else None
    if not parts and method == "POST":
        await _create(app, scope, receive, send, headers, owner, exchange)
    elif not parts and method == "GET":
        await _list(app, scope, send, headers, visible_to)
    elif len(parts) == 1 and method == "GET":
        await _send_batch(app, scope, parts[0], visible_to, send, headers)
    elif len(parts) == 1 and method == "DELETE":
        await _delete(app, parts[0], send, headers, visible_to)
    elif len(parts) == 2 and parts[1] == "cancel" and method == "POST":
        await _cancel(app, scope, parts[0], send, headers, visible_to)
    elif len(parts) == 2 and parts[1] == "results" and method == "GET":
        await _results(app, parts[0], send, headers, visible_to)
    else:
        raise not_found(f"no route for {method} {scope['path']}")


def _path(scope: Scope) -> str:
    path: str = scope["path"].rstrip("/")
    start = path.find("/v1/")
    return path[start:] if start > 0 else path


def _base_url(scope: Scope) -> str:
    """Where the client reached us, with any path prefix before /v1/ (Claude Code style)."""
    host = header(scope, b"host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    path: str = scope["path"]
    prefix = path[: path.find("/v1/")] if path.find("/v1/") > 0 else ""
    return f"{scope.get('scheme', 'http')}://{host}{prefix}"


async def _found(app: App, batch_id: str, owner: str | None) -> JSON:
    row = None
    if shapes.BATCH_ID.match(batch_id):
        row = await storage.get_batch(_store(app), batch_id, owner)
    if row is None:
        raise not_found(f"message batch {batch_id!r} not found")
    return row


async def _send_batch(
    app: App, scope: Scope, batch_id: str, owner: str | None, send: Send, headers: Headers
) -> None:
    """The batch as it stands now, as the client sees it."""
    row = await _found(app, batch_id, owner)
    await send_json(send, 200, shapes.message_batch(row, _base_url(scope)), headers)


def _wake_runner(app: App) -> None:
    # A new or canceled batch is picked up now rather than at the next poll.
    if app.batch_runner is not None:
        app.batch_runner.wake()


def _store(app: App) -> Store:
    if app.store is None:  # checked in handle(); the store closes only at shutdown
        raise not_found("message batches are disabled on this router (BATCH_PROCESSING_ENABLE)")
    return app.store


async def _create(
    app: App,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: Headers,
    owner: str | None,
    exchange: Exchange,
) -> None:
    settings = app.settings
    # The body counts against MAX_INFLIGHT_BODY_BYTES like any other while it is read.
    raw = await read_body(receive, settings.batch_max_bytes, app.body_budget)
    try:
        body = parse_json(raw)
    finally:
        app.body_budget.give(len(raw))
    del raw
    requests = validate_requests(body, settings.batch_max_size, app.router.resolve)
    if app.gateway is not None:
        # A store key's limits: every model of the batch allowed, budget left, rates not
        # exceeded (checked once per model now; each request's tokens count as it runs).
        for model in sorted({str(params["model"]) for _, params in requests}):
            headers = [
                *headers,
                *await app.gateway.admit(exchange, app.router.resolve(model), count=False),
            ]
    now = time.time()
    passed = {name.decode(): v for name in _PASSED_HEADERS if (v := header(scope, name))}
    batch_id = shapes.new_batch_id()
    batch: JSON = {
        "id": batch_id,
        "owner": owner,
        "headers": orjson.dumps(passed).decode(),
        "created_at": now,
        "expires_at": now + settings.batch_expiry_seconds,
    }
    rows = [(custom_id, orjson.dumps(params).decode()) for custom_id, params in requests]
    del body, requests  # a 256 MB batch: let the parsed copy go before the insert
    await storage.insert_batch(_store(app), batch, rows)
    _wake_runner(app)
    await _send_batch(app, scope, batch_id, None, send, headers)


async def _list(app: App, scope: Scope, send: Send, headers: Headers, owner: str | None) -> None:
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise invalid_request("limit: an integer from 1 to 1000")
    cursors: dict[str, JSON] = {}
    for name in ("after_id", "before_id"):
        if query.get(name):
            try:
                cursors[name.removesuffix("_id")] = await _found(app, query[name], owner)
            except ApiError:
                raise invalid_request(f"{name}: no message batch {query[name]!r}") from None
    rows, has_more = await storage.list_batches(
        _store(app), owner, limit, cursors.get("after"), cursors.get("before")
    )
    base = _base_url(scope)
    page = shapes.page([shapes.message_batch(row, base) for row in rows], has_more)
    await send_json(send, 200, page, headers)


async def _cancel(
    app: App, scope: Scope, batch_id: str, send: Send, headers: Headers, owner: str | None
) -> None:
    await _found(app, batch_id, owner)
    await storage.cancel_batch(_store(app), batch_id, time.time())
    _wake_runner(app)
    await _send_batch(app, scope, batch_id, owner, send, headers)


async def _delete(app: App, batch_id: str, send: Send, headers: Headers, owner: str | None) -> None:
    row = await _found(app, batch_id, owner)
    if row["status"] != "ended":
        raise invalid_request(
            f"message batch {batch_id} is {row['status']}: only a batch that has ended can be "
            "deleted (cancel it first)"
        )
    await storage.delete_batch(_store(app), batch_id)
    await send_json(send, 200, shapes.deleted_batch(batch_id), headers)


async def _results(
    app: App, batch_id: str, send: Send, headers: Headers, owner: str | None
) -> None:
    row = await _found(app, batch_id, owner)
    if row["status"] != "ended":
        raise not_found(f"message batch {batch_id} has no results yet: it is {row['status']}")
    if row["archived_at"] is not None:
        raise not_found(f"the results of message batch {batch_id} were archived and removed")
    start = [(b"content-type", b"application/x-jsonl"), *headers]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    async for rows in storage.result_rows(_store(app), batch_id, RESULTS_PAGE):
        chunk = b"".join(shapes.result_line(r["custom_id"], r["state"], r["result"]) for r in rows)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
