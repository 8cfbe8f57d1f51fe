"""RedisKV's own RESP2 client: the reply parser on input split anywhere, pipelining, the
connection options of REDIS_URL (AUTH, SELECT, unix sockets, TLS) and a timeout that fails
every call waiting on the connection, against real redis-servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from anthropic_router.rediskv import KVUnavailable, RedisKV, ResponseError, encode_command
from anthropic_router.rediskv import _Connection as Connection
from support.router import free_port
from support.services import RedisServer
from support.tls import self_signed

pytestmark = pytest.mark.anyio

# One reply of each kind, nested arrays, nulls, errors, CRLF inside a bulk string.
REPLIES = (
    b"+OK\r\n"
    b"-ERR wrong number of arguments\r\n"
    b":42\r\n"
    b":-7\r\n"
    b"$-1\r\n"
    b"$0\r\n\r\n"
    b"$6\r\na\r\nb\r\n\r\n"
    b"*-1\r\n"
    b"*0\r\n"
    b"*3\r\n*2\r\n:1\r\n$3\r\nfoo\r\n$-1\r\n*1\r\n-NOSCRIPT gone\r\n"
    b"+PONG\r\n"
)


def _check(values: list[Any]) -> None:
    assert values[0] == b"OK"
    assert isinstance(values[1], ResponseError)
    assert str(values[1]) == "ERR wrong number of arguments"
    assert values[2:8] == [42, -7, None, b"", b"a\r\nb\r\n", None]
    assert values[8] == []
    nested = values[9]
    assert nested[0] == [1, b"foo"] and nested[1] is None
    assert isinstance(nested[2][0], ResponseError) and str(nested[2][0]) == "NOSCRIPT gone"
    assert values[10] == b"PONG"


@pytest.fixture
async def connection(anyio_backend: str) -> AsyncIterator[Connection]:
    """Our protocol on one end of a socket pair (what it writes is never read): the test
    feeds it reply bytes as the network would, in whatever pieces it likes."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    _, conn = await loop.create_connection(lambda: Connection(loop), sock=ours)
    yield conn
    conn.fail(ConnectionError("test over"))
    theirs.close()


async def _feed(conn: Connection, chunks: list[bytes], count: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    pending = [conn.request(b"", loop.time() + 60) for _ in range(count)]
    for chunk in chunks:
        conn.data_received(chunk)
    values = []
    for waiter, timer in pending:
        timer.cancel()
        assert waiter.done()
        values.append(waiter.result())
    return values


async def test_parser_on_every_split(connection: Connection) -> None:
    for cut in range(len(REPLIES) + 1):
        _check(await _feed(connection, [REPLIES[:cut], REPLIES[cut:]], 11))
    for cut in range(1, len(REPLIES)):  # three pieces: every cut, then the rest in two
        middle = (cut + len(REPLIES)) // 2
        pieces = [REPLIES[:cut], REPLIES[cut:middle], REPLIES[middle:]]
        _check(await _feed(connection, pieces, 11))
    _check(await _feed(connection, [bytes([b]) for b in REPLIES], 11))  # byte by byte


async def test_parser_on_a_large_bulk_string_in_pieces(connection: Connection) -> None:
    value = bytes(range(256)) * 1000  # 256 KB, every byte value, CRLFs inside
    data = b"$%d\r\n%s\r\n:1\r\n" % (len(value), value)
    cuts = [*range(0, 12), *range(12, len(data), 4999), *range(len(data) - 12, len(data) + 1)]
    for cut in cuts:
        assert await _feed(connection, [data[:cut], data[cut:]], 2) == [value, 1]
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    assert await _feed(connection, chunks, 2) == [value, 1]


async def test_a_reply_out_of_step_closes_the_connection(connection: Connection) -> None:
    loop = asyncio.get_running_loop()
    waiter, timer = connection.request(b"", loop.time() + 60)
    connection.data_received(b"?what\r\n")
    timer.cancel()
    assert connection.closed
    with pytest.raises(EOFError, match="bad reply"):
        waiter.result()


def test_commands_are_arrays_of_bulk_strings() -> None:
    command = encode_command((b"SET", "kéy", b"\x00\r\n", b"PX", 1500, 0.5))
    assert command == (
        b"*6\r\n$3\r\nSET\r\n$4\r\nk\xc3\xa9y\r\n$3\r\n\x00\r\n\r\n$2\r\nPX\r\n"
        b"$4\r\n1500\r\n$3\r\n0.5\r\n"
    )
    with pytest.raises(TypeError):
        encode_command((b"GET", None))


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_server.url) as client:
        yield client


