"""Shared fixtures: a fake upstream per test module, the real router in front of it, and SDK
clients pointed at the router. Everything talks real HTTP on 127.0.0.1.

Async tests use the anyio pytest plugin (installed with the anthropic SDK): an `async def` test
that requests `async_client` runs on asyncio; other async tests add `@pytest.mark.anyio`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anthropic
import pytest

from support.router import EnvOverrides, RouterProcess
from support.services import PostgresServer, RedisServer
from support.upstream import FakeUpstream

CLIENT_API_KEY = "test-client-key"
CLIENT_TIMEOUT = 30.0

RouterFactory = Callable[..., RouterProcess]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: runs the real router server as a subprocess on loopback"
    )
    config.addinivalue_line(
        "markers",
        "e2e: drives the real router with the pinned Claude Code CLI and TypeScript SDK"
        " (installed by scripts/setup-e2e.sh)",
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """One fake upstream per test module; cleared before each test that uses it."""
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> None:
    # Only tests that use the upstream (directly or through `router`) get it created and cleared.
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").clear()


@pytest.fixture(scope="module")
def router(upstream: FakeUpstream) -> Iterator[RouterProcess]:
    """The real server, started once per module against the module's upstream, default env."""
    with RouterProcess(upstream.url) as process:
        yield process


@pytest.fixture
def router_factory(upstream: FakeUpstream) -> Iterator[RouterFactory]:
    """Start extra routers: `router_factory(env={...}, upstream_url=None)`; None env values
    remove a variable. All are stopped at teardown."""
    started: list[RouterProcess] = []

    def start(env: EnvOverrides | None = None, upstream_url: str | None = None) -> RouterProcess:
        process = RouterProcess(upstream_url or upstream.url, env)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def client(router: RouterProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=router.url, api_key=CLIENT_API_KEY, max_retries=0, timeout=CLIENT_TIMEOUT
    ) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def async_client(
    router: RouterProcess, anyio_backend: str
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=router.url, api_key=CLIENT_API_KEY, max_retries=0, timeout=CLIENT_TIMEOUT
    ) as sdk:
        yield sdk


# Real PostgreSQL and Redis (support/services.py). The cluster starts on first use, once per
# session; each test gets its own schema (`fresh_postgres_url`) or SQLite file.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A `postgresql://` URL of one database shared by the whole session."""
    return postgres_server.new_database("anthropic_router_test")


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer, postgres_url: str) -> Iterator[str]:
    """A URL of an empty schema of its own (no other test's tables or rows), dropped after."""
    url = postgres_server.new_schema(postgres_url)
    yield url
    postgres_server.drop_schema(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test twice: on a new SQLite file, and on an empty PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server of its own (`.url`; `.stop()`/`.start()` for an outage)."""
    with RedisServer() as server:
        yield server
