"""`GET /ui`: the status page, behind ADMIN_API_KEY (off, 404, when it is unset).

Server-rendered HTML, one small script (static/app.js) that polls `/ui/api/stats` every
two seconds, and uPlot (static/, MIT, vendored: no CDN, no build step) for the charts.

Safe by construction: every value is escaped (html.escape here, `textContent` in the
script); a strict Content-Security-Policy allows only the package's own script and styles;
the session is a signed cookie (HMAC of ADMIN_API_KEY, so every instance accepts it) that
is HttpOnly and SameSite=Strict; the page changes nothing but the session, and logging out
is a POST carrying a token derived from the session (CSRF), like the login form is checked
against the request's Origin.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from anthropic_router.errors import ApiError, not_found
from anthropic_router.http import Receive, Scope, Send, header, read_body, send_bytes, send_json
from anthropic_router.ui.data import stats

SESSION_COOKIE = "ar_session"
SESSION_SECONDS = 12 * 3600
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}


async def serve_ui(app: Any, scope: Scope, receive: Receive, send: Send, path: str) -> bool:
    admin = app.settings.admin_api_key
    if admin is None:
        raise not_found(f"no route for {scope['method']} {scope['path']}")
    secret = admin.get_secret_value().encode()
    method = scope["method"]
    if path.startswith("/ui/static/") and method == "GET":
        await _static(send, path.removeprefix("/ui/static/"))
    elif path == "/ui/login" and method == "POST":
        await _login(scope, receive, send, secret)
    elif path == "/ui/logout" and method == "POST":
        await _logout(scope, receive, send, secret)
    elif path == "/ui/api/stats" and method == "GET":
        if _session(scope, secret) is None:
            raise ApiError("authentication_error", "log in at /ui first")
        await send_json(send, 200, await stats(app), SECURITY_HEADERS)
    elif path == "/ui" and method == "GET":
        session = _session(scope, secret)
        if session is None:
            await _html(send, 200, login_page())
        else:
            await _html(send, 200, status_page(csrf_token(secret, session)))
    else:
        raise not_found(f"no route for {method} {scope['path']}")
    return True


def _sign(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def new_session(secret: bytes, now: float | None = None) -> str:
    expires = str(int((now or time.time()) + SESSION_SECONDS))
    return f"{expires}.{_sign(secret, 'ui-session', expires)}"


def _session(scope: Scope, secret: bytes) -> str | None:
    """The request's valid, unexpired session cookie, or None."""
    for part in (header(scope, b"cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name != SESSION_COOKIE:
            continue
        expires, _, signature = value.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return None
        if hmac.compare_digest(signature, _sign(secret, "ui-session", expires)):
            return value
    return None


def csrf_token(secret: bytes, session: str) -> str:
    return _sign(secret, "ui-csrf", session)


def _same_origin(scope: Scope) -> bool:
    """A form post from this page: the browser's Sec-Fetch-Site says so, or else its Origin
    names this host (a client sending neither is not a browser another site could drive)."""
    site = header(scope, b"sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = header(scope, b"origin")
    if origin is not None:
        host = header(scope, b"host") or ""
        return origin in (f"http://{host}", f"https://{host}")
    return True


async def _form(receive: Receive) -> dict[str, str]:
    body = await read_body(receive, 16 * 1024)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


def _cookie(scope: Scope, value: str, max_age: int) -> bytes:
    secure = "; Secure" if header(scope, b"x-forwarded-proto") == "https" else ""
    return (
        f"{SESSION_COOKIE}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ).encode()


async def _login(scope: Scope, receive: Receive, send: Send, secret: bytes) -> None:
    form = await _form(receive)
    if not _same_origin(scope):
        await _html(send, 403, login_page("This form must be sent from the router's own page."))
        return
    if not hmac.compare_digest(form.get("key", "").encode(), secret):
        await _html(send, 401, login_page("Wrong admin key."))
        return
    cookie = _cookie(scope, new_session(secret), SESSION_SECONDS)
    await send_bytes(
        send, 303, b"", [(b"location", b"/ui"), (b"set-cookie", cookie), *SECURITY_HEADERS]
    )


async def _logout(scope: Scope, receive: Receive, send: Send, secret: bytes) -> None:
    form = await _form(receive)
    session = _session(scope, secret)
    token = form.get("csrf", "")
    if session is None or not hmac.compare_digest(token, csrf_token(secret, session)):
        raise ApiError("permission_error", "missing or wrong CSRF token")
    cookie = _cookie(scope, "", 0)
    await send_bytes(
        send, 303, b"", [(b"location", b"/ui"), (b"set-cookie", cookie), *SECURITY_HEADERS]
    )


async def _static(send: Send, name: str) -> None:
    if name not in STATIC:
        raise not_found(f"no static file {name!r}")
    body = (resources.files("anthropic_router.ui") / "static" / name).read_bytes()
    headers = [
        (b"content-type", STATIC[name].encode()),
        (b"cache-control", b"public, max-age=3600"),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send_bytes(send, 200, body, headers)


async def _html(send: Send, status: int, page: str) -> None:
    headers = [(b"content-type", b"text/html; charset=utf-8"), *SECURITY_HEADERS]
    await send_bytes(send, status, page.encode(), headers)


def _document(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel=icon href="data:,">'
        '<link rel=stylesheet href="/ui/static/uPlot.min.css">'
        '<link rel=stylesheet href="/ui/static/app.css">'
        f"</head><body>{body}</body></html>"
    )


def login_page(message: str = "") -> str:
    note = f"<p class=error role=alert>{escape(message)}</p>" if message else ""
    return _document(
        "anthropic-router: log in",
        "<main class=login><h1>anthropic-router</h1>"
        f"{note}"
        '<form method=post action="/ui/login">'
        "<label for=key>Admin key (ADMIN_API_KEY)</label>"
        "<input id=key name=key type=password autocomplete=current-password required autofocus>"
        "<button type=submit>Log in</button></form></main>",
    )


def _table(table_id: str, columns: tuple[str, ...]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    return f'<table id="{escape(table_id)}"><thead><tr>{head}</tr></thead><tbody></tbody></table>'


USAGE_COLUMNS = ("name", "requests", "input tokens", "output tokens", "cost (USD)")


def status_page(csrf: str) -> str:
    """The page's frame; app.js fills in the numbers from /ui/api/stats."""
    tiles = "".join(
        f"<div class=tile><span class=label>{escape(label)}</span>"
        f'<span class=value id="{escape(tile_id)}">…</span></div>'
        for tile_id, label in (
            ("rps", "requests/s (5 min)"),
            ("requests", "requests (5 min)"),
            ("p50", "latency p50 ms"),
            ("p99", "latency p99 ms"),
            ("ttft50", "TTFT p50 ms"),
            ("ttft99", "TTFT p99 ms"),
            ("cache", "cache hit rate"),
            ("ledger", "ledger queued/written/dropped"),
        )
    )
    sections = "".join(
        f"<section><h2>{escape(title)}</h2>{content}</section>"
        for title, content in (
            ("Requests and errors per second (30 min)", '<div id=chart-rate class=chart></div>'),
            ("Latency and TTFT, ms (30 min)", '<div id=chart-latency class=chart></div>'),
            ("Errors by type (5 min)", _table("errors", ("error type", "count"))),
            ("Tokens and cost per model, last hour", _table("model-hour", USAGE_COLUMNS)),
            ("Tokens and cost per model, last day", _table("model-day", USAGE_COLUMNS)),
            ("Tokens and cost per key, last hour", _table("key-hour", USAGE_COLUMNS)),
            ("Tokens and cost per key, last day", _table("key-day", USAGE_COLUMNS)),
            ("Routes and their targets (error rate, 5 min)",
             _table("routes", ("route", "target", "requests", "error rate"))),
            ("Batches in progress", _table("batches", ("batch", "status", "requests", "created"))),
            ("Recent exchanges (metadata only)", _table("recent", (
                "time", "key", "model", "upstream", "status", "error", "tokens in/out",
                "latency ms", "TTFT ms", "cache"))),
        )
    )  # fmt: skip
    return _document(
        "anthropic-router: status",
        "<header><h1>anthropic-router status</h1>"
        "<span id=updated class=muted>loading…</span>"
        '<form method=post action="/ui/logout">'
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
        "<button type=submit>Log out</button></form></header>"
        f"<main><div class=tiles>{tiles}</div>{sections}</main>"
        '<script src="/ui/static/uPlot.iife.min.js"></script>'
        '<script src="/ui/static/app.js"></script>',
    )
