"""Batches under the gateway, through the real server with the SDK: a store key's model
globs are checked when the batch is created, and every batch request becomes a ledger row
of the key that created the batch (service tier `batch`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from support.gateway import create_key, eventually
from support.router import RouterProcess
from support.upstream import FakeUpstream, completion, usage_dict

pytestmark = pytest.mark.integration

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def gateway(upstream: FakeUpstream, database: Path) -> Iterator[RouterProcess]:
    env = {
        "KEYS_ENABLE": "true",
        "DATABASE_URL": f"sqlite:///{database}",
        "LEDGER_FLUSH_INTERVAL": "0.05",
        "BATCH_POLL_INTERVAL": "0.1",
    }
    with RouterProcess(upstream.url, env) as router:
        yield router


def _rows(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        query = "SELECT * FROM usage_ledger WHERE batch_id IS NOT NULL ORDER BY ts"
        return [dict(r) for r in conn.execute(query)]


def _request(custom_id: str, model: str) -> dict[str, Any]:
    params = {"model": model, "max_tokens": 20, "messages": HELLO}
    return {"custom_id": custom_id, "params": params}


def test_batch_requests_are_ledger_rows_of_their_key(
    gateway: RouterProcess, upstream: FakeUpstream, database: Path
) -> None:
    key = create_key(f"sqlite:///{database}", "batcher")
    for text in ("a", "b"):
        upstream.enqueue(completion(text, usage=usage_dict(prompt=30, completion=4, cost=0.001)))
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        batch = client.messages.batches.create(
            requests=[_request("one", "claude-haiku-4-5"), _request("two", "claude-haiku-4-5")]
        )
        eventually(
            lambda: client.messages.batches.retrieve(batch.id).processing_status == "ended",
            timeout=30,
        )
        results = {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}
    assert results == {"one": "succeeded", "two": "succeeded"}
    rows = eventually(lambda: (found := _rows(database)) and len(found) == 2 and found)
    assert {row["key_name"] for row in rows} == {"batcher"}
    assert {row["batch_id"] for row in rows} == {batch.id}
    assert {row["service_tier"] for row in rows} == {"batch"}
    assert sum(row["input_tokens"] for row in rows) == 60
    assert sum(row["cost_usd"] for row in rows) == pytest.approx(0.002)


def test_a_batch_naming_a_model_the_key_may_not_use_is_refused(
    gateway: RouterProcess, upstream: FakeUpstream, database: Path
) -> None:
    key = create_key(f"sqlite:///{database}", "haiku-only", "--models", "claude-haiku-*")
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client,
        pytest.raises(anthropic.PermissionDeniedError) as refused,
    ):
        client.messages.batches.create(
            requests=[_request("ok", "claude-haiku-4-5"), _request("no", "claude-opus-4-8")]
        )
    assert "claude-opus-4-8" in str(refused.value)
    assert upstream.requests == []
