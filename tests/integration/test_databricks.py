"""Azure Databricks specifics, through the real server and the Anthropic SDK: OAuth
machine-to-machine tokens, Databricks' error envelope, and Claude's reasoning content arrays
on the chat route (`/serving-endpoints/{endpoint}/invocations`). The SDK-driven core suite
runs against Databricks too (test_messages.py `[databricks]`); the native Anthropic route has
its own module (test_databricks_native.py)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import anthropic
import httpx
import pytest

from support import openai_chunks as oc
from support import replies
from support.backends import DATABRICKS, DATABRICKS_PAT
from support.router import RouterProcess
from support.upstream import FakeUpstream, Recorded

pytestmark = pytest.mark.integration

USER_HI = [{"role": "user", "content": "hi"}]
CLIENT_ID = "sp-client-id-0000"
CLIENT_SECRET = "dose-test-secret-0000"
TOKEN_PATH = "/oidc/v1/token"
CHAT_PATH = "/serving-endpoints/databricks-claude-sonnet-4-5/invocations"
LLAMA = "databricks-meta-llama-3-3-70b-instruct"
OAUTH_ENV = {
    "DATABRICKS_PAT": None,
    "DATABRICKS_CLIENT_ID": CLIENT_ID,
    "DATABRICKS_CLIENT_SECRET": CLIENT_SECRET,
}


def token_reply(token: str = "tok-1", expires_in: int = 3600) -> replies.Reply:
    body = {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}
    return replies.json_reply(body)


def assert_token_request(seen: Recorded) -> None:
    """HTTP Basic client credentials and the client-credentials form, as Databricks wants."""
    assert (seen.method, seen.path) == ("POST", TOKEN_PATH)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {basic}"
    assert seen.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qsl(seen.raw.decode()) == [
        ("grant_type", "client_credentials"),
        ("scope", "all-apis"),
    ]


def anthropic_message(text: str) -> dict[str, Any]:
    """An answer of the native Anthropic route."""
    return {
        "id": "msg_dbx_1",
        "type": "message",
        "role": "assistant",
        "model": "databricks-claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }


@pytest.fixture(scope="module")
def pat_router(upstream: FakeUpstream) -> Iterator[RouterProcess]:
    """PAT auth, Claude endpoints on the chat route, no retries (errors reach the client)."""
    env = {**DATABRICKS.env(upstream.url), "UPSTREAM_MAX_RETRIES": "0"}
    with RouterProcess(upstream.url, env) as process:
        yield process


@pytest.fixture
def sdk(pat_router: RouterProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=pat_router.url, api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def oauth_router(router_factory: Any, upstream: FakeUpstream) -> RouterProcess:
    """OAuth M2M instead of a PAT; a fresh process per test, so no token is cached yet."""
    router: RouterProcess = router_factory(env={**DATABRICKS.env(upstream.url), **OAUTH_ENV})
    return router


# OAuth machine-to-machine.


def test_oauth_token_is_fetched_once_and_reused(oauth_router, upstream: FakeUpstream):
    upstream.enqueue(token_reply(), path=TOKEN_PATH)
    with anthropic.Anthropic(base_url=oauth_router.url, api_key="k", max_retries=0) as client:
        first = client.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=USER_HI
        )
        with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=5, messages=USER_HI
        ) as stream:
            second = stream.get_final_message()
    assert first.parse().content[0].text == oc.DEFAULT_TEXT
    assert first.headers["x-anthropic-router-backend"] == "databricks"
    assert second.content[0].text == oc.DEFAULT_TEXT
    token, *chats = upstream.requests
    assert_token_request(token)
    # Both chat requests carry the token; the second reused it without a new token call.
    assert [(r.path, r.headers["authorization"]) for r in chats] == [
        (CHAT_PATH, "Bearer tok-1"),
        (CHAT_PATH, "Bearer tok-1"),
    ]
    assert chats[1].json["stream"] is True
    assert CLIENT_SECRET not in oauth_router.logs() and "tok-1" not in oauth_router.logs()


def test_oauth_token_is_refreshed_before_it_expires(oauth_router, upstream: FakeUpstream):
    # 61 s of life minus the one-minute refresh margin: stale after about a second.
    upstream.enqueue(token_reply("tok-1", expires_in=61), path=TOKEN_PATH)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": USER_HI}
    assert httpx.post(f"{oauth_router.url}/v1/messages", json=body).status_code == 200
    time.sleep(1.2)
    upstream.enqueue(token_reply("tok-2"), path=TOKEN_PATH)
    assert httpx.post(f"{oauth_router.url}/v1/messages", json=body).status_code == 200
    assert [(r.path, r.headers["authorization"]) for r in upstream.requests[1::2]] == [
        (CHAT_PATH, "Bearer tok-1"),
        (CHAT_PATH, "Bearer tok-2"),
    ]
    assert [r.path for r in upstream.requests[::2]] == [TOKEN_PATH, TOKEN_PATH]


def test_oauth_token_is_shared_by_the_chat_and_native_routes(
    router_factory, upstream: FakeUpstream
):
    env = {**DATABRICKS.env(upstream.url), **OAUTH_ENV, "DATABRICKS_NATIVE_ANTHROPIC": None}
    router = router_factory(env=env)
    upstream.enqueue(token_reply(), path=TOKEN_PATH)
    upstream.enqueue(replies.json_reply(anthropic_message("native")), path="/v1/messages")
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        claude = client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=USER_HI)
        llama = client.messages.create(model=LLAMA, max_tokens=5, messages=USER_HI)
    assert claude.content[0].text == "native" and llama.content[0].text == oc.DEFAULT_TEXT
    assert [(r.path, r.headers["authorization"]) for r in upstream.requests[1:]] == [
        ("/serving-endpoints/anthropic/v1/messages", "Bearer tok-1"),
        (f"/serving-endpoints/{LLAMA}/invocations", "Bearer tok-1"),
    ]
    assert_token_request(upstream.requests[0])


def test_token_endpoint_failure_is_a_clear_anthropic_error(oauth_router, upstream: FakeUpstream):
    refused = {"error": "invalid_client", "error_description": "Client authentication failed"}
    upstream.enqueue(replies.json_reply(refused, status=401), path=TOKEN_PATH)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": USER_HI}
    response = httpx.post(f"{oauth_router.url}/v1/messages", json=body)
    # The router's own credential failed: a 502, not a 401 the client would take as its key.
    assert response.status_code == 502
    error = response.json()
    assert error["type"] == "error" and error["request_id"] == response.headers["request-id"]
    assert error["error"]["type"] == "api_error"
    message = error["error"]["message"]
    assert message == (
        "Databricks OAuth token request failed (401): invalid_client: Client authentication failed"
    )
    assert CLIENT_SECRET not in message
    assert [r.path for r in upstream.requests] == [TOKEN_PATH]  # no chat request without a token
    assert_token_request(upstream.last)
    # The SDK sees it as its own error class; a failed fetch is not cached: the next request
    # asks again and, once the endpoint answers, is served.
    upstream.enqueue(replies.json_reply(refused, status=401), path=TOKEN_PATH)
    with anthropic.Anthropic(base_url=oauth_router.url, api_key="k", max_retries=0) as client:
        with pytest.raises(anthropic.InternalServerError, match="OAuth token request failed"):
            client.messages.create(**body)
        upstream.enqueue(token_reply(), path=TOKEN_PATH)
        assert client.messages.create(**body).content[0].text == oc.DEFAULT_TEXT
    assert [r.path for r in upstream.requests] == [TOKEN_PATH] * 3 + [CHAT_PATH]
    assert upstream.last.headers["authorization"] == "Bearer tok-1"


# Databricks' error envelope.


def test_rate_limit_envelope_is_a_rate_limit_error(sdk: anthropic.Anthropic, upstream):
    limited = {
        "error_code": "REQUEST_LIMIT_EXCEEDED",
        "message": "Exceeded workspace rate limit for databricks-claude-sonnet-4-5.",
    }
    upstream.enqueue(replies.json_reply(limited, status=429, headers={"retry-after": "3"}))
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=USER_HI)
    assert caught.value.status_code == 429
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "Exceeded workspace rate limit for databricks-claude-sonnet-4-5." in str(caught.value)
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    assert upstream.last.path == CHAT_PATH
    assert upstream.last.headers["authorization"] == f"Bearer {DATABRICKS_PAT}"


def test_rate_limit_envelope_is_retried(router_factory, upstream: FakeUpstream):
    router = router_factory(env={**DATABRICKS.env(upstream.url), "UPSTREAM_MAX_RETRIES": "1"})
    limited = {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}
    upstream.enqueue(replies.json_reply(limited, status=429), replies.completion("second try"))
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        message = client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=USER_HI)
    assert message.content[0].text == "second try"
    assert [r.path for r in upstream.requests] == [CHAT_PATH, CHAT_PATH]


# Claude's reasoning as content arrays on the chat route.

THINKING = {"type": "enabled", "budget_tokens": 1024}


def reasoning_item(text: str, signature: str = "") -> dict[str, Any]:
    summary = {"type": "summary_text", "text": text, "signature": signature}
    return {"type": "reasoning", "summary": [summary]}


def test_reasoning_content_array_becomes_signed_thinking(sdk, upstream: FakeUpstream):
    content = [reasoning_item("think", "sig"), {"type": "text", "text": "answer"}]
    upstream.enqueue(replies.completion(extra_message_fields={"content": content}))
    message = sdk.messages.create(
        model="claude-sonnet-4-5", max_tokens=2000, thinking=THINKING, messages=USER_HI
    )
    assert [block.model_dump() for block in message.content] == [
        {"type": "thinking", "thinking": "think", "signature": "sig"},
        {"type": "text", "text": "answer", "citations": None},
    ]
    assert message.stop_reason == "end_turn"
    assert upstream.last.path == CHAT_PATH
    assert upstream.last.json["thinking"] == THINKING  # Anthropic's own field, for Claude


def test_streamed_reasoning_content_lists_become_signed_thinking(sdk, upstream: FakeUpstream):
    upstream.enqueue(
        replies.sse(
            [
                oc.chunk({"role": "assistant", "content": [reasoning_item("thi")]}),
                oc.chunk({"content": [reasoning_item("nk")]}),
                oc.chunk({"content": [reasoning_item("", "sig")]}),
                oc.chunk({"content": [{"type": "text", "text": "ans"}]}),
                oc.chunk({"content": [{"type": "text", "text": "wer"}]}),
                oc.finish_chunk(),
                oc.usage_chunk(),
            ]
        )
    )
    with sdk.messages.stream(
        model="claude-sonnet-4-5", max_tokens=2000, thinking=THINKING, messages=USER_HI
    ) as stream:
        events = [(event.type, getattr(event, "delta", None)) for event in stream]
        final = stream.get_final_message()
    assert [block.model_dump() for block in final.content] == [
        {"type": "thinking", "thinking": "think", "signature": "sig"},
        {"type": "text", "text": "answer", "citations": None},
    ]
    deltas = [delta.type for kind, delta in events if kind == "content_block_delta"]
    assert deltas == [
        "thinking_delta",
        "thinking_delta",
        "signature_delta",
        "text_delta",
        "text_delta",
    ]
    assert upstream.last.json["stream"] is True and upstream.last.json["thinking"] == THINKING
