"""A scripted OpenAI-compatible upstream: a real HTTP/1.1 server on 127.0.0.1 in a thread.

It records every request and answers from a FIFO script of replies (see `replies`), falling back
to default chat, stream and model-list answers. Keep-alive, chunked SSE and concurrent
connections work as with a real upstream, so the router's pooled aiohttp client meets real sockets.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .openai_chunks import (
    DEFAULT_MODEL,
    MODELS,
    chunk,
    completion_dict,
    default_stream_chunks,
    finish_chunk,
    reasoning_chunks,
    split_text,
    text_chunks,
    tool_call,
    tool_call_chunks,
    usage_chunk,
    usage_dict,
)
from .replies import (
    Pause,
    Reply,
    close_connection,
    completion,
    delayed,
    endless_sse,
    error,
    hang,
    hang_until_closed,
    json_reply,
    pause,
    raw,
    sse,
    truncated_sse,
)

__all__ = [
    "MODELS",
    "FakeUpstream",
    "Pause",
    "Recorded",
    "Reply",
    "chunk",
    "close_connection",
    "completion",
    "completion_dict",
    "delayed",
    "endless_sse",
    "error",
    "finish_chunk",
    "hang",
    "hang_until_closed",
    "json_reply",
    "pause",
    "raw",
    "reasoning_chunks",
    "split_text",
    "sse",
    "text_chunks",
    "tool_call",
    "tool_call_chunks",
    "truncated_sse",
    "usage_chunk",
    "usage_dict",
]


@dataclass
class Recorded:
    """One request as the upstream received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or the raw bytes when the body is not JSON
    json: Any  # parsed JSON, or None
    raw: bytes
    client_port: int  # equal ports mean one keep-alive connection
    received_at: float  # time.monotonic()
    disconnected: bool = False  # the client went away while the reply was being written


def _parse_json(data: bytes) -> tuple[Any, bool]:
    try:
        return json.loads(data), True
    except ValueError:
        return None, False


def default_reply(request: Recorded) -> Reply:
    """The answer when the script is empty: chat, invocations and model listing."""
    body = request.json if isinstance(request.json, dict) else {}
    requested = body.get("model")
    model = requested if isinstance(requested, str) else DEFAULT_MODEL
    path = request.path.rstrip("/")
    if request.method == "POST" and path.endswith(("/chat/completions", "/invocations")):
        if body.get("stream") is True:
            return sse(default_stream_chunks(model))
        return json_reply(completion_dict(model=model))
    if request.method == "GET" and path.endswith("/models"):
        return json_reply({"data": MODELS})
    return error(404, f"fake upstream has no route for {request.method} {request.path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, upstream: FakeUpstream) -> None:
        self.upstream = upstream
        self.stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def track(self, sock: socket.socket) -> None:
        with self._sockets_lock:
            self._sockets.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._sockets_lock:
            self._sockets.discard(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client (the router) resetting a keep-alive connection is normal, not a fault of
        # the fake: keep such tracebacks out of the test output.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._sockets_lock:
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Parses one request, records it, and lets the scripted reply write the response."""

    protocol_version = "HTTP/1.1"  # keep-alive by default
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        request = self._record()
        reply = self.server.upstream.take_reply(request)
        try:
            reply.send(self)
        except OSError:
            request.disconnected = True
            self.close_connection = True

    def _record(self) -> Recorded:
        data = self._read_body()
        parsed, is_json = _parse_json(data) if data else (None, False)
        url = urlsplit(self.path)
        request = Recorded(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=self._lower_headers(),
            body=parsed if is_json else data,
            json=parsed,
            raw=data,
            client_port=self.client_address[1],
            received_at=time.monotonic(),
        )
        self.server.upstream.record(request)
        return request

    def _lower_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked_body()
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _read_chunked_body(self) -> bytes:
        parts = []
        while True:
            size_line = self.rfile.readline().split(b";")[0].strip()
            size = int(size_line or b"0", 16)
            if size == 0:
                break
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after the chunk data
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailer fields
        return b"".join(parts)

    # The `replies.Connection` interface.

    def send_body(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self._send_head(status, {**headers, "content-length": str(len(body))})
        self.wfile.write(body)

    def start_chunked(self, status: int, headers: Mapping[str, str]) -> None:
        self._send_head(status, {**headers, "transfer-encoding": "chunked"})

    def write_chunk(self, data: bytes) -> None:
        if data:  # an empty chunk would end the body
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def drop(self) -> None:
        self.close_connection = True
        _shutdown(self.connection)

    def sleep(self, seconds: float) -> bool:
        return not self.server.stopping.wait(seconds)

    def wait_for_close(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.05))
            if not readable:
                continue
            try:
                if not self.connection.recv(1, socket.MSG_PEEK):
                    return True  # orderly close (FIN)
            except OSError:
                return True  # reset
            time.sleep(0.05)  # bytes of a next request: not a close
        return False

    def _send_head(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


class FakeUpstream:
    """A scripted OpenAI-compatible server on 127.0.0.1; `url` has no path (add `/api/v1`)."""

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Condition()
        self._requests: list[Recorded] = []
        self._script: deque[tuple[Reply, str | None]] = deque()

    # Lifecycle.

    def start(self) -> FakeUpstream:
        if self._server is None:
            self._server = _Server(self._requested_port, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-upstream-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hanging or delayed replies, and close open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeUpstream is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Script.

    def enqueue(self, *replies: Reply, path: str | None = None) -> None:
        """Append replies to the FIFO script; with `path`, only requests whose path ends with
        it take them (other requests skip over them)."""
        with self._lock:
            self._script.extend((reply, path) for reply in replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        with self._lock:
            return len(self._script)

    def take_reply(self, request: Recorded) -> Reply:
        with self._lock:
            for position, (reply, path) in enumerate(self._script):
                if path is None or request.path.rstrip("/").endswith(path.rstrip("/")):
                    del self._script[position]
                    return reply
        return default_reply(request)

    # Records.

    def record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> Recorded:
        with self._lock:
            if not self._requests:
                raise AssertionError("the fake upstream has received no request")
            return self._requests[-1]

    def clear(self) -> None:
        """Forget recorded requests and unused scripted replies."""
        with self._lock:
            self._requests.clear()
            self._script.clear()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Recorded]:
        """Block until at least `n` requests were recorded; raise AssertionError on timeout."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= n, timeout):
                raise AssertionError(
                    f"expected {n} upstream requests within {timeout}s, got {len(self._requests)}"
                )
            return list(self._requests)
