"""A lean keep-alive HTTP/1.1 client for the upstream hot path, on asyncio protocols and
httptools (the parser uvicorn already uses).

The router sends one kind of request upstream on its hot path: POST a JSON body, read the
answer whole or as it arrives. aiohttp's client cost about a quarter of the router's CPU per
request in the profiles (docs/11-benchmarks.md): a `ClientRequest` and its auto headers,
timers and a `StreamReader` per response, and per-read bookkeeping on every chunk of a
stream. Here a request is one `transport.write` of precomputed bytes, the parser's body
callback appends to a list, and a read takes everything buffered so far in one piece, so a
burst of upstream chunks becomes one read (one event batch, one write to the client).

Scope, on purpose: HTTP/1.1 over TCP or TLS, Content-Length, chunked or close-delimited
bodies, gzip/deflate bodies, keep-alive with a LIFO pool per origin, one retry when a reused
connection turns out closed before any byte of the answer. No proxies, redirects, cookies or
HTTP/2 (aiohttp, kept for the cold paths, did not use them either).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from anthropic_router.errors import ApiError

# A stream's buffered bytes past which the socket stops being read (backpressure), and the
# level below which reading resumes.
HIGH_WATER = 1 << 20
LOW_WATER = 1 << 16


class UpstreamClosed(Exception):
    """The connection ended before the answer did (mapped by the caller)."""


class Origin:
    """Scheme, host and port of an upstream, with what every request to it shares."""

    __slots__ = ("host", "host_header", "port", "ssl")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
        tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if tls else 80)
        # ssl.create_default_context reads SSL_CERT_FILE / SSL_CERT_DIR, like aiohttp's default.
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if tls else None
        default_port = self.port == (443 if tls else 80)
        ascii_host = self.host.encode("idna").decode("ascii")
        name = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
        self.host_header = name if default_port else f"{name}:{self.port}"


def target_of(url: str) -> bytes:
    """The request target (path and query) of an absolute URL."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return (path + ("?" + parts.query if parts.query else "")).encode("ascii")


def encode_head(method: str, target: bytes, host: str, headers: Mapping[str, str]) -> bytes:
    """Request line and headers, without Content-Length (`send` adds it)."""
    line = b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode(), target, host.encode("ascii"))
    return line + encode_headers(headers)


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """Header lines. Values come partly from clients (forwarded keys, request ids): a CR or
    LF would split the request, so it is refused."""
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ApiError("invalid_request_error", f"header {name!r} is not a valid header")
        lines.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    return b"".join(lines)


