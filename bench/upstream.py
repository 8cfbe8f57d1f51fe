"""A fast scripted OpenAI-compatible upstream for the benchmark (the floor).

Raw asyncio protocol (uvloop when available), hand-rolled HTTP/1.1 with keep-alive,
every response precomputed as bytes.

Routes
  POST */chat/completions   scripted reply; ``"stream": true`` in the body selects SSE
  GET  /health              200
  GET  */models              one model, for clients that list them
  POST /_bench/config       {"delay_ms": 20} sets the pause between stream chunks;
                            {"first_gap_ms": 5} (with delay_ms 0) sends the first chunk,
                            pauses, then the rest at once: TTFT without batching effects;
                            {"nonstream_delay_ms": 200} delays every non-streaming reply
                            {"latency_ms": 20} answers non-streaming requests after 20 ms
                            (the fixed-latency mock of LiteLLM's gateway benchmark)
  GET  /_bench/stats        request counters and the last request body (for checks)

Non-streaming reply: one assistant message of about 200 tokens.
Streaming reply: 50 content chunks, a finish chunk, a usage chunk, then ``data: [DONE]``,
sent as one write when the delay is 0, otherwise one chunk every ``delay_ms``
(the first content chunk goes out at once, so the floor's TTFT stays near zero).

Run: python bench/upstream.py --port 18000 [--delay-ms 0] [--tls-cert c.pem --tls-key k.pem]
(with a certificate it serves HTTPS: the TLS upstream scenario)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import ssl
import sys

MODEL = "bench-model"
N_CHUNKS = 50
# fmt: off
WORDS = [
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven",
    "wizards", "quietly", "examine", "forty", "jars", "of", "honey", "beside", "the", "river",
    "bank", "near", "an", "old", "mill",
]
# fmt: on


def _text_tokens(n: int) -> list[str]:
    return [(" " if i else "") + WORDS[i % len(WORDS)] for i in range(n)]


def build_nonstream_body() -> bytes:
    text = "".join(_text_tokens(200))
    return json.dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 812, "completion_tokens": 200, "total_tokens": 1012},
        },
        separators=(",", ":"),
    ).encode()


def build_stream_events() -> list[bytes]:
    """SSE events, each already framed as one HTTP/1.1 chunk."""
    toks = _text_tokens(N_CHUNKS * 4)
    base = {
        "id": "chatcmpl-bench0002",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
    }
    payloads = []
    for i in range(N_CHUNKS):
        delta: dict[str, object] = {"content": "".join(toks[i * 4 : (i + 1) * 4])}
        if i == 0:
            delta = {"role": "assistant", **delta}
        payloads.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    payloads.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    payloads.append(
        {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": 812,
                "completion_tokens": N_CHUNKS * 4,
                "total_tokens": 812 + N_CHUNKS * 4,
            },
        }
    )
    events = [b"data: " + json.dumps(p, separators=(",", ":")).encode() + b"\n\n" for p in payloads]
    events.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(e), e) for e in events]


NONSTREAM_BODY = build_nonstream_body()
NONSTREAM_RESP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    % len(NONSTREAM_BODY)
) + NONSTREAM_BODY
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
STREAM_CHUNKS = build_stream_events()
STREAM_TAIL = b"0\r\n\r\n"
STREAM_REST = b"".join(STREAM_CHUNKS[1:]) + STREAM_TAIL
STREAM_RESP_ALL = STREAM_HEAD + b"".join(STREAM_CHUNKS) + STREAM_TAIL


def _small(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
        % (status.encode(), ctype, len(body))
    ) + body


OK_RESP = _small("200 OK", b'{"status":"ok"}')
MODELS_RESP = _small(
    "200 OK",
    json.dumps(
        {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}
    ).encode(),
)
NOT_FOUND = _small("404 Not Found", b'{"error":"not found"}')


class State:
    delay_s = 0.0
    latency_s = 0.0  # non-streaming: answer after this long (the gateway benchmark's mock)
    first_gap_s = 0.0
    n_nonstream = 0
    n_stream = 0
    last_body = b""
    unknown: set[bytes] = set()


class Upstream(asyncio.Protocol):
    __slots__ = ("buf", "busy", "close_after", "loop", "t")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.busy = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.busy = True  # stops any paced stream

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while not self.busy:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            pos = end + 4
            cl = head.find(b"\r\ncontent-length:")
            if cl >= 0:
                eol = head.find(b"\r\n", cl + 2)
                n = int(head[cl + 17 : eol if eol >= 0 else len(head)])
                if len(buf) < pos + n:
                    return
                body = bytes(buf[pos : pos + n])
                del buf[: pos + n]
            elif b"transfer-encoding: chunked" in head:
                body_parts = []
                p = pos
                while True:
                    e = buf.find(b"\r\n", p)
                    if e < 0:
                        return
                    size = int(bytes(buf[p:e]).split(b";")[0], 16)
                    if len(buf) < e + 2 + size + 2:
                        return
                    if size == 0:
                        # no trailers expected
                        p = e + 4
                        break
                    body_parts.append(bytes(buf[e + 2 : e + 2 + size]))
                    p = e + 2 + size + 2
                body = b"".join(body_parts)
                del buf[:p]
            else:
                body = b""
                del buf[:pos]
            self.close_after = b"\r\nconnection: close" in head
            self.handle(head, body)

    def handle(self, head: bytes, body: bytes) -> None:
        line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
        parts = line.split(b" ")
        method, path = parts[0], parts[1] if len(parts) > 1 else b"/"
        t = self.t
        if method == b"post" and path.endswith(b"/chat/completions"):
            State.last_body = body
            if b'"stream":true' in body or b'"stream": true' in body:
                State.n_stream += 1
                if State.delay_s <= 0 and State.first_gap_s <= 0:
                    t.write(STREAM_RESP_ALL)
                else:
                    self.busy = True
                    t.write(STREAM_HEAD + STREAM_CHUNKS[0])
                    self.loop.call_later(State.first_gap_s or State.delay_s, self._next_chunk, 1)
                    return
            else:
                State.n_nonstream += 1
                if State.latency_s > 0:
                    self.busy = True
                    self.loop.call_later(State.latency_s, self._answer_late)
                    return
                t.write(NONSTREAM_RESP)
        elif method == b"get" and path.endswith(b"/models"):
            t.write(MODELS_RESP)
        elif path == b"/health" or path == b"/":
            t.write(OK_RESP)
        elif method == b"post" and path == b"/_bench/config":
            cfg = json.loads(body or b"{}")
            State.delay_s = float(cfg.get("delay_ms", 0)) / 1000.0
            State.first_gap_s = float(cfg.get("first_gap_ms", 0)) / 1000.0
            State.latency_s = (
                float(cfg.get("latency_ms", cfg.get("nonstream_delay_ms", 0))) / 1000.0
            )
            t.write(
                _small(
                    "200 OK",
                    json.dumps(
                        {"delay_ms": State.delay_s * 1000, "first_gap_ms": State.first_gap_s * 1000}
                    ).encode(),
                )
            )
        elif path == b"/_bench/stats":
            t.write(
                _small(
                    "200 OK",
                    json.dumps(
                        {
                            "nonstream": State.n_nonstream,
                            "stream": State.n_stream,
                            "delay_ms": State.delay_s * 1000,
                            "last_body": State.last_body.decode("utf-8", "replace"),
                        }
                    ).encode(),
                )
            )
        else:
            if path not in State.unknown:
                State.unknown.add(path)
                print(
                    f"upstream: 404 for {method.decode()} {path.decode()}",
                    file=sys.stderr,
                    flush=True,
                )
            t.write(NOT_FOUND)
        if self.close_after:
            t.close()

    def _answer_late(self) -> None:
        if self.t.is_closing():
            return
        self.t.write(NONSTREAM_RESP)
        self._done()

    def _done(self) -> None:
        self.busy = False
        if self.close_after:
            self.t.close()
        elif self.buf:
            self.data_received(b"")

    def _next_chunk(self, i: int) -> None:
        t = self.t
        if t.is_closing():
            return
        if State.delay_s <= 0:  # first-gap mode: the rest in one write
            t.write(STREAM_REST)
            i = len(STREAM_CHUNKS)
        elif i < len(STREAM_CHUNKS):
            t.write(STREAM_CHUNKS[i])
            # usage chunk and [DONE] follow the finish chunk without a pause
            delay = State.delay_s if i < N_CHUNKS - 1 else 0.0
            if delay:
                self.loop.call_later(delay, self._next_chunk, i + 1)
            else:
                self._next_chunk(i + 1)
            return
        else:
            t.write(STREAM_TAIL)
        self._done()


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        Upstream, host, port, backlog=4096, reuse_address=True, ssl=tls
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scheme = "https" if tls else "http"
    print(f"upstream listening on {scheme}://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18000)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM) ...")
    ap.add_argument("--tls-key", help="... and this key (PEM)")
    a = ap.parse_args()
    tls = None
    if a.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(a.tls_cert, a.tls_key)
    State.delay_s = a.delay_ms / 1000.0
    raise_nofile()
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        print("uvloop not installed; using the default asyncio loop", file=sys.stderr)
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main(a.host, a.port, tls))
    except KeyboardInterrupt:
        pass
    os._exit(0)
