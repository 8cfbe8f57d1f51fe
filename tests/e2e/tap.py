"""A recording reverse proxy on 127.0.0.1, put between a client and the router.

It records each request exactly as the client sent it (the router does not keep bodies), so a
test can compare what Claude Code sent with what the fake upstream received. Responses are
passed through unchanged, streamed chunk by chunk as they arrive.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "content-length", "host"}
)


@dataclass(frozen=True)
class Tapped:
    """One request as the client sent it."""

    method: str
    target: str  # path and query
    headers: dict[str, str]  # lower-case names
    raw: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.raw)
        except ValueError:
            return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.tap.record(Tapped(self.command, self.path, headers, raw))
        forwarded = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        forwarded["Content-Length"] = str(len(raw))
        target = urlsplit(self.server.tap.target)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        try:
            upstream.request(self.command, self.path, body=raw, headers=forwarded)
            response = upstream.getresponse()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            if self.command == "HEAD":
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while data := response.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        finally:
            upstream.close()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tap: Tap) -> None:
        self.tap = tap
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client closing its keep-alive connection is not a test failure


class Tap:
    """`with Tap(router.url) as tap:` then point the client at `tap.url`."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._requests: list[Tapped] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def record(self, request: Tapped) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[Tapped]:
        with self._lock:
            return list(self._requests)

    def posts(self, path: str) -> list[Tapped]:
        """The POST requests to `path` (query ignored), oldest first."""
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("Tap is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Tap:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            with contextlib.suppress(OSError):
                server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
