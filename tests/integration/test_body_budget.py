"""MAX_INFLIGHT_BODY_BYTES: the bytes of request bodies being read at once are bounded;
past the bound a request is shed with a 529 that clients retry, and the bytes come back."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

BUDGET = 1024 * 1024


def _body(size: int) -> bytes:
    text = "x" * (size - 120)
    return json.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": text}],
        }
    ).encode()


def _start_slow_request(port: int, body: bytes, sent: int) -> socket.socket:
    """A client that has sent the headers and `sent` bytes of `body`, and waits."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:sent])
    return sock


def _first_shed(url: str, body: bytes, seconds: float = 10.0) -> httpx.Response:
    """Post `body` until it is shed: the slow client's bytes reach the router's budget as
    the kernel delivers them."""
    deadline = time.monotonic() + seconds
    while True:
        response = httpx.post(f"{url}/v1/messages", content=body, timeout=10)
        if response.status_code == 529 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_bodies_past_the_budget_are_shed_with_529_and_the_bytes_come_back(
    router_factory, upstream: FakeUpstream
):
    router = router_factory(env={"MAX_INFLIGHT_BODY_BYTES": str(BUDGET)})
    big = _body(900 * 1024)
    slow = _start_slow_request(router.port, big, 800 * 1024)
    try:
        shed = _first_shed(router.url, _body(400 * 1024))
        assert shed.status_code == 529
        assert shed.json()["error"]["type"] == "overloaded_error"
        assert shed.headers["retry-after"] == "1"
        # A small request still fits in what is left.
        small = httpx.post(f"{router.url}/v1/messages", content=_body(4 * 1024), timeout=10)
        assert small.status_code == 200
        slow.sendall(big[800 * 1024 :])
        reply = slow.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200")
    finally:
        slow.close()
    # The slow request's bytes were given back: the same large body now passes.
    again = httpx.post(f"{router.url}/v1/messages", content=_body(400 * 1024), timeout=10)
    assert again.status_code == 200


def test_a_client_that_leaves_mid_body_gives_its_bytes_back(router_factory, upstream):
    router = router_factory(env={"MAX_INFLIGHT_BODY_BYTES": str(BUDGET)})
    big = _body(900 * 1024)
    for _ in range(3):  # would exhaust the budget at once if the bytes were kept
        slow = _start_slow_request(router.port, big, 800 * 1024)
        time.sleep(0.3)
        slow.close()
    time.sleep(0.5)
    response = httpx.post(f"{router.url}/v1/messages", content=_body(400 * 1024), timeout=10)
    assert response.status_code == 200
