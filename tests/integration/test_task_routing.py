"""Task routing rules and local side calls through the real server, driven by the official SDK
against the scripted upstream: which upstream model each request reached, the
`x-anthropic-router-route` header and the exchange record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from support.router import RouterProcess
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

CLIENT_API_KEY = "test-client-key"  # pragma: allowlist secret

ROUTING = """
rules:
  - if: background
    use: claude-haiku-*
  - if: {thinking: high}
    name: think
    use: deepseek/deepseek-r1
  - if: {web_search: true}
    name: webSearch
    use: {model: perplexity/sonar}
  - if: image
    use: vision
routes:
  claude-haiku-*: google/gemini-2.5-flash
  vision: openai/gpt-4o
  gemini-pro:
    model: google/gemini-2.5-pro
    fallbacks: [openai/gpt-4o]
  claude-kimi: moonshotai/kimi-k2
"""
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def records(router: RouterProcess) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in router.stderr().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("event") == "exchange" and x.get("path") == "/v1/messages"]


@pytest.fixture(scope="module")
def routed(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory):
    path = Path(tmp_path_factory.mktemp("routing")) / "routes.yaml"
    path.write_text(ROUTING)
    with RouterProcess(upstream.url, {"MODEL_MAP_FILE": str(path)}) as process:
        yield process


@pytest.fixture
def sdk(routed: RouterProcess):
    with anthropic.Anthropic(base_url=routed.url, api_key=CLIENT_API_KEY, max_retries=0) as c:
        yield c


@pytest.mark.parametrize(
    ("fields", "rule", "model"),
    [
        ({"model": "claude-haiku-4-5"}, "background", "google/gemini-2.5-flash"),
        ({"output_config": {"effort": "high"}}, "think", "deepseek/deepseek-r1"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "webSearch",
            "perplexity/sonar",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is it?"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": PNG,
                                },
                            },
                        ],
                    }
                ]
            },
            "image",
            "openai/gpt-4o",
        ),
        ({}, "default", "anthropic/claude-sonnet-4.5"),
        ({"model": "openai/gpt-5", "output_config": {"effort": "high"}}, "default", "openai/gpt-5"),
    ],
)
def test_rules_choose_the_upstream_model(
    sdk: anthropic.Anthropic,
    routed: RouterProcess,
    upstream: FakeUpstream,
    fields: dict[str, Any],
    rule: str,
    model: str,
) -> None:
    body: dict[str, Any] = {
        "model": "claude-opus-5-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }
    raw = sdk.messages.with_raw_response.create(**body)
    assert raw.headers["x-anthropic-router-route"] == rule
    assert raw.headers["x-anthropic-router-upstream-model"] == model
    assert raw.parse().model == body["model"]
    assert upstream.last.json["model"] == model
    routed.wait_for_log(raw.headers["request-id"])
    record = next(r for r in records(routed) if r["request_id"] == raw.headers["request-id"])
    assert record.get("rule") == (None if rule == "default" else rule)
    assert record["upstream_model"] == model


def test_check_config_prints_the_decision_table(routed: RouterProcess) -> None:
    import subprocess
    import sys

    env = {**routed.env, "PORT": "4000"}
    done = subprocess.run(
        [sys.executable, "-m", "anthropic_router", "check-config"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = json.loads(done.stdout)["decision_table"]
    assert [row["rule"] for row in table] == [
        "background",
        "think",
        "webSearch",
        "image",
        "default",
    ]
    assert table[0]["if"] == {"background": True}
    assert table[1] == {
        "rule": "think",
        "if": {"thinking": "high"},
        "use": ["openrouter:deepseek/deepseek-r1 (openai)"],
    }
    assert table[-1]["if"] == "no rule matched"


# Local side calls.


@pytest.fixture(scope="module")
def local(upstream: FakeUpstream):
    with RouterProcess(upstream.url, {"LOCAL_SIDE_CALLS": "true"}) as process:
        yield process


VALIDATION = {
    "model": "openai/gpt-5",
    "max_tokens": 1,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
}


@pytest.mark.parametrize("stream", [False, True])
def test_side_calls_are_answered_locally(
    local: RouterProcess, upstream: FakeUpstream, stream: bool
) -> None:
    with anthropic.Anthropic(base_url=local.url, api_key="k", max_retries=0) as sdk:
        if stream:
            with sdk.messages.stream(**VALIDATION) as events:
                message = events.get_final_message()
        else:
            message = sdk.messages.create(**VALIDATION)
    assert upstream.requests == []  # no upstream call at all
    assert message.model == "openai/gpt-5" and message.content == []
    assert message.stop_reason == "max_tokens"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 0
    counted = httpx.post(f"{local.url}/v1/messages/count_tokens", json=VALIDATION).json()
    assert message.usage.input_tokens == counted["input_tokens"]
    [record] = [r for r in records(local) if r.get("backend") == "local"][-1:]
    assert record["usage"]["input_tokens"] == counted["input_tokens"]
    assert record["status"] == 200 and record["stream"] is stream


def test_other_requests_still_go_upstream(local: RouterProcess, upstream: FakeUpstream) -> None:
    with anthropic.Anthropic(base_url=local.url, api_key="k", max_retries=0) as sdk:
        sdk.messages.create(**{**VALIDATION, "max_tokens": 2})
    assert len(upstream.requests) == 1


def test_side_calls_go_upstream_by_default(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    sdk.messages.create(**VALIDATION)
    [sent] = upstream.requests
    assert sent.json["model"] == "openai/gpt-5"


# Model discovery (Claude Code's /model picker reads GET /v1/models?limit=1000).


def test_models_list_names_the_routes_for_the_picker(routed: RouterProcess) -> None:
    listed = httpx.get(f"{routed.url}/v1/models", params={"limit": 1000}).json()
    by_id = {m["id"]: m for m in listed["data"]}
    ids = list(by_id)
    # Tiers first, then the routing file's exact names, then the upstream's list.
    assert ids[:4] == [
        "claude-opus-4-8",
        "claude-sonnet-5",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
    ]
    assert ids[4:7] == ["anthropic-router/vision", "anthropic-router/gemini-pro", "claude-kimi"]
    assert "claude-haiku-*" not in by_id  # globs are no names
    gemini = by_id["anthropic-router/gemini-pro"]
    assert gemini["display_name"] == "gemini-pro"
    assert (
        gemini["description"] == "anthropic-router: openrouter:google/gemini-2.5-pro (+1 fallback)"
    )
    assert by_id["claude-kimi"]["description"] == "anthropic-router: openrouter:moonshotai/kimi-k2"
    assert (
        by_id["claude-haiku-4-5"]["display_name"] == "claude-haiku-4-5 -> google/gemini-2.5-flash"
    )
    one = httpx.get(f"{routed.url}/v1/models/anthropic-router/gemini-pro").json()
    assert one == gemini


def test_models_list_paging(routed: RouterProcess) -> None:
    first = httpx.get(f"{routed.url}/v1/models", params={"limit": 3}).json()
    assert len(first["data"]) == 3 and first["has_more"] is True
    after = httpx.get(
        f"{routed.url}/v1/models", params={"limit": 3, "after_id": first["last_id"]}
    ).json()
    assert after["data"][0]["id"] == "claude-haiku-4-5"
    before = httpx.get(
        f"{routed.url}/v1/models", params={"limit": 2, "before_id": after["first_id"]}
    ).json()
    assert [m["id"] for m in before["data"]] == ["claude-sonnet-5", "claude-sonnet-4-5"]


def test_a_listed_route_name_is_served_by_its_route(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    raw = sdk.messages.with_raw_response.create(
        model="anthropic-router/gemini-pro",
        max_tokens=20,
        output_config={"effort": "high"},  # the think rule does not apply to a chosen route
        messages=[{"role": "user", "content": "hi"}],
    )
    assert raw.headers["x-anthropic-router-route"] == "default"
    assert upstream.last.json["model"] == "google/gemini-2.5-pro"
    assert raw.parse().model == "anthropic-router/gemini-pro"
