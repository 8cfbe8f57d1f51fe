"""A stream read to its end gives its upstream connection back to the pool: the next
request rides the same keep-alive connection instead of a new TCP (or TLS) handshake."""

from __future__ import annotations

import httpx
import pytest

from support import openai_chunks as oc
from support import replies
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 20,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_finished_streams_reuse_one_upstream_connection(router, upstream: FakeUpstream):
    for _ in range(3):
        upstream.enqueue(
            replies.sse([*oc.text_chunks("abc", 2), oc.finish_chunk(), oc.usage_chunk()])
        )
    with httpx.Client(base_url=router.url, timeout=10) as client:
        for _ in range(3):
            response = client.post("/v1/messages", json=BODY)
            assert response.status_code == 200
            assert "event: message_stop" in response.text
    ports = [request.client_port for request in upstream.requests]
    assert len(ports) == 3
    assert len(set(ports)) == 1, ports