async def test_pipelined_calls_get_their_own_replies(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    kv = RedisKV(redis_server.url, prefix="p:")
    try:
        values = {f"k{i}": (b"%d:" % i) * (i * 37 + 1) for i in range(100)}
        values["large"] = bytes(range(256)) * 4096  # 1 MiB: many reads, one copy
        await asyncio.gather(*(kv.set(k, v, 60) for k, v in values.items()))
        keys = list(values) * 3
        results = await asyncio.gather(*(kv.get(k) for k in keys))
        assert results == [values[k] for k in keys]
        assert await kv.get("missing") is None
    finally:
        await kv.close()


async def test_timeout_fails_every_pending_call_then_recovers(
    redis_server: RedisServer, raw: redis.Redis, anyio_backend: str
) -> None:
    errors: list[str] = []
    kv = RedisKV(redis_server.url, socket_timeout=0.2, retry_interval=0, on_error=errors.append)
    try:
        for i in range(10):
            await kv.set(f"k{i}", b"v%d" % i, 60)
        raw.execute_command("CLIENT", "PAUSE", "3000", "ALL")
        results = await asyncio.gather(
            *(kv.get(f"k{i}") for i in range(10)), return_exceptions=True
        )
        assert all(isinstance(r, KVUnavailable) for r in results)
        assert errors == ["timeout"] * 10
        raw.execute_command("CLIENT", "UNPAUSE")
        # A new connection: the paused replies of the old one cannot shift these.
        assert await kv.get("k0") == b"v0"
        assert await asyncio.gather(*(kv.get(f"k{i}") for i in range(10))) == [
            b"v%d" % i for i in range(10)
        ]
        assert kv.available
    finally:
        raw.execute_command("CLIENT", "UNPAUSE")
        await kv.close()


async def test_select_database(redis_server: RedisServer, anyio_backend: str) -> None:
    url = redis_server.url.removesuffix("/0") + "/3"
    kv = RedisKV(url, prefix="db:")
    try:
        await kv.set("k", b"three", 60)
        assert await kv.get("k") == b"three"
        with redis.Redis.from_url(url) as three, redis.Redis.from_url(redis_server.url) as zero:
            assert three.get("db:k") == b"three"
            assert zero.get("db:k") is None
    finally:
        await kv.close()


@pytest.fixture
def secured() -> Iterator[RedisServer]:
    """A redis-server with a password for the default user and an ACL user `alice`."""
    user = ("alice", "on", ">test-pass-2", "~*", "&*", "+@all")
    args = ("--requirepass", "test-pass-1", "--user", *user)
    with RedisServer(args) as server:
        yield server


async def test_auth_with_password_and_with_user(secured: RedisServer, anyio_backend: str) -> None:
    base = f"127.0.0.1:{secured.port}"
    urls = (
        f"redis://:test-pass-1@{base}/0",  # pragma: allowlist secret
        f"redis://alice:test-pass-2@{base}/2",  # pragma: allowlist secret
    )
    for url in urls:
        kv = RedisKV(url)
        try:
            assert await kv.ping() is True
            await kv.set("k", b"v", 60)
            assert await kv.get("k") == b"v"
            assert "test-pass" not in kv.url
        finally:
            await kv.close()


class _Redis5:
    """A loopback server answering as Redis 5 does (RESP2, no ACL users): `AUTH <password>`
    only, a two-argument AUTH is a wrong number of arguments, and nothing else is served
    before AUTH. It records the commands it got."""

    def __init__(self, password: bytes) -> None:
        self.password = password
        self.commands: list[list[bytes]] = []
        self.data: dict[bytes, bytes] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        authed = False
        while line := await reader.readline():
            args = []
            for _ in range(int(line[1:])):  # *<n>, then $<len> and the bytes of each
                size = int((await reader.readline())[1:])
                args.append((await reader.readexactly(size + 2))[:-2])
            self.commands.append(args)
            name = args[0].upper()
            if name == b"AUTH" and len(args) != 2:
                reply = b"-ERR wrong number of arguments for 'auth' command\r\n"
            elif name == b"AUTH":
                authed = args[1] == self.password
                reply = b"+OK\r\n" if authed else b"-ERR invalid password\r\n"
            elif not authed:
                reply = b"-NOAUTH Authentication required.\r\n"
            elif name == b"SET":
                self.data[args[1]] = args[2]
                reply = b"+OK\r\n"
            elif name == b"GET":
                value = self.data.get(args[1])
                reply = b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)
            else:
                reply = b"+PONG\r\n" if name == b"PING" else b"-ERR unknown command\r\n"
            writer.write(reply)
        writer.close()


