"""The lean upstream HTTP/1.1 client against a real loopback server that answers with
scripted bytes: framing (length, chunked, close-delimited), keep-alive reuse and its limits,
a stale pooled connection, compression, informational answers, failures, backpressure."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from anthropic_router.errors import ApiError
from anthropic_router.providers import http1
from support.tls import self_signed

pytestmark = pytest.mark.anyio

Script = Callable[[int, bytes], list[bytes | float | None]]


class ScriptedServer:
    """Reads each request (head + Content-Length body), then plays `script(n, request)`:
    bytes are written, a float is a pause, None closes the connection."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0)  # the handlers see EOF and end before the loop does

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://localhost:{port}/v1/chat"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                for step in self.script(len(self.requests), request):
                    if step is None:
                        writer.close()
                        return
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    else:
                        writer.write(step)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def ok(body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


async def post(pool: http1.Pool, url: str, body: bytes = b"{}", timeout: float = 5.0) -> bytes:
    head = http1.encode_head("POST", http1.target_of(url), pool.origin.host_header, {})
    response = await pool.request(head, body, timeout)
    try:
        return b"".join([part async for part in _parts(response)])
    finally:
        response.release()


async def _parts(response: http1.Response) -> AsyncIterator[bytes]:
    while part := await response.readany():
        yield part


def make_pool(url: str, **kw: float) -> http1.Pool:
    return http1.Pool(http1.Origin(url), connect_timeout=kw.pop("connect_timeout", 2.0), **kw)


async def test_keep_alive_reuses_one_connection_and_sends_the_request_whole() -> None:
    async with ScriptedServer(lambda n, _: [ok(b"answer %d" % n)]) as server:
        pool = make_pool(server.url)
        assert await post(pool, server.url, b'{"a":1}') == b"answer 1"
        assert await post(pool, server.url, b'{"a":2}') == b"answer 2"
        pool.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat HTTP/1.1\r\nHost: localhost:")
    assert b"\r\nContent-Length: 7\r\n\r\n" in first and first.endswith(b'{"a":1}')


async def test_chunked_body_arrives_in_order_and_buffered_chunks_come_as_one_read() -> None:
    parts = [chunk(b"data: %d\n\n" % i) for i in range(5)]
    script = [CHUNKED_HEAD, parts[0], 0.05, b"".join(parts[1:]), b"0\r\n\r\n"]
    async with ScriptedServer(lambda n, _: script) as server:
        pool = make_pool(server.url)
        head = http1.encode_head("POST", b"/v1/chat", pool.origin.host_header, {})
        response = await pool.request(head, b"{}", 5.0)
        assert response.status == 200
        assert response.headers["content-type"] == "text/event-stream"
        reads = [part async for part in _parts(response)]
        response.release()
        assert b"".join(reads) == b"".join(b"data: %d\n\n" % i for i in range(5))
        # The four chunks written at once reach the reader as one piece, not four.
        assert len(reads) <= 3
        again = await post(pool, server.url)  # the script replays: the connection was kept
        assert again == b"".join(b"data: %d\n\n" % i for i in range(5))
        pool.close()
    assert server.connections == 1


async def test_close_delimited_body_ends_at_eof_and_the_connection_is_not_reused() -> None:
    reply = [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ", 0.02, b"part two", None]
    async with ScriptedServer(lambda n, _: reply) as server:
        pool = make_pool(server.url)
        assert await post(pool, server.url) == b"part one, part two"
        assert await post(pool, server.url) == b"part one, part two"
        pool.close()
    assert server.connections == 2


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [(b"gzip", gzip.compress), (b"deflate", zlib.compress)],  # deflate: the zlib format
)
async def test_compressed_body_is_decoded(
    encoding: bytes, compress: Callable[[bytes], bytes]
) -> None:
    plain = b'{"choices": []}' * 100
    reply = [ok(compress(plain), b"Content-Encoding: " + encoding)]
    async with ScriptedServer(lambda n, _: reply) as server:
        pool = make_pool(server.url)
        assert await post(pool, server.url) == plain
        pool.close()


async def test_unknown_content_encoding_is_an_error_not_garbage() -> None:
    reply = [ok(b"\x00\x01", b"Content-Encoding: br")]
    async with ScriptedServer(lambda n, _: reply) as server:
        pool = make_pool(server.url)
        with pytest.raises(http1.UpstreamClosed, match="content-encoding"):
            await post(pool, server.url)
        pool.close()


async def test_a_pooled_connection_the_server_dropped_is_replaced_transparently() -> None:
    # The server answers, then closes the idle connection (keep-alive timeout on its side).
    async with ScriptedServer(lambda n, _: [ok(b"n%d" % n), 0.01, None]) as server:
        pool = make_pool(server.url)
        assert await post(pool, server.url) == b"n1"
        await asyncio.sleep(0.1)  # the close has arrived: the pool must notice and reconnect
        assert await post(pool, server.url) == b"n2"
        pool.close()
    assert server.connections == 2


async def test_a_stale_connection_found_only_on_write_is_retried_once() -> None:
    # Each connection answers one request and closes without a word as the next one comes.
    def script(n: int, _: bytes) -> list[bytes | float | None]:
        return [ok(b"n%d" % n)] if n % 2 else [None]

    async with ScriptedServer(script) as server:
        pool = make_pool(server.url)
        assert await post(pool, server.url) == b"n1"
        assert await post(pool, server.url) == b"n3"  # request 2 was dropped; 3 answered
        pool.close()
    assert server.connections == 2


async def test_keep_alive_timeout_header_retires_the_connection_before_the_server_does() -> None:
    reply = [ok(b"x", b"Keep-Alive: timeout=1")]  # 1 s, less the 1 s margin: never reused
    async with ScriptedServer(lambda n, _: reply) as server:
        pool = make_pool(server.url)
        await post(pool, server.url)
        await post(pool, server.url)
        pool.close()
    assert server.connections == 2


async def test_idle_connections_past_their_keep_alive_time_are_closed_by_the_sweep() -> None:
    async with ScriptedServer(lambda n, _: [ok(b"x")]) as server:
        pool = make_pool(server.url, keepalive_timeout=0.2)
        await asyncio.gather(*[post(pool, server.url) for _ in range(5)])
        assert len(pool._idle) == 5
        for _ in range(100):  # no request comes: the sweep alone must close them
            if not pool._idle:
                break
            await asyncio.sleep(0.05)
        assert pool._idle == []
        pool.close()
    assert server.connections == 5


async def test_informational_answer_before_the_real_one_is_skipped() -> None:
    reply = [b"HTTP/1.1 100 Continue\r\n\r\n", ok(b"final")]
    async with ScriptedServer(lambda n, _: reply) as server:
        pool = make_pool(server.url)
        assert await post(pool, server.url) == b"final"
        assert await post(pool, server.url) == b"final"
        pool.close()
    assert server.connections == 1


async def test_headers_late_is_a_timeout_and_the_connection_is_dropped() -> None:
    async with ScriptedServer(lambda n, _: [1.0, ok(b"late")]) as server:
        pool = make_pool(server.url)
        with pytest.raises(TimeoutError):
            await post(pool, server.url, timeout=0.2)
        assert pool._idle == []
        pool.close()


async def test_connection_refused_is_an_os_error() -> None:
    async with ScriptedServer(lambda n, _: []) as server:
        url = server.url
    pool = make_pool(url)  # the server is gone: nothing listens on its port
    with pytest.raises(OSError):
        await post(pool, url)


async def test_cut_mid_body_is_an_upstream_closed_error() -> None:
    reply = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part", None]
    async with ScriptedServer(lambda n, _: reply) as server:
        pool = make_pool(server.url)
        with pytest.raises(http1.UpstreamClosed):
            await post(pool, server.url)
        pool.close()


async def test_malformed_answer_is_an_upstream_closed_error() -> None:
    async with ScriptedServer(lambda n, _: [b"SPDY/3 what\r\n\r\n"]) as server:
        pool = make_pool(server.url)
        with pytest.raises(http1.UpstreamClosed, match="malformed"):
            await post(pool, server.url)
        pool.close()


async def test_released_before_the_end_the_connection_is_closed_not_pooled() -> None:
    script = [CHUNKED_HEAD, chunk(b"first"), 0.2, chunk(b"second"), b"0\r\n\r\n"]
    async with ScriptedServer(lambda n, _: script) as server:
        pool = make_pool(server.url)
        head = http1.encode_head("POST", b"/v1/chat", pool.origin.host_header, {})
        response = await pool.request(head, b"{}", 5.0)
        assert await response.readany() == b"first"
        response.release()  # the client went away mid-stream
        assert pool._idle == []
        assert await post(pool, server.url) == b"firstsecond"
        pool.close()
    assert server.connections == 2


async def test_a_body_beyond_the_high_water_mark_pauses_reading_and_arrives_intact() -> None:
    big = bytes(range(256)) * (3 * http1.HIGH_WATER // 256)
    async with ScriptedServer(lambda n, _: [ok(big)]) as server:
        pool = make_pool(server.url)
        head = http1.encode_head("POST", b"/v1/chat", pool.origin.host_header, {})
        response = await pool.request(head, b"{}", 5.0)
        await asyncio.sleep(0.2)  # let the server fill the buffer: reading pauses at the mark
        assert response._buffered <= http1.HIGH_WATER + 256 * 1024
        got = b"".join([part async for part in _parts(response)])
        response.release()
        assert got == big
        pool.close()


async def test_tls_upstream_is_verified_and_kept_alive(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with ScriptedServer(lambda n, _: [ok(b"secure %d" % n)], tls=server_tls) as server:
        untrusted = make_pool(server.url)  # the system's trust store knows no such issuer
        with pytest.raises(ssl.SSLError):
            await post(untrusted, server.url)
        pool = make_pool(server.url)
        assert pool.origin.ssl is not None
        pool.origin.ssl.load_verify_locations(cert)  # as SSL_CERT_FILE would
        assert await post(pool, server.url) == b"secure 1"
        assert await post(pool, server.url) == b"secure 2"
        pool.close()
    assert server.connections == 1  # one kept-alive connection (the refused handshake never got in)


def test_header_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(ApiError) as caught:
        http1.encode_headers({"x-request-id": "abc\r\nX-Injected: 1"})
    assert caught.value.error_type == "invalid_request_error"
    assert http1.encode_headers({"x-a": "1"}) == b"x-a: 1\r\n"


def test_origin_host_header_and_target() -> None:
    assert http1.Origin("https://openrouter.ai/api/v1").host_header == "openrouter.ai"
    assert http1.Origin("https://openrouter.ai/api/v1").port == 443
    assert http1.Origin("http://[::1]:8080/v1").host_header == "[::1]:8080"
    assert http1.target_of("http://h/a/b?x=1") == b"/a/b?x=1"
    with pytest.raises(ValueError):
        http1.Origin("ftp://example.com/")


def test_keep_alive_header_parsing() -> None:
    assert http1._keepalive("timeout=5, max=100") == 4.0
    assert http1._keepalive("max=100") == float("inf")
    assert http1._keepalive("timeout=abc") == float("inf")
