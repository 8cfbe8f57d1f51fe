"""Two router processes sharing keys through a real PostgreSQL and rate limits through a
real redis-server: limits hold across instances, revocation and budgets reach both."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import psycopg
import pytest

from support.gateway import create_key, eventually, keys_json
from support.router import RouterProcess
from support.services import RedisServer
from support.upstream import FakeUpstream, completion, usage_dict

pytestmark = pytest.mark.integration

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def pair(
    upstream: FakeUpstream, fresh_postgres_url: str, redis_server: RedisServer
) -> Iterator[tuple[RouterProcess, RouterProcess]]:
    env = {
        "KEYS_ENABLE": "true",
        "DATABASE_URL": fresh_postgres_url,
        "REDIS_URL": redis_server.url,
        "KEYS_CACHE_TTL": "0.3",
        "LEDGER_FLUSH_INTERVAL": "0.05",
    }
    first = RouterProcess(upstream.url, env).start()
    try:
        second = RouterProcess(upstream.url, env).start()
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def _create(router: RouterProcess, key: str) -> anthropic.APIResponse[anthropic.types.Message]:
    with anthropic.Anthropic(base_url=router.url, api_key=key, max_retries=0) as client:
        response = client.messages.with_raw_response.create(
            model="claude-opus-4-8", max_tokens=20, messages=HELLO
        )
        response.parse()
        return response


def test_rpm_is_shared_through_redis(
    pair: tuple[RouterProcess, RouterProcess], fresh_postgres_url: str
) -> None:
    a, b = pair
    key = create_key(fresh_postgres_url, "team", "--rpm", "3")
    remaining = [
        _create(router, key).headers["anthropic-ratelimit-requests-remaining"]
        for router in (a, b, a)
    ]
    assert remaining == ["2", "1", "0"]
    with pytest.raises(anthropic.RateLimitError) as refused:
        _create(b, key)
    assert refused.value.response.headers["anthropic-ratelimit-requests-limit"] == "3"
    assert int(refused.value.response.headers["retry-after"]) >= 1

    def ledger_rows() -> list[tuple[int]] | None:
        with psycopg.connect(fresh_postgres_url) as conn:
            rows = conn.execute("SELECT status FROM usage_ledger ORDER BY ts").fetchall()
        return rows if len(rows) == 4 else None

    assert [status for (status,) in eventually(ledger_rows)] == [200, 200, 200, 429]


def test_revocation_and_budget_reach_both_instances(
    pair: tuple[RouterProcess, RouterProcess], upstream: FakeUpstream, fresh_postgres_url: str
) -> None:
    a, b = pair
    key = create_key(fresh_postgres_url, "spender", "--budget-usd", "0.01", "--per", "month")
    upstream.enqueue(completion("paid", usage=usage_dict(cost=0.05)))
    _create(a, key)  # spent on A, written to the shared store by A's ledger

    def refused_on_b() -> anthropic.APIStatusError | None:
        upstream.enqueue(completion("free", usage=usage_dict(cost=0.0)))
        try:
            _create(b, key)
        except anthropic.APIStatusError as error:
            return error
        return None

    error = eventually(refused_on_b)
    assert error.status_code == 402 and "per month is spent" in error.body["error"]["message"]

    other = create_key(fresh_postgres_url, "leaver")
    assert _create(a, other).parse().content and _create(b, other).parse().content
    assert keys_json(fresh_postgres_url, "revoke", "leaver")["status"] == "revoked"
    for router in (a, b):

        def refused(router: RouterProcess = router) -> bool:
            try:
                _create(router, other)
            except anthropic.AuthenticationError:
                return True
            return False

        eventually(refused, timeout=5)