class Response:
    """An answer's status and headers, and its body as it arrives."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_decoder",
        "_done",
        "_eof_body",
        "_error",
        "_paused",
        "_waiter",
        "headers",
        "status",
    )  # fmt: skip

    def __init__(self, conn: _Connection) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._conn = conn
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._decoder: zlib._Decompress | None = None
        self._paused = False
        self._eof_body = False  # neither Content-Length nor chunked: the body ends at EOF

    # -- fed by the connection ------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error:
                self._fail(UpstreamClosed("undecodable compressed body"))
                return
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > HIGH_WATER and not self._paused:
                self._paused = True
                self._conn.pause_reading()
        self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._chunks.append(rest)
        self._done = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._done and self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the provider -------------------------------------------------------------

    async def readany(self) -> bytes:
        """Every body byte that has arrived since the last call (waiting for at least one),
        or b"" at the end of the body."""
        if not self._chunks and not self._done and self._error is None:
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._chunks:
            chunks = self._chunks
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
            self._buffered = 0
            if self._paused:
                self._paused = False
                self._conn.resume_reading()
            return data
        if self._error is not None:
            raise self._error
        return b""

    def release(self) -> None:
        """Done with the answer: the connection goes back to the pool if the body was read to
        its end and both sides keep it alive, else it is closed."""
        self._conn.finish(self, reusable=self._done and self._error is None)

    def close(self) -> None:
        self._conn.finish(self, reusable=False)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; it carries one request at a time."""

    def __init__(self, pool: Pool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.head_waiter: asyncio.Future[None] | None = None
        self.got_bytes = False  # of the current answer: decides whether a retry is safe
        self.keep_alive = True
        self.idle_since = 0.0
        self.keepalive_timeout = pool.keepalive_timeout
        self.closed = False
        self._informational = False
        self._raw: list[tuple[bytes, bytes]] = []

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.response is None:
            self._close()  # bytes nobody asked for: the connection is not in a known state
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._abort(UpstreamClosed(f"malformed HTTP answer ({type(exc).__name__})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        response = self.response
        if response is None:
            return
        if response._eof_body and self.head_waiter is None and exc is None:
            response._finish()
        else:
            self._abort(UpstreamClosed("the upstream closed the connection"))

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._raw = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self._informational = True  # 100 Continue, 103 Early Hints: the answer follows
            return
        response = self.response
        if response is None:
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._raw:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response.status = status
        response.headers = headers
        self.keep_alive = self.parser.should_keep_alive()
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            # wbits 15 + 32: a zlib or a gzip header, detected (RFC 9110's "deflate" is the
            # zlib format); a raw deflate stream fails as an undecodable body.
            response._decoder = zlib.decompressobj(15 + 32)
        elif encoding not in ("", "identity"):
            self._abort(UpstreamClosed(f"unsupported content-encoding {encoding!r}"))
            return
        response._eof_body = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        if "keep-alive" in headers:
            self.keepalive_timeout = min(self.keepalive_timeout, _keepalive(headers["keep-alive"]))
        waiter, self.head_waiter = self.head_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.response is not None and not self._informational:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self.response is not None:
            self.response._finish()

    # -- the pool's side ------------------------------------------------------------------

    def send(self, head: bytes, body: bytes) -> Response:
        assert self.transport is not None
        self.response = Response(self)
        self.got_bytes = False
        self.head_waiter = self.loop.create_future()
        self.transport.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.response

    def finish(self, response: Response, *, reusable: bool) -> None:
        if response is not self.response:
            return  # released twice
        self.response = None
        if reusable and self.keep_alive and not self.closed and not self.pool.closed:
            self.idle_since = self.loop.time()
            self.pool.put(self)
        else:
            self._close()

    def _abort(self, error: BaseException) -> None:
        waiter, self.head_waiter = self.head_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.response is not None:
            self.response._fail(error)
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _keepalive(value: str) -> float:
    """`Keep-Alive: timeout=5, max=100` -> 4.0 s: the server's idle limit, less a margin so
    the pool drops the connection before the server does."""
    for part in value.split(","):
        key, _, number = part.strip().partition("=")
        if key.strip().lower() == "timeout":
            try:
                return max(0.0, float(number) - 1.0)
            except ValueError:
                break
    return float("inf")


class Pool:
    """Keep-alive connections to one origin; no limit on their number (like the aiohttp
    connector it replaces, `limit=0`): MAX_CONCURRENT_REQUESTS bounds the router's fan-out."""

    def __init__(
        self, origin: Origin, *, connect_timeout: float, keepalive_timeout: float = 60.0
    ) -> None:
        self.origin = origin
        self.connect_timeout = connect_timeout
        self.keepalive_timeout = keepalive_timeout
        self.closed = False
        self._idle: list[_Connection] = []
        self._sweep: asyncio.TimerHandle | None = None

    async def request(self, head: bytes, body: bytes, first_byte_timeout: float) -> Response:
        """Send one request (`head` from `encode_head`) and wait for the answer's headers.
        Raises TimeoutError (no headers within `first_byte_timeout`, connecting included),
        `UpstreamClosed`, or OSError (could not connect)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + first_byte_timeout
        while True:
            conn = self._take(loop)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(loop, deadline)
            try:
                response = conn.send(head, body)
            except (OSError, RuntimeError) as exc:  # the transport closed under our feet
                conn._close()
                if reused:
                    continue
                raise UpstreamClosed(f"could not send the request ({type(exc).__name__})") from exc
            try:
                await _wait(loop, conn, deadline)
            except UpstreamClosed:
                if reused and not conn.got_bytes:
                    continue  # the server had dropped the idle connection: a fresh one
                raise
            except BaseException:
                response.close()
                raise
            return response

    def _take(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        now = loop.time()
        while self._idle:
            conn = self._idle.pop()  # the most recently used one is the least likely stale
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since >= conn.keepalive_timeout:
                conn._close()
                continue
            return conn
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        origin = self.origin
        timeout = min(self.connect_timeout, max(0.0, deadline - loop.time()))
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, loop),
                    origin.host,
                    origin.port,
                    ssl=origin.ssl,
                    server_hostname=origin.host if origin.ssl is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout from None
        return conn

    def put(self, conn: _Connection) -> None:
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = conn.loop.call_later(self.keepalive_timeout, self._close_stale)

    def _close_stale(self) -> None:
        """Idle connections past their keep-alive time are closed even if no request comes
        to take them (a burst of connections must not stay open for good)."""
        self._sweep = None
        if not self._idle:
            return
        loop = self._idle[0].loop
        now = loop.time()
        for conn in list(self._idle):
            if now - conn.idle_since >= conn.keepalive_timeout:
                self._idle.remove(conn)
                conn._close()
        if self._idle:
            self._sweep = loop.call_later(self.keepalive_timeout, self._close_stale)

    def forget(self, conn: _Connection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)

    def close(self) -> None:
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn._close()


class ConnectTimeout(TimeoutError):
    """No connection within CONNECT_TIMEOUT (a TimeoutError, told apart for the message)."""


async def _wait(loop: asyncio.AbstractEventLoop, conn: _Connection, deadline: float) -> None:
    """Wait for the answer's headers until `deadline`, with one timer handle rather than an
    `asyncio.timeout` block."""
    waiter = conn.head_waiter
    if waiter is None:
        return  # the headers (or an error) came with the write
    handle = loop.call_at(deadline, _expire, waiter)
    try:
        await waiter
    finally:
        handle.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
