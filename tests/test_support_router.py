"""The real router starts as a subprocess against the fake upstream and answers /health."""

from __future__ import annotations

import json
import urllib.request

import pytest

from support.router import RouterProcess

pytestmark = pytest.mark.integration

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_router_starts_and_answers_health(router: RouterProcess) -> None:
    with DIRECT.open(f"{router.url}/health", timeout=5) as response:
        assert response.status == 200
        assert response.headers.get_content_type() == "application/json"
        json.loads(response.read())
    assert router.returncode is None
