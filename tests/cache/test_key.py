"""The response cache's key, as a table: which changes to a request give another key (they
can change the upstream's answer) and which give the same key (only spelling, or fields the
answer does not depend on). Plus which requests are never cached, and the header modes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from anthropic_router.cache.key import (
    cache_key,
    cache_mode,
    route_fingerprint,
    uncacheable,
    upstream_headers,
)
from anthropic_router.config import Settings
from anthropic_router.routing import Router

JSON = dict[str, Any]

BASE: JSON = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "You are terse."}],
    "messages": [{"role": "user", "content": "What is 2+2?"}],
    "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {}}}],
    "temperature": 1,
    "stream": False,
    "metadata": {"user_id": "user_abc_account__session_1"},
}
HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": "a-2025,b-2025"}


def _router(**extra: Any) -> Router:
    return Router(Settings(_env_file=None, openrouter_api_key="test-upstream-key-0000", **extra))


ROUTER = _router()
FINGERPRINT = route_fingerprint(ROUTER.resolve("claude-sonnet-4-5"))


def key(
    request: JSON,
    headers: dict[str, str] = HEADERS,
    client: str | None = "key_1",
    fingerprint: bytes = FINGERPRINT,
) -> str:
    return cache_key(request, fingerprint, headers, client)


def changed(**fields: Any) -> JSON:
    return {**BASE, **fields}


CHANGES_THE_KEY = {
    "model": changed(model="claude-opus-4-1"),
    "system": changed(system="You are verbose."),
    "a message": changed(messages=[{"role": "user", "content": "What is 2+3?"}]),
    "one more turn": changed(
        messages=[
            *BASE["messages"],
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "sure?"},
        ]
    ),
    "tools": changed(tools=[]),
    "a tool's schema": changed(
        tools=[{"name": "Bash", "input_schema": {"type": "object", "required": ["x"]}}]
    ),
    "tool_choice": changed(tool_choice={"type": "any"}),
    "thinking": changed(thinking={"type": "enabled", "budget_tokens": 2048}),
    "temperature": changed(temperature=0),
    "top_p": changed(top_p=0.9),
    "top_k": changed(top_k=5),
    "stop_sequences": changed(stop_sequences=["END"]),
    "max_tokens": changed(max_tokens=1025),
    "output_config": changed(output_config={"effort": "low"}),
    "output_format": changed(output_format={"type": "json_schema", "schema": {}}),
    "an unknown field": changed(future_field={"x": 1}),
    # Anthropic prompt-caching breakpoints are part of the request as sent (kept: cheap,
    # and an identical request from the same client carries identical breakpoints).
    "cache_control": changed(
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    ),
}


@pytest.mark.parametrize("request_", CHANGES_THE_KEY.values(), ids=CHANGES_THE_KEY.keys())
def test_fields_that_decide_the_answer_change_the_key(request_: JSON) -> None:
    assert key(request_) != key(BASE)


KEEPS_THE_KEY = {
    "stream": changed(stream=True),
    "metadata": changed(metadata={"user_id": "user_xyz_account__session_2"}),
    "no metadata": {k: v for k, v in BASE.items() if k != "metadata"},
    "JSON key order": dict(reversed(list(BASE.items()))),
    "whitespace": orjson.loads(orjson.dumps(BASE, option=orjson.OPT_INDENT_2)),
    "nested key order": changed(
        tools=[{"input_schema": {"properties": {}, "type": "object"}, "name": "Bash"}]
    ),
}


@pytest.mark.parametrize("request_", KEEPS_THE_KEY.values(), ids=KEEPS_THE_KEY.keys())
def test_spelling_and_fields_the_answer_does_not_depend_on_keep_the_key(request_: JSON) -> None:
    assert key(request_) == key(BASE)


def test_beta_header_order_keeps_the_key_and_its_content_changes_it() -> None:
    assert key(BASE, {**HEADERS, "anthropic-beta": "b-2025, a-2025"}) == key(BASE)
    assert key(BASE, {**HEADERS, "anthropic-beta": "a-2025"}) != key(BASE)
    assert key(BASE, {"anthropic-version": "2023-06-01"}) != key(BASE)


def test_client_headers_count_only_where_they_reach_the_upstream() -> None:
    translated = ROUTER.resolve("claude-sonnet-4-5")
    assert upstream_headers(translated, HEADERS) == {}  # OpenRouter never sees them
    native = Router(
        Settings(
            _env_file=None,
            databricks_host="adb-1.2.azuredatabricks.net",
            databricks_pat="dapi-test-key-0000",
        )
    ).resolve("claude-sonnet-4-5")
    assert native.targets[0].wire == "anthropic"
    assert upstream_headers(native, HEADERS) == HEADERS


def test_another_client_key_gets_another_key() -> None:
    assert key(BASE, client="key_2") != key(BASE)
    assert key(BASE, client=None) != key(BASE)


ROUTES = {
    "another tier": route_fingerprint(ROUTER.resolve("claude-haiku-4-5")),
    "another upstream model": route_fingerprint(
        _router(big_model="openai/gpt-5").resolve("claude-sonnet-4-5")
    ),
    "another request default (OPENROUTER_MIN_P)": route_fingerprint(
        _router(openrouter_min_p=0.1).resolve("claude-sonnet-4-5")
    ),
}


@pytest.mark.parametrize("fingerprint", ROUTES.values(), ids=ROUTES.keys())
def test_the_resolved_target_is_part_of_the_key(fingerprint: bytes) -> None:
    assert key(BASE, fingerprint=fingerprint) != key(BASE)


def test_the_same_route_from_another_router_gives_the_same_key() -> None:
    # What two router processes sharing Redis rely on (sets are spelled sorted).
    assert route_fingerprint(_router().resolve("claude-sonnet-4-5")) == FINGERPRINT


def test_a_key_is_a_short_hex_digest() -> None:
    assert len(key(BASE)) == 40 and int(key(BASE), 16) >= 0


NEVER_CACHED = {
    "web search": (changed(tools=[{"type": "web_search_20250305", "name": "web_search"}]), False),
    "web fetch": (changed(tools=[{"type": "web_fetch_20250910", "name": "web_fetch"}]), False),
    "code execution": (
        changed(tools=[{"type": "code_execution_20250825", "name": "code_execution"}]),
        False,
    ),
    "mcp_servers": (changed(mcp_servers=[{"type": "url", "url": "https://x", "name": "x"}]), False),
    "temperature 1, only deterministic": (BASE, True),
    "no temperature, only deterministic": (
        {k: v for k, v in BASE.items() if k != "temperature"},
        True,
    ),
}


@pytest.mark.parametrize(("request_", "only_det"), NEVER_CACHED.values(), ids=NEVER_CACHED.keys())
def test_requests_the_cache_must_not_answer(request_: JSON, only_det: bool) -> None:
    assert uncacheable(request_, only_det) is not None


CACHED = {
    "client tools": (BASE, False),
    "client tool with a type (bash)": (
        changed(tools=[{"type": "bash_20250124", "name": "bash"}]),
        False,
    ),
    "temperature 0, only deterministic": (changed(temperature=0), True),
    "temperature 1, all sampling": (BASE, False),
}


@pytest.mark.parametrize(("request_", "only_det"), CACHED.values(), ids=CACHED.keys())
def test_requests_the_cache_may_answer(request_: JSON, only_det: bool) -> None:
    assert uncacheable(request_, only_det) is None


MODES = [
    (None, None, "use"),
    ("max-age=60", None, "use"),
    ("no-cache", None, "refresh"),
    ("No-Cache", None, "refresh"),
    ("max-age=0", None, "refresh"),
    ("no-store", None, "no-store"),
    ("no-cache, no-store", None, "no-store"),
    (None, "bypass", "refresh"),
    (None, "BYPASS", "refresh"),
    (None, "no-store", "no-store"),
    (None, "something-else", "use"),
]


@pytest.mark.parametrize(("cache_control", "ours", "mode"), MODES)
def test_request_headers_choose_the_mode(cache_control: Any, ours: Any, mode: str) -> None:
    assert cache_mode(cache_control, ours) == mode
