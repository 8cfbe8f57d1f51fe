"""One JSON record per exchange, Prometheus metrics and redaction, through the real server."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import openai_chunks as oc
from support import replies
from support.router import UPSTREAM_API_KEY
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

PLANTED_KEY = "planted-client-key-7f3a9c"
PLANTED_PROMPT = "PLANTED-PROMPT-do-not-log-41d2"
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": PLANTED_PROMPT}],
}
AUTH = {"x-api-key": PLANTED_KEY}


def _records(logs: str) -> list[dict]:
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "exchange"]


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, items), value in samples.items()
        if sample == name and all((k, v) in items for k, v in labels.items())
    )


@pytest.fixture
def observed(router_factory):
    return router_factory(env={"PROXY_API_KEY": PLANTED_KEY})


def test_exchange_record_fields(observed, upstream: FakeUpstream):
    upstream.enqueue(
        replies.completion("hi", usage={**oc.usage_dict(50, 9, cached=20), "cost": 0.0042})
    )
    response = httpx.post(f"{observed.url}/v1/messages", json=BODY, headers=AUTH)
    request_id = response.headers["request-id"]
    assert upstream.last.headers["x-request-id"] == request_id
    record = next(
        r for r in _records(observed.wait_for_log(request_id)) if r["request_id"] == request_id
    )
    assert record["status"] == 200 and record["stream"] is False
    assert record["client_model"] == "claude-haiku-4-5"
    assert record["upstream_model"] == "anthropic/claude-haiku-4.5"
    assert record["backend"] == "openrouter" and record["route"] == "haiku -> SMALL_MODEL"
    assert record["stop_reason"] == "end_turn" and record["retries"] == 0
    assert record["usage"] == {
        "input_tokens": 30,
        "output_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 20,
    }
    assert record["cost_usd"] == 0.0042
    assert record["client_key_id"].startswith("key_") and PLANTED_KEY not in record["client_key_id"]
    assert set(record["ms"]) >= {"read", "convert", "upstream", "total"}


def test_stream_record_and_error_record(observed, upstream: FakeUpstream):
    upstream.enqueue(
        replies.sse(
            [*oc.text_chunks("x y", 2), oc.finish_chunk(), oc.usage_chunk(7, 2, cost=0.001)]
        )
    )
    stream = httpx.post(f"{observed.url}/v1/messages", json={**BODY, "stream": True}, headers=AUTH)
    upstream.enqueue(replies.error(400, "bad thing"))
    failed = httpx.post(f"{observed.url}/v1/messages", json=BODY, headers=AUTH)
    assert failed.status_code == 400
    observed.wait_for_log(failed.headers["request-id"])
    records = {r["request_id"]: r for r in _records(observed.logs())}
    streamed = records[stream.headers["request-id"]]
    assert streamed["stream"] is True and "first_token" in streamed["ms"]
    assert streamed["usage"]["output_tokens"] == 2 and streamed["cost_usd"] == 0.001
    error = records[failed.headers["request-id"]]
    assert error["status"] == 400 and error["error_type"] == "invalid_request_error"


def test_no_key_or_prompt_in_any_log(observed, upstream: FakeUpstream):
    httpx.post(f"{observed.url}/v1/messages", json=BODY, headers=AUTH)
    httpx.post(f"{observed.url}/v1/messages", json={**BODY, "stream": True}, headers=AUTH)
    httpx.post(
        f"{observed.url}/v1/messages", json=BODY, headers={"authorization": "Bearer " + PLANTED_KEY}
    )
    upstream.enqueue(replies.error(500, "upstream exploded"))
    httpx.post(f"{observed.url}/v1/messages", json=BODY, headers=AUTH)
    last = httpx.post(f"{observed.url}/v1/messages", content=b"{broken", headers=AUTH)
    # The record is logged after the response is sent: wait for it rather than race it.
    logs = observed.wait_for_log(last.headers["request-id"])
    assert len(_records(logs)) >= 5
    for secret in (PLANTED_KEY, PLANTED_PROMPT, UPSTREAM_API_KEY):
        assert secret not in logs


def test_log_bodies_opt_in_masks_secrets(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"LOG_BODIES": "true"})
    body = {**BODY, "metadata": {"user_id": "u"}, "api_key": "sk-or-v1-" + "ab" * 32}
    response = httpx.post(f"{router.url}/v1/messages", json=body)
    logs = router.wait_for_log(response.headers["request-id"])
    assert PLANTED_PROMPT in logs  # opted in: the (truncated) body is logged
    assert "ab" * 32 not in logs
    logged = next(json.loads(line) for line in logs.splitlines() if '"request body"' in line)
    assert json.loads(logged["body"])["api_key"] == "***"


def test_metrics_after_known_sequence(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"UPSTREAM_MAX_RETRIES": "1"})
    url = f"{router.url}/v1/messages"
    upstream.enqueue(replies.completion("a", usage={**oc.usage_dict(10, 3), "cost": 0.5}))
    httpx.post(url, json=BODY)
    upstream.enqueue(
        replies.sse([*oc.text_chunks("b", 1), oc.finish_chunk(), oc.usage_chunk(4, 2)])
    )
    httpx.post(url, json={**BODY, "stream": True})
    upstream.enqueue(replies.error(500, "x"), replies.error(500, "y"))  # one retry, then fail
    assert httpx.post(url, json=BODY).status_code == 500
    text = httpx.get(f"{router.url}/metrics").text
    samples = _samples(text)
    model = "anthropic/claude-haiku-4.5"
    requests = "anthropic_router_requests_total"
    # Every series of the request counter carries the route template and a bounded model label.
    labels = [dict(items) for name, items in samples if name == requests]
    assert labels and all(set(label) >= {"route", "model", "upstream_model"} for label in labels)
    assert {label["model"] for label in labels} == {"tier:small"}  # claude-haiku-4-5 -> SMALL
    assert _total(samples, requests, route="/v1/messages", status="200", upstream_model=model) == 2
    assert _total(samples, requests, route="/v1/messages", status="500") == 1
    assert _total(samples, "anthropic_router_retries_total", backend="openrouter") == 1
    errors = "anthropic_router_upstream_errors_total"
    assert _total(samples, errors, backend="openrouter", error_type="api_error") == 1
    tokens = "anthropic_router_tokens_total"
    assert _total(samples, tokens, upstream_model=model, kind="input") == 14
    assert _total(samples, tokens, upstream_model=model, kind="output") == 5
    assert _total(samples, "anthropic_router_cost_usd_total", upstream_model=model) == 0.5
    assert (
        _total(samples, "anthropic_router_request_duration_seconds_count", route="/v1/messages")
        == 3
    )
    assert _total(samples, "anthropic_router_time_to_first_token_seconds_count") == 1
    assert _total(samples, "anthropic_router_in_flight_requests") == 0
    assert _total(samples, "anthropic_router_info", backend="OPENROUTER") == 1


def test_ready_and_metrics_need_the_key_when_set(observed):
    assert httpx.get(f"{observed.url}/ready").status_code == 200
    assert httpx.get(f"{observed.url}/metrics").status_code == 401
    scraped = httpx.get(
        f"{observed.url}/metrics", headers={"authorization": f"Bearer {PLANTED_KEY}"}
    )
    assert scraped.status_code == 200 and "anthropic_router_info" in scraped.text


def _series(router) -> int:
    text = httpx.get(f"{router.url}/metrics").text
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.timeout(600)
def test_client_chosen_paths_and_models_do_not_grow_the_series(router_factory, upstream):
    """10,000 requests with random paths (with and without a key) and random model names:
    labels come from fixed sets, so the number of series does not change."""
    import random

    router = router_factory(env={"PROXY_API_KEY": PLANTED_KEY, "UPSTREAM_MAX_RETRIES": "0"})
    rng = random.Random(7)

    def word() -> str:
        return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=12))

    with httpx.Client(base_url=router.url, timeout=10) as client:

        def one_of_each(upstream_call: bool) -> None:
            client.get(f"/v1/{word()}/{word()}", headers=AUTH)
            client.get(f"/v1/{word()}")
            client.get(f"/x/{word()}/v1/models/{word()}", headers=AUTH)
            count = {**BODY, "model": f"claude-{word()}"}
            client.post("/v1/messages/count_tokens", json=count, headers=AUTH)
            body = {**BODY, "model": f"{word()}/{word()}"}
            path = "/v1/messages" if upstream_call else "/v1/messages/count_tokens"
            client.post(path, json=body, headers=AUTH)

        one_of_each(upstream_call=True)  # every kind of series exists once
        before = _series(router)
        for round_ in range(2000):  # 10,000 requests, one in 20 to the upstream
            one_of_each(upstream_call=round_ % 4 == 0)
        assert _series(router) == before
