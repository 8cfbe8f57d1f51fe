"""Shared fixtures: a fake upstream per test module, the real router in front of it, and SDK
clients pointed at the router. Everything talks real HTTP on 127.0.0.1.

Async tests use the anyio pytest plugin (installed with the anthropic SDK): an `async def` test
that requests `async_client` runs on asyncio; other async tests add `@pytest.mark.anyio`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import anthropic
import pytest

from support.router import EnvOverrides, RouterProcess
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
