"""The usage ledger after a known sequence of exchanges, and the Admin-API-shaped usage
and cost reports computed from it (shapes, sums, grouping, paging, auth)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from support.gateway import ADMIN_KEY, create_key, eventually
from support.router import RouterProcess
from support.upstream import FakeUpstream, completion, error, usage_dict

pytestmark = pytest.mark.integration

STATIC_KEY = "test-static-key"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger") / "ledger.db"


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream, database: Path) -> Iterator[RouterProcess]:
    env = {
        "KEYS_ENABLE": "true",
        "PROXY_API_KEY": STATIC_KEY,
        "ADMIN_API_KEY": ADMIN_KEY,
        "DATABASE_URL": f"sqlite:///{database}",
        "LEDGER_FLUSH_INTERVAL": "0.05",
    }
    with RouterProcess(upstream.url, env) as router:
        yield router


@pytest.fixture(scope="module")
def sequence(gateway: RouterProcess, upstream: FakeUpstream, database: Path) -> dict[str, Any]:
    """Four exchanges: alice non-streamed (upstream cost), alice streamed (priced from the
    table), alice refused upstream (400), and one with the static key."""
    key = create_key(f"sqlite:///{database}", "alice")
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        upstream.enqueue(completion("one", usage=usage_dict(prompt=100, completion=10, cost=0.002)))
        client.messages.create(model="claude-opus-4-8", max_tokens=50, messages=HELLO)
        with client.messages.stream(model="claude-opus-4-8", max_tokens=50, messages=HELLO) as s:
            s.get_final_message()
        upstream.enqueue(error(400, "bad request from upstream"))
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HELLO)
    with anthropic.Anthropic(base_url=gateway.url, api_key=STATIC_KEY, max_retries=0) as client:
        upstream.enqueue(completion("two", usage=usage_dict(prompt=7, completion=3, cost=0.001)))
        client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=HELLO)
    rows = eventually(lambda: (r := _rows(database)) and len(r) == 4 and r)
    return {"key": key, "rows": rows}


def _rows(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM usage_ledger ORDER BY ts")]


def test_one_row_per_exchange(sequence: dict[str, Any]) -> None:
    plain, streamed, refused, static = sequence["rows"]
    assert plain["key_name"] == "alice" and plain["key_id"].startswith("key_")
    assert plain["route"] == "claude-opus-4-8" and plain["backend"] == "openrouter"
    assert plain["status"] == 200 and plain["stream"] == 0 and plain["service_tier"] == "standard"
    assert (plain["input_tokens"], plain["output_tokens"]) == (100, 10)
    assert plain["cost_usd"] == pytest.approx(0.002) and plain["cost_source"] == "upstream"
    assert plain["latency_ms"] > 0 and plain["ttft_ms"] is None
    assert streamed["stream"] == 1 and streamed["status"] == 200
    assert (streamed["input_tokens"], streamed["output_tokens"]) == (12, 5)
    # OpenRouter's price of anthropic/claude-sonnet-4.5 from genai-prices: $3 / $15 per MTok.
    assert streamed["cost_source"] == "price_table"
    assert streamed["cost_usd"] == pytest.approx((12 * 3 + 5 * 15) / 1e6, rel=0.05)
    assert streamed["ttft_ms"] is not None
    assert refused["status"] == 400 and refused["error_type"] == "invalid_request_error"
    assert refused["output_tokens"] == 0
    assert static["key_name"] is None and static["key_id"].startswith("key_")
    assert static["key_id"] != plain["key_id"]
    assert all(row["request_id"].startswith("req_") for row in sequence["rows"])


def _report(router: RouterProcess, path: str, params: Any, key: str = ADMIN_KEY) -> httpx.Response:
    return httpx.get(
        f"{router.url}/v1/organizations/{path}",
        params=params,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=10,
    )


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat() + "T00:00:00Z"


def test_usage_report_by_key_and_model(gateway: RouterProcess, sequence: dict[str, Any]) -> None:
    params = [("starting_at", _today()), ("group_by[]", "api_key_id"), ("group_by[]", "model")]
    response = _report(gateway, "usage_report/messages", params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["has_more"] is False and body["next_page"] is None
    [bucket] = body["data"]  # default width 1d, up to today's bucket
    assert bucket["starting_at"] == _today()
    assert bucket["ending_at"].endswith("T00:00:00Z")
    results = {(r["api_key_id"], r["model"]): r for r in bucket["results"]}
    rows = sequence["rows"]
    alice = rows[0]["key_id"]
    opus = results[(alice, "claude-opus-4-8")]
    assert opus["uncached_input_tokens"] == 112 and opus["output_tokens"] == 15
    assert opus["cache_read_input_tokens"] == 0
    assert opus["cache_creation"] == {
        "ephemeral_1h_input_tokens": 0,
        "ephemeral_5m_input_tokens": 0,
    }
    assert opus["server_tool_use"] == {"web_search_requests": 0}
    assert opus["workspace_id"] is None and opus["service_tier"] is None
    assert results[(rows[3]["key_id"], "claude-haiku-4-5")]["uncached_input_tokens"] == 7
    assert sum(r["output_tokens"] for r in bucket["results"]) == sum(
        r["output_tokens"] for r in rows
    )


def test_usage_report_filters_and_pages(gateway: RouterProcess, sequence: dict[str, Any]) -> None:
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()
    first = _report(
        gateway, "usage_report/messages", {"starting_at": start, "bucket_width": "1h", "limit": 2}
    ).json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    rest = _report(
        gateway, "usage_report/messages",
        {"starting_at": start, "bucket_width": "1h", "limit": 2, "page": first["next_page"]},
    ).json()  # fmt: skip
    assert rest["data"][0]["starting_at"] == first["data"][-1]["ending_at"]
    buckets = first["data"] + rest["data"]
    total = sum(r["output_tokens"] for b in buckets for r in b["results"])
    assert total == sum(r["output_tokens"] for r in sequence["rows"])
    alice = sequence["rows"][0]["key_id"]
    only = _report(
        gateway, "usage_report/messages", {"starting_at": _today(), "api_key_ids[]": alice}
    ).json()
    [result] = only["data"][0]["results"]
    assert result["output_tokens"] == 15 and result["api_key_id"] is None  # not grouped by key


def test_cost_report_sums(gateway: RouterProcess, sequence: dict[str, Any]) -> None:
    rows = sequence["rows"]
    body = _report(gateway, "cost_report", {"starting_at": _today()}).json()
    [bucket] = body["data"]
    [total] = bucket["results"]
    expected = sum(r["cost_usd"] or 0 for r in rows)
    assert total["currency"] == "USD"
    assert float(total["amount"]) == pytest.approx(expected * 100, rel=1e-6)  # cents
    assert total["unpriced_requests"] == 0
    grouped = _report(
        gateway, "cost_report", [("starting_at", _today()), ("group_by[]", "description")]
    ).json()["data"][0]["results"]
    by_model = {r["model"]: r for r in grouped}
    assert set(by_model) == {"claude-opus-4-8", "claude-haiku-4-5"}
    assert by_model["claude-opus-4-8"]["description"] == "claude-opus-4-8 Usage"
    assert by_model["claude-opus-4-8"]["cost_type"] == "tokens"
    opus_cost = rows[0]["cost_usd"] + rows[1]["cost_usd"]
    assert float(by_model["claude-opus-4-8"]["amount"]) == pytest.approx(opus_cost * 100, rel=1e-6)


def test_report_errors(gateway: RouterProcess, sequence: dict[str, Any]) -> None:
    for params, text in (
        ({}, "starting_at"),
        ({"starting_at": "yesterday"}, "RFC 3339"),
        ({"starting_at": _today(), "bucket_width": "1w"}, "bucket_width"),
        ({"starting_at": _today(), "bucket_width": "1h", "limit": 500}, "limit"),
        ({"starting_at": _today(), "group_by[]": "colour"}, "group_by"),
        ({"starting_at": _today(), "page": "page_bogus"}, "page"),
    ):
        response = _report(gateway, "usage_report/messages", params)
        assert response.status_code == 400, params
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert text in response.json()["error"]["message"]
    assert (
        _report(gateway, "cost_report", {"starting_at": _today(), "bucket_width": "1h"}).status_code
        == 400
    )
    refused = _report(gateway, "cost_report", {"starting_at": _today()}, key=sequence["key"])
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    assert _report(gateway, "usage_report/claude_code", {}).status_code == 404


def test_reports_are_off_without_admin_key(router: RouterProcess) -> None:
    response = _report(router, "usage_report/messages", {"starting_at": _today()})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert httpx.get(f"{router.url}/ui", timeout=10).status_code == 404
