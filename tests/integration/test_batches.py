"""Message Batches through the official SDK (`client.messages.batches.*`) against the real
router, a real SQLite store and scripted loopback upstreams (two backends)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from support import replies
from support.batch_upstream import ContentScriptedUpstream
from support.router import RouterProcess
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

ROUTES = """
routes:
  claude-local-*:
    backend: openai_compatible
    model: local-model
  claude-sonnet-*:
    model: primary/model-a
  claude-flaky-*:
    model: primary/down
    fallbacks: [{backend: openai_compatible, model: local-model}]
"""
# Short waits so the tests run in seconds; the defaults are minutes (docs/15-batches.md).
FAST = {
    "BATCH_POLL_INTERVAL": "0.05",
    "BATCH_SWEEP_INTERVAL": "0.2",
    "BATCH_RETRY_BASE_DELAY": "0.05",
    "BATCH_RETRY_MAX_DELAY": "0.2",
    "BATCH_CONCURRENCY": "4",
    "UPSTREAM_MAX_RETRIES": "0",
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ContentScriptedUpstream]:
    with ContentScriptedUpstream(slow_seconds=0.5) as fake:
        fake.down_models.add("primary/down")
        yield fake


@pytest.fixture(scope="module")
def secondary() -> Iterator[ContentScriptedUpstream]:
    with ContentScriptedUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def routes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = tmp_path_factory.mktemp("routes") / "routes.yaml"
    path.write_text(ROUTES)
    return path


def _env(routes: Path, secondary: FakeUpstream, db: Path, **extra: str) -> dict[str, str]:
    return {
        **FAST,
        "MODEL_MAP_FILE": str(routes),
        "OPENAI_COMPATIBLE_BASE_URL": f"{secondary.url}/v1",
        "DATABASE_URL": f"sqlite:///{db}",
        **extra,
    }


@pytest.fixture(scope="module")
def router(
    upstream: FakeUpstream,
    secondary: FakeUpstream,
    routes_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RouterProcess]:
    db = tmp_path_factory.mktemp("store") / "batches.db"
    with RouterProcess(upstream.url, _env(routes_file, secondary, db)) as process:
        yield process


@pytest.fixture
def sdk(router: RouterProcess, secondary: ContentScriptedUpstream) -> Iterator[anthropic.Anthropic]:
    secondary.clear()
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as client:
        yield client


def request(custom_id: str, text: str, model: str = "claude-sonnet-4-6") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "max_tokens": 20,
            "messages": [{"role": "user", "content": text}],
        },
    }


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch not ended after {timeout}s: {batch}")
        time.sleep(0.05)


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in client.messages.batches.results(batch_id):
        assert line.custom_id not in found, f"{line.custom_id} twice in the results"
        found[line.custom_id] = line.result
    return found


def exchanges(router: RouterProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in router.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "exchange"]


def test_a_mixed_batch_through_every_sdk_method(
    sdk: anthropic.Anthropic, upstream: ContentScriptedUpstream, router: RouterProcess
):
    requests = [request(f"ok-{i}", f"ok t{i}") for i in range(4)]
    requests += [request("bad-1", "bad b1"), request("bad-2", "bad b2")]
    created = sdk.messages.batches.create(requests=requests)
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress" and created.results_url is None
    assert created.request_counts.processing == 6 and created.ended_at is None
    assert (created.expires_at - created.created_at).total_seconds() == pytest.approx(86400)

    batch = wait_ended(sdk, created.id)
    counts = batch.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 4, 2)
    assert (counts.canceled, counts.expired) == (0, 0)
    assert batch.results_url == f"{router.url}/v1/messages/batches/{created.id}/results"
    assert batch.ended_at is not None and batch.ended_at >= batch.created_at

    found = results(sdk, created.id)
    assert set(found) == {r["custom_id"] for r in requests}
    for i in range(4):
        result = found[f"ok-{i}"]
        assert result.type == "succeeded"
        assert result.message.content[0].text == f"answer t{i}"
        assert result.message.model == "claude-sonnet-4-6"
        assert result.message.usage.output_tokens > 0
    bad = found["bad-1"]
    assert bad.type == "errored"
    assert bad.error.type == "error" and bad.error.error.type == "invalid_request_error"
    assert "bad b1" in bad.error.error.message
    assert {upstream.count(f"t{i}") for i in range(4)} == {1}

    listed = [b.id for b in sdk.messages.batches.list(limit=100)]
    assert created.id in listed
    deleted = sdk.messages.batches.delete(created.id)
    assert (deleted.id, deleted.type) == (created.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.retrieve(created.id)

    # One exchange record per request, with its batch and custom_id, for the ledger.
    records = [e for e in exchanges(router) if e.get("batch_id") == created.id]
    assert sorted(e["custom_id"] for e in records) == sorted(r["custom_id"] for r in requests)
    ok = next(e for e in records if e["custom_id"] == "ok-0")
    assert ok["status"] == 200 and ok["usage"]["output_tokens"] > 0
    assert ok["upstream_model"] == "primary/model-a" and ok["backend"] == "openrouter"
    assert next(e for e in records if e["custom_id"] == "bad-1")["status"] == 400


def test_requests_of_one_batch_take_their_own_routes_and_backends(
    sdk: anthropic.Anthropic,
    upstream: ContentScriptedUpstream,
    secondary: ContentScriptedUpstream,
    router: RouterProcess,
):
    requests = [
        request("remote", "ok r1", "claude-sonnet-4-6"),
        request("local", "ok l1", "claude-local-1"),
        request("fallback", "ok f1", "claude-flaky-1"),
        request("by-id", "ok u1", "vendor/exact-model"),
    ]
    batch = wait_ended(sdk, sdk.messages.batches.create(requests=requests).id)
    assert batch.request_counts.succeeded == 4
    found = results(sdk, batch.id)
    assert found["local"].message.model == "claude-local-1"
    assert found["fallback"].message.content[0].text == "answer f1"
    upstream_models = {
        r.json["messages"][-1]["content"]: r.json["model"] for r in upstream.requests
    }
    assert upstream_models["ok r1"] == "primary/model-a"
    assert upstream_models["ok u1"] == "vendor/exact-model"
    assert upstream_models["ok f1"] == "primary/down"  # tried first, answered 503
    local = {r.json["messages"][-1]["content"]: r.json["model"] for r in secondary.requests}
    assert local == {"ok l1": "local-model", "ok f1": "local-model"}
    records = {e["custom_id"]: e for e in exchanges(router) if e.get("batch_id") == batch.id}
    assert records["fallback"]["fallback"].startswith("openrouter:primary/down")
    assert records["local"]["backend"] == "openai_compatible"


def test_list_pages_newest_first_and_the_sdk_follows_them(sdk: anthropic.Anthropic):
    ids = [sdk.messages.batches.create(requests=[request("a", f"ok p{i}")]).id for i in range(5)]
    newest = list(reversed(ids))
    first = sdk.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == newest[:2] and first.has_more
    assert first.first_id == newest[0] and first.last_id == newest[1]
    every = [b.id for b in sdk.messages.batches.list(limit=2)]  # auto-pagination
    assert every[:5] == newest and len(every) == len(set(every))
    older = sdk.messages.batches.list(limit=2, after_id=newest[1])
    assert [b.id for b in older.data] == newest[2:4]
    newer = sdk.messages.batches.list(limit=2, before_id=newest[3])
    assert [b.id for b in newer.data] == newest[1:3]
    for batch_id in ids:
        wait_ended(sdk, batch_id)


def test_cancel_stops_what_has_not_started(
    sdk: anthropic.Anthropic, upstream: ContentScriptedUpstream
):
    requests = [request(f"s{i}", f"slow c{i}") for i in range(12)]
    created = sdk.messages.batches.create(requests=requests)
    upstream.wait_for_requests(1)
    canceled = sdk.messages.batches.cancel(created.id)
    assert canceled.processing_status == "canceling"
    assert canceled.cancel_initiated_at is not None
    batch = wait_ended(sdk, created.id)
    counts = batch.request_counts
    ran = sum(upstream.count(f"c{i}") for i in range(12))
    assert 1 <= ran <= 4  # BATCH_CONCURRENCY: only what had started ran
    assert counts.succeeded == ran and counts.canceled == 12 - ran
    found = results(sdk, created.id)
    assert len(found) == 12
    assert sum(r.type == "canceled" for r in found.values()) == 12 - ran
    again = sdk.messages.batches.cancel(created.id)  # cancelling an ended batch changes nothing
    assert again.processing_status == "ended"


def test_delete_waits_for_the_end(sdk: anthropic.Anthropic):
    created = sdk.messages.batches.create(requests=[request("x", "slow d1")])
    with pytest.raises(anthropic.BadRequestError, match="only a batch that has ended"):
        sdk.messages.batches.delete(created.id)
    wait_ended(sdk, created.id)
    sdk.messages.batches.delete(created.id)


def test_a_rate_limit_storm_slows_the_batch_but_does_not_fail_it(
    sdk: anthropic.Anthropic, upstream: ContentScriptedUpstream, router: RouterProcess
):
    requests = [request(f"l{i}", f"limit storm{i} 3") for i in range(5)]
    batch = wait_ended(sdk, sdk.messages.batches.create(requests=requests).id)
    assert batch.request_counts.succeeded == 5
    assert {upstream.count(f"storm{i}") for i in range(5)} == {4}  # 3 refusals, then an answer
    found = results(sdk, batch.id)
    assert {r.message.content[0].text for r in found.values()} == {
        f"answer storm{i}" for i in range(5)
    }
    records = [e for e in exchanges(router) if e.get("batch_id") == batch.id]
    assert sum(e["status"] == 429 for e in records) == 15
    assert sum(e["status"] == 200 for e in records) == 5


def test_retrieve_unknown_and_malformed_ids(sdk: anthropic.Anthropic):
    for batch_id in ("msgbatch_01nope", "not-a-batch-id"):
        with pytest.raises(anthropic.NotFoundError, match="not found"):
            sdk.messages.batches.retrieve(batch_id)
    with pytest.raises(anthropic.BadRequestError, match="after_id"):
        sdk.messages.batches.list(after_id="msgbatch_01nope")
    with pytest.raises(anthropic.BadRequestError, match="limit"):
        sdk.messages.batches.list(limit=1001)


def test_validation_refuses_the_whole_batch_and_calls_no_upstream(
    sdk: anthropic.Anthropic, upstream: ContentScriptedUpstream
):
    requests = [
        request("good", "ok v1"),
        request("good", "ok v2"),
        {"custom_id": "has space", "params": {}},
        {"custom_id": "streams", "params": {**request("x", "ok")["params"], "stream": True}},
        {"custom_id": "no-tokens", "params": {"model": "m", "messages": []}},
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.batches.create(requests=requests)
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith("4 invalid request(s) in the batch")
    assert "requests.1 (custom_id 'good'): custom_id: 'good' is used more than once" in message
    assert "requests.2 (custom_id 'has space'): custom_id: 1 to 64 characters" in message
    assert "requests.3 (custom_id 'streams'): params.stream" in message
    assert "requests.4 (custom_id 'no-tokens'): params.max_tokens: Field required" in message
    errors = caught.value.body["error"]["details"]["errors"]  # type: ignore[index]
    assert [e["index"] for e in errors] == [1, 2, 3, 4]
    assert upstream.requests == []


def test_limits_on_size_and_bytes(
    upstream: FakeUpstream,
    secondary: FakeUpstream,
    routes_file: Path,
    tmp_path: Path,
):
    env = _env(routes_file, secondary, tmp_path / "b.db", BATCH_MAX_SIZE="3")
    env["BATCH_MAX_BYTES"] = "4000"
    with (
        RouterProcess(upstream.url, env) as small,
        anthropic.Anthropic(base_url=small.url, api_key="k", max_retries=0) as client,
    ):
        with pytest.raises(anthropic.BadRequestError, match=r"1 to 3 requests .* got 4"):
            client.messages.batches.create(requests=[request(f"r{i}", "ok") for i in range(4)])
        with pytest.raises(anthropic.BadRequestError, match="1 to 3 requests"):
            client.messages.batches.create(requests=[])
        big = request("big", "ok " + "x" * 5000)
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.batches.create(requests=[big])
        assert caught.value.status_code == 413
        assert client.messages.batches.create(requests=[request("fits", "ok z")]).id


def test_disabled_batches_answer_404(upstream: FakeUpstream, tmp_path: Path):
    env = {"BATCH_PROCESSING_ENABLE": "false", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    with (
        RouterProcess(upstream.url, env) as off,
        anthropic.Anthropic(base_url=off.url, api_key="k", max_retries=0) as client,
    ):
        with pytest.raises(anthropic.NotFoundError, match="BATCH_PROCESSING_ENABLE") as caught:
            client.messages.batches.create(requests=[request("a", "ok")])
        assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        with pytest.raises(anthropic.NotFoundError, match="disabled"):
            client.messages.batches.list()
        with pytest.raises(anthropic.NotFoundError, match="disabled"):
            client.messages.batches.retrieve("msgbatch_01abc")
        # Interactive traffic is unaffected, and no store file was created.
        assert client.messages.create(
            model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        ).content
    assert not (tmp_path / "x.db").exists()


def test_with_several_keys_a_batch_is_visible_only_to_its_creator(
    upstream: FakeUpstream, secondary: FakeUpstream, routes_file: Path, tmp_path: Path
):
    env = _env(routes_file, secondary, tmp_path / "k.db", PROXY_API_KEY="key-one,key-two")
    with (
        RouterProcess(upstream.url, env) as keyed,
        anthropic.Anthropic(base_url=keyed.url, api_key="key-one", max_retries=0) as one,
        anthropic.Anthropic(base_url=keyed.url, api_key="key-two", max_retries=0) as two,
    ):
        created = one.messages.batches.create(requests=[request("a", "ok k1")])
        assert one.messages.batches.retrieve(created.id).id == created.id
        with pytest.raises(anthropic.NotFoundError):
            two.messages.batches.retrieve(created.id)
        with pytest.raises(anthropic.NotFoundError):
            two.messages.batches.cancel(created.id)
        assert created.id not in [b.id for b in two.messages.batches.list()]
        assert created.id in [b.id for b in one.messages.batches.list()]
        wait_ended(one, created.id)
        with pytest.raises(anthropic.NotFoundError):
            list(two.messages.batches.results(created.id))
        with (
            pytest.raises(anthropic.AuthenticationError),
            anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0) as bad,
        ):
            bad.messages.batches.list()
        logs = keyed.logs()
    assert "key-one" not in logs and "key-two" not in logs


def test_expired_requests_end_the_batch_as_expired(
    upstream: FakeUpstream, secondary: FakeUpstream, routes_file: Path, tmp_path: Path
):
    env = _env(routes_file, secondary, tmp_path / "e.db", BATCH_EXPIRY_SECONDS="1.5")
    with (
        RouterProcess(upstream.url, env) as short,
        anthropic.Anthropic(base_url=short.url, api_key="k", max_retries=0) as client,
    ):
        requests = [request("done", "ok e0")]
        requests += [request(f"never{i}", f"limit e{i + 1} 100000") for i in range(3)]
        batch = wait_ended(client, client.messages.batches.create(requests=requests).id)
        counts = batch.request_counts
        assert (counts.succeeded, counts.expired, counts.errored) == (1, 3, 0)
        found = results(client, batch.id)
        assert {k: v.type for k, v in found.items()} == {
            "done": "succeeded",
            "never0": "expired",
            "never1": "expired",
            "never2": "expired",
        }


def test_batch_work_does_not_count_against_interactive_concurrency(
    upstream: ContentScriptedUpstream, secondary: FakeUpstream, routes_file: Path, tmp_path: Path
):
    env = _env(routes_file, secondary, tmp_path / "c.db", MAX_CONCURRENT_REQUESTS="1")
    with (
        RouterProcess(upstream.url, env) as limited,
        anthropic.Anthropic(base_url=limited.url, api_key="k", max_retries=0) as client,
    ):
        created = client.messages.batches.create(
            requests=[request(f"s{i}", f"slow i{i}") for i in range(8)]
        )
        upstream.wait_for_requests(2)
        # Batch requests are in flight, yet the one interactive slot is free.
        reply = client.messages.create(
            model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "ok q"}]
        )
        assert reply.content[0].text == "answer q"  # type: ignore[union-attr]
        assert client.messages.batches.retrieve(created.id).processing_status == "in_progress"
        wait_ended(client, created.id)


def test_metrics_export_batches_by_status_results_and_queue_depth(
    sdk: anthropic.Anthropic, router: RouterProcess
):
    wait_ended(sdk, sdk.messages.batches.create(requests=[request("m", "ok m1")]).id)
    deadline = time.monotonic() + 5
    while True:  # the gauges are refreshed by the runner's sweep
        with urllib.request.urlopen(f"{router.url}/metrics") as response:
            text = response.read().decode()
        if 'anthropic_router_batches{status="ended"}' in text and "queue_depth 0.0" in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    assert 'anthropic_router_batch_requests_total{result="succeeded"}' in text
    assert 'anthropic_router_batch_requests_total{result="errored"}' in text
    assert "anthropic_router_batch_queue_depth 0.0" in text


def test_batch_level_beta_headers_reach_every_request_on_an_anthropic_upstream(
    upstream: ContentScriptedUpstream, tmp_path: Path
):
    native = {
        "id": "msg_dbx_1",
        "type": "message",
        "role": "assistant",
        "model": "databricks-claude-sonnet-4-5",
        "content": [{"type": "text", "text": "native answer"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    upstream.enqueue(*(replies.json_reply(native) for _ in range(2)))
    env = {
        **FAST,
        "PROXY_BACKEND": "AZURE_DATABRICKS",
        "DATABRICKS_HOST": upstream.url,
        "DATABRICKS_PAT": "dapi-test-token-0000",
        "OPENROUTER_API_KEY": None,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
    }
    beta = "context-management-2025-06-27"
    with (
        RouterProcess(None, env) as databricks,
        anthropic.Anthropic(base_url=databricks.url, api_key="k", max_retries=0) as client,
    ):
        created = client.messages.batches.create(
            requests=[request("a", "one"), request("b", "two")],
            extra_headers={"anthropic-beta": beta},
        )
        batch = wait_ended(client, created.id)
        assert batch.request_counts.succeeded == 2
        found = results(client, created.id)
        assert found["a"].message.content[0].text == "native answer"
        assert found["a"].message.model == "claude-sonnet-4-6"
    seen = [r for r in upstream.requests if r.path.endswith("/anthropic/v1/messages")]
    assert len(seen) == 2
    assert {r.headers.get("anthropic-beta") for r in seen} == {beta}
    assert {r.json["messages"][0]["content"] for r in seen} == {"one", "two"}
