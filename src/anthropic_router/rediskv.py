"""Redis behind one small module: bytes in and out under a key prefix, Lua scripts by SHA,
and graceful degradation built in, so callers (the response cache, shared rate limits) only
handle one exception: `KVUnavailable`, upon which they carry on without Redis.

A lean RESP2 client of our own on an asyncio protocol, because the router needs five
commands (GET, SET PX, DEL, EVALSHA/SCRIPT LOAD, PING) and redis-py's asyncio client cost
100-380 µs of CPU per call (issue 18; docs/11-benchmarks.md). One pipelined connection per
RedisKV: a command is one `transport.write` of a RESP array, replies are matched in order to
a queue of futures, and each call is bounded by one timer. Redis answers one connection's
commands in order and is single-threaded, so a pool would add work, not throughput.

An answer from Redis takes well under a millisecond, so one that takes longer than the
socket timeout counts as an outage: the connection is closed and every call waiting on it
fails (later replies could no longer be matched). During an outage the warning is logged
once; calls then fail at once, without touching the network, for `retry_interval` seconds;
after that one call (never a crowd) reconnects, and the first success logs that Redis is
back. Nothing needs restarting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from anthropic_router.store.base import redact_url

if TYPE_CHECKING:
    from anthropic_router.config import Settings

log = logging.getLogger("anthropic_router.redis")


class KVUnavailable(Exception):
    """Redis did not answer (down, slow, refusing, or skipped while it recovers): go on
    without it. The Redis error, if there was one, is the `__cause__`."""


class ResponseError(Exception):
    """Redis answered with an error reply (`-ERR ...`); the message is Redis's."""


# Errors after which Redis is treated as down: the network, a timeout, a broken protocol.
_OUTAGE = (OSError, asyncio.TimeoutError, EOFError)