async def test_a_user_in_the_url_still_authenticates_on_redis_before_6(anyio_backend: str) -> None:
    """A URL naming a user, against a server without ACL users: AUTH is retried with the
    password alone (what redis-py does), and the connection serves."""
    fake = _Redis5(b"test-pass-5")
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    kv = RedisKV(f"redis://default:test-pass-5@127.0.0.1:{port}/0")  # pragma: allowlist secret
    try:
        await kv.set("k", b"v", 60)
        assert await kv.get("k") == b"v"
    finally:
        await kv.close()
        server.close()
    assert fake.commands[:2] == [
        [b"AUTH", b"default", b"test-pass-5"],
        [b"AUTH", b"test-pass-5"],
    ]
    assert [command[0] for command in fake.commands[2:]] == [b"SET", b"GET"]


async def test_wrong_password_is_an_outage(
    secured: RedisServer, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    errors: list[str] = []
    base = f"127.0.0.1:{secured.port}"
    for url in (f"redis://:wrong-pass@{base}/0", f"redis://{base}/0"):
        kv = RedisKV(url, on_error=errors.append, retry_interval=600)
        try:
            with pytest.raises(KVUnavailable, match="unavailable"):
                await kv.set("k", b"v", 60)
            with pytest.raises(KVUnavailable, match="retrying soon"):
                await kv.get("k")
        finally:
            await kv.close()
    assert errors == ["connection", "skipped"] * 2
    assert "wrong-pass" not in caplog.text


async def test_unix_socket(tmp_path: Path, anyio_backend: str) -> None:
    path = tmp_path / "redis.sock"
    with RedisServer(("--unixsocket", str(path), "--unixsocketperm", "700")):
        kv = RedisKV(f"unix://{path}?db=1", prefix="u:")
        try:
            await kv.set("k", b"over a socket", 60)
            assert await kv.get("k") == b"over a socket"
        finally:
            await kv.close()
        with redis.Redis(unix_socket_path=str(path), db=1) as plain:
            assert plain.get("u:k") == b"over a socket"


async def test_tls(tmp_path: Path, anyio_backend: str) -> None:
    cert, key = self_signed(tmp_path)
    tls_port = free_port()
    args = ("--tls-port", str(tls_port), "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-auth-clients", "no")  # fmt: skip
    with RedisServer(args):
        kv = RedisKV(f"rediss://localhost:{tls_port}/0?ssl_ca_certs={cert}")
        try:
            await kv.set("k", b"encrypted", 60)
            assert await kv.get("k") == b"encrypted"
        finally:
            await kv.close()
        # Without the certificate authority the server is not trusted: an outage.
        errors: list[str] = []
        untrusted = RedisKV(f"rediss://localhost:{tls_port}/0", on_error=errors.append)
        try:
            with pytest.raises(KVUnavailable):
                await untrusted.ping()
            assert errors == ["connection"]
        finally:
            await untrusted.close()


async def test_a_cancelled_call_does_not_shift_the_replies(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    kv = RedisKV(redis_server.url)
    try:
        for name in "abc":
            await kv.set(name, name.encode() * 3, 60)
        calls = [asyncio.ensure_future(kv.get(name)) for name in "abc"]
        await asyncio.sleep(0)  # all three sent
        calls[1].cancel()
        assert await calls[0] == b"aaa"
        assert await calls[2] == b"ccc"
        assert calls[1].cancelled()
        assert await kv.get("b") == b"bbb"
        assert kv.available
    finally:
        await kv.close()


async def test_close_fails_calls_in_flight_and_a_later_call_reconnects(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    errors: list[str] = []
    kv = RedisKV(redis_server.url, on_error=errors.append, retry_interval=0)
    try:
        await kv.set("k", b"v", 60)
        pending = asyncio.ensure_future(kv.get("k"))
        await asyncio.sleep(0)
        await kv.close()
        with pytest.raises(KVUnavailable, match="closed"):
            await pending
        assert errors == ["connection"]
        assert await kv.get("k") == b"v"  # a new connection
        assert kv.available
    finally:
        await kv.close()
