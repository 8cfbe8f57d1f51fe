"""Client keys and their limits through the real server, driven with the official SDK:
keys made with the real `keys` CLI, used, pushed past rpm/tpm/budget, revoked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from support.gateway import create_key, eventually, keys_cli, keys_json
from support.router import RouterProcess
from support.upstream import FakeUpstream, completion, usage_dict

pytestmark = pytest.mark.integration

STATIC_KEY = "test-static-key"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def gateway(upstream: FakeUpstream, database_url: str) -> Iterator[RouterProcess]:
    env = {
        "KEYS_ENABLE": "true",
        "PROXY_API_KEY": STATIC_KEY,
        "DATABASE_URL": database_url,
        "KEYS_CACHE_TTL": "0.3",
        "LEDGER_FLUSH_INTERVAL": "0.05",
    }
    with RouterProcess(upstream.url, env) as router:
        yield router


def sdk(router: RouterProcess, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key=key, max_retries=0, timeout=30)


def ask(router: RouterProcess, key: str, model: str = "claude-opus-4-8") -> anthropic.types.Message:
    with sdk(router, key) as client:
        return client.messages.create(model=model, max_tokens=20, messages=HELLO)


def raw(router: RouterProcess, key: str) -> dict[str, str]:
    """The response headers of one successful exchange."""
    with sdk(router, key) as client:
        response = client.messages.with_raw_response.create(
            model="claude-opus-4-8", max_tokens=20, messages=HELLO
        )
        response.parse()
        return dict(response.headers)


def test_create_prints_the_key_alone_and_stores_only_its_hash(
    database_url: str, tmp_path: Path
) -> None:
    done = keys_cli(database_url, "create", "alice", "--rpm", "5", "--models", "claude-*")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert done.stdout == key + "\n"
    assert "alice" in done.stderr and key not in done.stderr
    shown = keys_json(database_url, "show", "alice")
    assert shown["name"] == "alice" and shown["rpm"] == 5 and shown["models"] == ["claude-*"]
    assert shown["status"] == "active" and shown["id"].startswith("key_")
    assert "key_hash" not in shown and key not in str(shown)
    assert (tmp_path / "gateway.db").read_bytes().find(key.encode()) == -1
    listed = keys_json(database_url, "list")
    assert [k["name"] for k in listed] == ["alice"]
    again = keys_cli(database_url, "create", "alice")
    assert again.returncode == 1 and "already exists" in again.stderr and again.stdout == ""


def test_store_keys_and_static_keys_both_work(gateway: RouterProcess, database_url: str) -> None:
    key = create_key(database_url, "bob")
    assert ask(gateway, key).content[0].type == "text"
    assert ask(gateway, STATIC_KEY).content[0].type == "text"
    with pytest.raises(anthropic.AuthenticationError) as failure:
        ask(gateway, "sk-ar-not-a-key")
    assert failure.value.body["error"]["type"] == "authentication_error"
    logs = gateway.logs()
    assert '"key_name":"bob"' in logs and key not in logs


def test_requests_per_minute(gateway: RouterProcess, database_url: str) -> None:
    key = create_key(database_url, "carol", "--rpm", "2")
    first = raw(gateway, key)
    assert first["anthropic-ratelimit-requests-limit"] == "2"
    assert first["anthropic-ratelimit-requests-remaining"] == "1"
    reset = dt.datetime.fromisoformat(first["anthropic-ratelimit-requests-reset"])
    assert reset > dt.datetime.now(dt.UTC)
    assert raw(gateway, key)["anthropic-ratelimit-requests-remaining"] == "0"
    with pytest.raises(anthropic.RateLimitError) as refused:
        ask(gateway, key)
    error = refused.value
    assert error.status_code == 429 and error.body["error"]["type"] == "rate_limit_error"
    assert "2 requests per minute" in error.body["error"]["message"]
    assert 1 <= int(error.response.headers["retry-after"]) <= 120
    assert error.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    # The static key has no limits and no rate-limit headers.
    assert "anthropic-ratelimit-requests-limit" not in raw(gateway, STATIC_KEY)


def test_tokens_per_minute(
    gateway: RouterProcess, upstream: FakeUpstream, database_url: str
) -> None:
    key = create_key(database_url, "dave", "--tpm", "40")
    upstream.enqueue(completion("a", usage=usage_dict(prompt=20, completion=5)))
    first = raw(gateway, key)
    assert first["anthropic-ratelimit-tokens-limit"] == "40"
    assert first["anthropic-ratelimit-tokens-remaining"] == "40"
    upstream.enqueue(completion("b", usage=usage_dict(prompt=20, completion=5)))
    second = raw(gateway, key)  # 25 tokens used so far
    assert second["anthropic-ratelimit-tokens-remaining"] == "15"
    with pytest.raises(anthropic.RateLimitError) as refused:
        ask(gateway, key)  # 50 >= 40
    assert "40 tokens per minute" in refused.value.body["error"]["message"]
    assert refused.value.response.headers["anthropic-ratelimit-tokens-remaining"] == "0"


def test_budget_spent_is_a_402_naming_the_reset(
    gateway: RouterProcess, upstream: FakeUpstream, database_url: str
) -> None:
    key = create_key(database_url, "erin", "--budget-usd", "0.01", "--per", "day")
    upstream.enqueue(completion("paid", usage=usage_dict(cost=0.02)))
    ask(gateway, key)

    def refused() -> anthropic.APIStatusError | None:
        upstream.enqueue(completion("free", usage=usage_dict(cost=0.0)))
        try:
            ask(gateway, key)
        except anthropic.APIStatusError as error:
            return error
        return None

    error = eventually(refused)
    assert error.status_code == 402
    assert error.body["error"]["type"] == "billing_error"
    message = error.body["error"]["message"]
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert "$0.01 per day" in message and f"resets at {tomorrow}T00:00:00Z" in message


def test_model_globs(gateway: RouterProcess, database_url: str) -> None:
    key = create_key(database_url, "frank", "--models", "claude-haiku-*")
    assert ask(gateway, key, "claude-haiku-4-5").content
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        ask(gateway, key, "claude-opus-4-8")
    assert refused.value.body["error"]["type"] == "permission_error"
    assert "claude-opus-4-8" in refused.value.body["error"]["message"]


def test_revocation_reaches_the_server_within_the_cache_ttl(
    gateway: RouterProcess, database_url: str
) -> None:
    key = create_key(database_url, "grace")
    assert ask(gateway, key).content
    revoked = keys_json(database_url, "revoke", "grace")
    assert revoked["status"] == "revoked" and revoked["revoked_at"]

    def refused() -> anthropic.AuthenticationError | None:
        try:
            ask(gateway, key)
        except anthropic.AuthenticationError as error:
            return error
        return None

    assert "revoked" in eventually(refused, timeout=5).body["error"]["message"]


def test_expired_key(gateway: RouterProcess, database_url: str) -> None:
    key = create_key(database_url, "heidi", "--expires", "2020-01-31")
    assert keys_json(database_url, "show", "heidi")["status"] == "expired"
    with pytest.raises(anthropic.AuthenticationError) as refused:
        ask(gateway, key)
    assert "expired at 2020-02-01T00:00:00Z" in refused.value.body["error"]["message"]


def test_count_tokens_checks_the_key_without_counting_a_request(
    gateway: RouterProcess, database_url: str
) -> None:
    key = create_key(database_url, "ivan", "--rpm", "1", "--models", "claude-haiku-*")
    with sdk(gateway, key) as client:
        for _ in range(3):
            counted = client.messages.count_tokens(model="claude-haiku-4-5", messages=HELLO)
            assert counted.input_tokens > 0
        with pytest.raises(anthropic.PermissionDeniedError):
            client.messages.count_tokens(model="claude-opus-4-8", messages=HELLO)
    ask(gateway, key, "claude-haiku-4-5")  # the one request of the minute
    with pytest.raises(anthropic.RateLimitError):
        ask(gateway, key, "claude-haiku-4-5")


def test_bad_cli_input_is_a_clear_error(database_url: str) -> None:
    for args, text in (
        (("create", "x", "--budget-usd", "5"), "--per"),
        (("create", "x", "--rpm", "0"), "--rpm must be positive"),
        (("create", "x", "--expires", "soon"), "--expires"),
        (("show", "nobody"), "no key named"),
        (("revoke", "nobody"), "no key named"),
    ):
        done = keys_cli(database_url, *args)
        assert done.returncode == 1, args
        assert text in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""