ErrorCallback = Callable[[str], None]
"""Called once per failed call with its kind: "connection", "timeout", "response" (Redis
answered with an error) or "skipped" (not tried: Redis is down). For metrics."""


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes (`need`: the length the buffer
    must reach before trying again, when a bulk string's header says so; else 0)."""

    def __init__(self, need: int = 0) -> None:
        self.need = need


def parse_reply(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 reply starting at `buf[pos]`: (value, position after it), or _Incomplete.
    Bulk strings and simple strings as bytes, integers as int, arrays as lists, nulls as
    None, error replies as ResponseError instances (returned, not raised: inside an array
    they are values)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        size = int(buf[pos + 1 : end])
        if size < 0:
            return None, end + 2
        start = end + 2
        stop = start + size
        if len(buf) < stop + 2:
            raise _Incomplete(stop + 2)
        return buf[start:stop], stop + 2
    if kind == 43:  # + simple string
        return buf[pos + 1 : end], end + 2
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 45:  # - error
        return ResponseError(buf[pos + 1 : end].decode(errors="replace")), end + 2
    if kind == 42:  # * array
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        items = []
        pos = end + 2
        for _ in range(count):
            item, pos = parse_reply(buf, pos)
            items.append(item)
        return items, pos
    raise EOFError(f"unexpected byte {kind!r} in a Redis reply")


def encode_command(args: tuple[Any, ...]) -> bytes:
    """A command as RESP: an array of bulk strings (str as UTF-8, numbers as text)."""
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        kind = type(arg)
        if kind is str:
            arg = arg.encode()
        elif kind is int:
            arg = b"%d" % arg
        elif kind is float:
            arg = repr(arg).encode()
        elif not isinstance(arg, bytes | bytearray | memoryview):
            raise TypeError(f"cannot send {kind.__name__} to Redis")
        append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """One pipelined connection: replies resolve the waiting futures in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: deque[asyncio.Future[Any]] = deque()
        # The start of an incomplete reply, in pieces, joined once `_need` bytes are there
        # (a large value arriving in many reads is copied once, not once per read).
        self._pieces: list[bytes] = []
        self._size = 0
        self._need = 0
        self._transport: asyncio.Transport | None = None
        self._outgoing: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._pieces:
            self._pieces.append(data)
            self._size += len(data)
            if self._size < self._need:
                return
            buf = b"".join(self._pieces)
            self._pieces = []
        else:
            buf = data
        pos = 0
        size = len(buf)
        waiters = self._waiters
        try:
            while pos < size:
                reply, pos = parse_reply(buf, pos)
                if not waiters:
                    raise EOFError("a Redis reply nobody asked for")
                waiter = waiters.popleft()
                if not waiter.done():  # its caller may be gone (cancelled)
                    waiter.set_result(reply)
        except _Incomplete as incomplete:
            rest = buf[pos:]
            self._pieces = [rest]
            self._size = len(rest)
            self._need = incomplete.need - pos if incomplete.need else self._size + 1
        except (ValueError, EOFError) as exc:  # out of step with Redis: start over
            self.fail(EOFError(f"bad reply from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_waiters(ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost fails the waiters

    def request(self, payload: bytes, timeout_at: float) -> tuple[asyncio.Future[Any], Any]:
        """Send one encoded command; its future, and the timer that fails it at `timeout_at`
        (the caller cancels the timer once it has the reply)."""
        if self.closed or self._transport is None:
            raise ConnectionError("connection to Redis closed")
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        # Commands sent in one turn of the event loop go out in one write (one system call,
        # the most expensive part of a call): flushed at the end of this turn.
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(payload)
        return waiter, self._loop.call_at(timeout_at, self._expire, waiter)

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if not self.closed and self._transport is not None and outgoing:
            self._transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))

    def _expire(self, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            self.fail(TimeoutError("no reply from Redis in time"))

    def fail(self, exc: Exception) -> None:
        """Close, failing every call still waiting: their replies can no longer be matched."""
        self.closed = True
        self._fail_waiters(exc)
        if self._transport is not None:
            self._transport.abort()

    def _fail_waiters(self, exc: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)


class _Address:
    """What REDIS_URL says: redis://[user:password@]host[:port][/db], rediss://... (TLS),
    unix://[user:password@]/path/to.sock[?db=N]; `db`, `password` also as query parameters,
    and for rediss `ssl_cert_reqs=none` and `ssl_ca_certs=PATH`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        self.unix_path: str | None = None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else query.get("password")
        self.password = password or None
        db = query.get("db")
        if parts.scheme == "unix":
            self.unix_path = unquote(parts.path)
        elif parts.path.strip("/"):
            db = db or unquote(parts.path).strip("/")
        self.db = int(db or 0)
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "rediss":
            self.ssl = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
            if query.get("ssl_cert_reqs", "").lower() in ("none", "cert_none"):
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE

    def handshake(self) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        if self.password is not None:
            user = (self.username,) if self.username else ()
            commands.append((b"AUTH", *user, self.password))
        if self.db:
            commands.append((b"SELECT", self.db))
        return commands


class RedisKV:
    """A prefixed key/value view of one Redis database. Every method raises KVUnavailable
    instead of a Redis error; keys (also a script's `keys`) get `prefix` in front, a
    script's `args` are sent as they are. Replies are Redis's own: strings as bytes,
    integers as int, arrays as lists."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "anthropic-router:",
        socket_timeout: float = 0.25,
        connect_timeout: float = 0.25,
        max_connections: int = 64,
        retry_interval: float = 2.0,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self.url = redact_url(url)
        self.prefix = prefix
        self.retry_interval = retry_interval
        self._on_error = on_error
        self._address = _Address(url)
        self._socket_timeout = socket_timeout
        self._connect_timeout = connect_timeout
        # Accepted for compatibility: one pipelined connection replaces redis-py's pool.
        self.max_connections = max_connections
        # Connect and reply: an upper bound for one call, whatever hangs.
        self._deadline = connect_timeout + 2 * socket_timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._scripts: dict[str, str] = {}
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False
        self._logged_errors: set[str] = set()

    @property
    def available(self) -> bool:
        """False from a failed call until the next successful one."""
        return self._down_since is None

    def key(self, name: str) -> str:
        return self.prefix + name

    async def get(self, key: str) -> bytes | None:
        value = await self._call((b"GET", self.prefix + key))
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store `value`, expiring after `ttl_seconds` (millisecond precision, > 0)."""
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        milliseconds = max(1, round(ttl_seconds * 1000))
        await self._call((b"SET", self.prefix + key, value, b"PX", milliseconds))

    async def delete(self, key: str) -> None:
        await self._call((b"DEL", self.prefix + key))

    async def eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its SHA (EVALSHA), loading it when Redis does not have it
        (first use, or after a restart emptied its script cache)."""
        sha = self._scripts.get(script)
        if sha is None:
            sha = self._scripts[script] = hashlib.sha1(script.encode()).hexdigest()
        prefix = self.prefix
        command = (b"EVALSHA", sha, len(keys), *[prefix + k for k in keys], *args)
        return await self._call(command, script)

    async def ping(self) -> bool:
        return bool(await self._call((b"PING",)) == b"PONG")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(ConnectionError("RedisKV closed"))

    async def _call(self, command: tuple[Any, ...], script: str | None = None) -> Any:
        probe = self._admit() if self._down_since is not None else False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline
        conn = self._conn
        try:
            if conn is None or conn.closed:
                conn = None
                conn = await self._connection(loop, deadline)
            reply = await self._request(conn, encode_command(command), loop, deadline)
            if type(reply) is ResponseError:
                if script is None or not str(reply).startswith("NOSCRIPT"):
                    raise _error(reply)
                loaded = await self._request(
                    conn, encode_command((b"SCRIPT", b"LOAD", script)), loop, deadline
                )
                if type(loaded) is ResponseError:
                    raise _error(loaded)
                reply = await self._request(conn, encode_command(command), loop, deadline)
                if type(reply) is ResponseError:
                    raise _error(reply)
        except _OUTAGE as exc:
            self._went_down(exc, conn)
            raise KVUnavailable(f"redis at {self.url} unavailable: {_describe(exc)}") from exc
        except ResponseError as exc:
            self._refused(exc)
            raise KVUnavailable(f"redis at {self.url} refused: {_describe(exc)}") from exc
        finally:
            if probe:
                self._probing = False
        if self._down_since is not None:
            self._came_back()
        return reply

    async def _request(
        self, conn: _Connection, payload: bytes, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> Any:
        # A reply must come within the socket timeout, and the whole call within its deadline.
        waiter, timer = conn.request(payload, min(deadline, loop.time() + self._socket_timeout))
        try:
            return await waiter
        finally:
            timer.cancel()

    async def _connection(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        """The open connection, opening it (once, for every call that needs it meanwhile)."""
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = loop.create_future()
            try:
                conn = await self._connect(loop, deadline)
            except BaseException as exc:
                # Every call waiting for this connection fails as this one does.
                failure = exc if isinstance(exc, Exception) else ConnectionError("cancelled")
                connecting.set_exception(failure)
                connecting.exception()  # retrieved: nobody else may be waiting
                raise
            else:
                self._conn = conn
                connecting.set_result(conn)
            finally:
                self._connecting = None
            return conn
        return await asyncio.shield(connecting)

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        address = self._address
        timeout = max(0.0, min(self._connect_timeout, deadline - loop.time()))
        try:
            async with asyncio.timeout(timeout):
                if address.unix_path is not None:
                    _, conn = await loop.create_unix_connection(
                        lambda: _Connection(loop), address.unix_path
                    )
                else:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(loop),
                        address.host,
                        address.port,
                        ssl=address.ssl,
                        server_hostname=address.host if address.ssl else None,
                    )
        except TimeoutError as exc:
            raise TimeoutError(f"no connection in {timeout:g}s") from exc
        try:
            for command in address.handshake():
                reply = await self._request(conn, encode_command(command), loop, deadline)
                if type(reply) is ResponseError and _auth_without_users(command, reply):
                    # Redis before 6 has no ACL users: AUTH takes the password alone (as
                    # redis-py retries it), so URLs naming a user still work there.
                    command = (b"AUTH", command[-1])
                    reply = await self._request(conn, encode_command(command), loop, deadline)
                if type(reply) is ResponseError:
                    # Wrong password, bad database: this Redis cannot be used, an outage.
                    raise ConnectionError(f"{command[0].decode()} failed: {reply}")
        except BaseException:
            conn.fail(ConnectionError("handshake failed"))
            raise
        return conn

    def _admit(self) -> bool:
        """Let a call through, or refuse it while Redis is down. True for the one call that
        probes Redis after `retry_interval`: the others are refused until it answers."""
        if self._down_since is None:
            return False
        if self._probing or time.monotonic() < self._retry_at:
            self._count("skipped")
            raise KVUnavailable(f"redis at {self.url} unavailable; retrying soon")
        self._probing = True
        return True

    def _went_down(self, exc: BaseException, conn: _Connection | None) -> None:
        self._count("timeout" if _is_timeout(exc) else "connection")
        if conn is not None and conn is not self._conn:
            # A call on a connection already given up (by close(), or by another call that
            # failed on it and went down): nothing new about Redis, and the connection
            # that replaced it, if any, must not be cut.
            return
        now = time.monotonic()
        self._retry_at = now + self.retry_interval
        # The connection is dead or out of step: the next attempt opens a new one.
        self._conn = None
        if conn is not None:
            conn.fail(ConnectionError("redis went down"))
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "redis at %s unavailable (%s); going on without it, retrying every %gs",
                self.url,
                _describe(exc),
                self.retry_interval,
            )

    def _came_back(self) -> None:
        assert self._down_since is not None
        log.info(
            "redis at %s available again after %.1fs",
            self.url,
            time.monotonic() - self._down_since,
        )
        self._down_since = None

    def _refused(self, exc: ResponseError) -> None:
        # An error reply (a script bug, OOM, a read-only replica): Redis is up, so no
        # back-off, but the same message is logged once, not per call.
        self._count("response")
        message = _describe(exc)
        if message not in self._logged_errors and len(self._logged_errors) < 100:
            self._logged_errors.add(message)
            log.warning("redis at %s answered with an error: %s", self.url, message)

    def _count(self, kind: str) -> None:
        if self._on_error is not None:
            try:
                self._on_error(kind)
            except Exception:  # a broken metrics hook must not turn into a request error
                log.exception("redis error callback failed")


def _error(reply: ResponseError) -> Exception:
    """Replies that mean Redis cannot be used at all (still loading its data set, not
    authenticated) are an outage, as redis-py has them; other errors are answers."""
    if str(reply).startswith(("LOADING", "NOAUTH", "WRONGPASS")):
        return ConnectionError(str(reply))
    return reply


def _auth_without_users(command: tuple[Any, ...], reply: ResponseError) -> bool:
    """A two-argument AUTH refused by a server that knows only `AUTH <password>`."""
    return command[0] == b"AUTH" and len(command) == 3 and "wrong number of arguments" in str(reply)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.TimeoutError | TimeoutError)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_redis(settings: Settings, on_error: ErrorCallback | None = None) -> RedisKV:
    """The RedisKV of REDIS_URL and the REDIS_* settings (REDIS_URL must be set)."""
    assert settings.redis_url is not None
    return RedisKV(
        settings.redis_url,
        prefix=settings.redis_key_prefix,
        socket_timeout=settings.redis_socket_timeout,
        connect_timeout=settings.redis_connect_timeout,
        max_connections=settings.redis_max_connections,
        retry_interval=settings.redis_retry_interval,
        on_error=on_error,
    )


__all__ = ["ErrorCallback", "KVUnavailable", "RedisKV", "ResponseError", "open_redis"]
