"""Fallback across targets and backends: the real server with two loopback upstreams (an
OpenRouter-like primary and an OpenAI-compatible secondary), driven by the SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from support import openai_chunks as oc
from support import replies
from support.router import RouterProcess, free_port
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

USER_HI = [{"role": "user", "content": "hi"}]

ROUTES = """
routes:
  claude-sonnet-*:
    model: primary/model-a
    fallbacks:
      - primary/model-b
      - {backend: openai_compatible, model: local-model}
  claude-dead-*:
    model: dead/model
    backend: openai_compatible
    fallbacks: [{backend: openrouter, model: primary/model-a}]
"""


@pytest.fixture(scope="module")
def secondary() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def fallback_router(
    upstream: FakeUpstream, secondary: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    routes: Path = tmp_path_factory.mktemp("routes") / "routes.yaml"
    routes.write_text(ROUTES)
    env = {
        "MODEL_MAP_FILE": str(routes),
        "OPENAI_COMPATIBLE_BASE_URL": f"{secondary.url}/v1",
        "UPSTREAM_MAX_RETRIES": "0",
    }
    with RouterProcess(upstream.url, env) as process:
        yield process


@pytest.fixture
def sdk(fallback_router: RouterProcess, secondary: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    secondary.clear()
    with anthropic.Anthropic(base_url=fallback_router.url, api_key="k", max_retries=0) as client:
        yield client


def _exchanges(router: RouterProcess, request_id: str | None = None) -> list[dict]:
    """The exchange records so far; with `request_id`, after waiting (up to 5 s) for that
    exchange's own record, which is logged once the response has been sent."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in router.logs().splitlines() if line.startswith("{")]
        records = [line for line in lines if line.get("event") == "exchange"]
        if request_id is None or any(r.get("request_id") == request_id for r in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"no exchange record for {request_id}")
        time.sleep(0.05)


def test_retryable_failures_fall_through_the_targets_in_order(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, secondary: FakeUpstream, fallback_router
):
    upstream.enqueue(replies.error(503, "overloaded"), replies.error(429, "slow down"))
    secondary.enqueue(replies.completion("from the local model"))
    raw = sdk.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=20, messages=USER_HI
    )
    message = raw.parse()
    assert message.content[0].text == "from the local model"
    assert message.model == "claude-sonnet-4-5"
    assert raw.headers["x-anthropic-router-backend"] == "openai_compatible"
    assert raw.headers["x-anthropic-router-upstream-model"] == "local-model"
    assert raw.headers["x-anthropic-router-fallback"] == (
        "openrouter:primary/model-a (overloaded_error) -> "
        "openrouter:primary/model-b (rate_limit_error)"
    )
    assert [r.json["model"] for r in upstream.requests] == ["primary/model-a", "primary/model-b"]
    assert secondary.last.path == "/v1/chat/completions"
    assert secondary.last.json["model"] == "local-model"
    record = _exchanges(fallback_router, raw.headers["request-id"])[-1]
    assert record["backend"] == "openai_compatible" and record["upstream_model"] == "local-model"
    assert record["fallback"] == raw.headers["x-anthropic-router-fallback"]


def test_a_client_error_does_not_fall_back(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, secondary: FakeUpstream
):
    upstream.enqueue(replies.error(400, "bad tool schema"))
    with pytest.raises(anthropic.BadRequestError, match="bad tool schema"):
        sdk.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=USER_HI)
    assert len(upstream.requests) == 1 and secondary.requests == []


def test_stream_falls_back_when_the_first_backend_is_unreachable(
    fallback_router, upstream: FakeUpstream, secondary: FakeUpstream, tmp_path
):
    # claude-dead-* goes first to an OpenAI-compatible server on a port nobody listens on.
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    env = {
        "MODEL_MAP_FILE": str(routes),
        "OPENAI_COMPATIBLE_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
        "UPSTREAM_MAX_RETRIES": "0",
    }
    upstream.enqueue(
        replies.sse([*oc.text_chunks("rescued", 2), oc.finish_chunk(), oc.usage_chunk()])
    )
    with (
        RouterProcess(upstream.url, env) as router,
        anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client,
    ):
        with client.messages.stream(model="claude-dead-1", max_tokens=20, messages=USER_HI) as s:
            final = s.get_final_message()
            headers = s.response.headers
        record = _exchanges(router, headers["request-id"])[-1]
    assert final.content[0].text == "rescued"
    assert headers["x-anthropic-router-backend"] == "openrouter"
    assert headers["x-anthropic-router-fallback"] == "openai_compatible:dead/model (api_error)"
    assert upstream.last.json["model"] == "primary/model-a" and upstream.last.json["stream"]
    assert record["fallback"] == "openai_compatible:dead/model (api_error)"


def test_no_fallback_once_the_stream_has_started(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, secondary: FakeUpstream
):
    upstream.enqueue(replies.truncated_sse(oc.text_chunks("half an ans", 2)))
    with (
        pytest.raises(anthropic.APIError),
        sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=20, messages=USER_HI) as stream,
    ):
        stream.get_final_message()
    assert len(upstream.requests) == 1 and secondary.requests == []


def test_when_every_target_fails_the_last_error_reaches_the_client(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, secondary: FakeUpstream
):
    upstream.enqueue(replies.error(503, "down"), replies.error(503, "down too"))
    secondary.enqueue(replies.error(502, "local is down"))
    with pytest.raises(anthropic.APIStatusError, match="local is down") as caught:
        sdk.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=USER_HI)
    assert caught.value.status_code == 502
    assert len(upstream.requests) == 2 and len(secondary.requests) == 1
