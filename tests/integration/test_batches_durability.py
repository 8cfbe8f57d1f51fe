"""Batches survive a SIGKILL and are shared by several router instances, on SQLite and on a
real PostgreSQL (`store_url` runs each test on both): every custom_id ends exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import pytest

from support.batch_upstream import ContentScriptedUpstream
from support.router import RouterProcess

from .test_batches import exchanges, request, results, wait_ended

pytestmark = pytest.mark.integration

ENV = {
    "BATCH_POLL_INTERVAL": "0.05",
    "BATCH_SWEEP_INTERVAL": "0.2",
    "BATCH_CONCURRENCY": "8",
    "BATCH_LEASE_SECONDS": "2",
    "UPSTREAM_MAX_RETRIES": "0",
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ContentScriptedUpstream]:
    with ContentScriptedUpstream(slow_seconds=0.05) as fake:
        yield fake


def _client(router: RouterProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0)


Instances = tuple[RouterProcess, RouterProcess, anthropic.Anthropic, anthropic.Anthropic]


@contextmanager
def _two_instances(upstream: ContentScriptedUpstream, env: dict[str, str]) -> Iterator[Instances]:
    """Two routers with the same settings (so the same store) and a client for each."""
    with (
        RouterProcess(upstream.url, env) as one,
        RouterProcess(upstream.url, env) as two,
        _client(one) as client_one,
        _client(two) as client_two,
    ):
        yield one, two, client_one, client_two


def _submit(client: anthropic.Anthropic, n: int) -> str:
    """A batch of `n` slow requests r0..r{n-1}; its id."""
    requests = [request(f"r{i}", f"slow t{i}") for i in range(n)]
    return client.messages.batches.create(requests=requests).id


def _check_every_request_answered_once(found: dict[str, Any], n: int) -> None:
    assert sorted(found) == sorted(f"r{i}" for i in range(n))
    for custom_id, result in found.items():
        assert result.type == "succeeded", (custom_id, result)
        assert result.message.content[0].text == f"answer t{custom_id[1:]}"


def test_a_sigkilled_router_loses_nothing_and_repeats_nothing_it_finished(
    upstream: ContentScriptedUpstream, store_url: str
):
    n = 300
    env = {**ENV, "DATABASE_URL": store_url}
    first = RouterProcess(upstream.url, env).start()
    try:
        with _client(first) as client:
            batch_id = _submit(client, n)
        upstream.wait_for_requests(n // 3, timeout=30)
        first.kill()
        killed_at = len(upstream.requests)
        assert killed_at < n  # it died mid-batch
        finished_before = sum(
            1 for e in exchanges(first) if e.get("batch_id") == batch_id and e["status"] == 200
        )
    finally:
        first.stop()
    with RouterProcess(upstream.url, env) as second, _client(second) as client:
        batch = wait_ended(client, batch_id, timeout=60)
        assert batch.request_counts.succeeded == n and batch.request_counts.errored == 0
        _check_every_request_answered_once(results(client, batch_id), n)
    counts = upstream.counts
    assert set(counts) == {f"t{i}" for i in range(n)}
    repeated = [tag for tag, seen in counts.items() if seen > 1]
    # Only calls in flight at the kill (at most BATCH_CONCURRENCY) may have been made again.
    assert len(repeated) <= 8 and all(counts[tag] == 2 for tag in repeated)
    assert finished_before > 0


def test_two_instances_share_one_batch_and_complete_no_request_twice(
    upstream: ContentScriptedUpstream, store_url: str
):
    n = 240
    env = {**ENV, "DATABASE_URL": store_url, "BATCH_LEASE_SECONDS": "30"}
    with _two_instances(upstream, env) as (one, two, client_one, client_two):
        batch_id = _submit(client_one, n)
        assert client_two.messages.batches.retrieve(batch_id).id == batch_id
        batch = wait_ended(client_two, batch_id, timeout=60)
        counts = batch.request_counts
        assert (counts.succeeded, counts.errored, counts.processing) == (n, 0, 0)
        _check_every_request_answered_once(results(client_one, batch_id), n)
        by_instance = [
            {e["custom_id"] for e in exchanges(router) if e.get("batch_id") == batch_id}
            for router in (one, two)
        ]
    assert all(by_instance), "both instances took part"
    assert not by_instance[0] & by_instance[1]
    assert len(by_instance[0]) + len(by_instance[1]) == n
    assert set(upstream.counts.values()) == {1}  # no upstream call was made twice


def test_a_batch_canceled_on_one_instance_stops_on_the_other(
    upstream: ContentScriptedUpstream, store_url: str
):
    n = 200
    env = {**ENV, "DATABASE_URL": store_url, "BATCH_CONCURRENCY": "2"}
    with _two_instances(upstream, env) as (_, _, client_one, client_two):
        batch_id = _submit(client_one, n)
        upstream.wait_for_requests(4)
        client_two.messages.batches.cancel(batch_id)
        cancel_seen = len(upstream.requests)
        batch = wait_ended(client_one, batch_id)  # in-flight ones finished before the end
        counts = batch.request_counts
        assert counts.succeeded + counts.canceled == n and counts.canceled > n // 2
        assert len(upstream.requests) <= cancel_seen + 4  # only what was in flight
        found = results(client_two, batch_id)
        assert len(found) == n
