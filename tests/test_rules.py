"""Task routing rules: the conditions as tables, rule parsing, and `Router.route` decisions."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from anthropic_router.config import Settings
from anthropic_router.routing import PICKER_PREFIX, ModelMapError, Router, load_routing_file
from anthropic_router.rules import (
    CONDITIONS,
    Rule,
    RuleError,
    first_match,
    parse_rule,
    sampled_tokens,
)
from anthropic_router.tokens import count_tokens

PNG = base64.b64encode(
    bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806")
).decode()
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
BASH = {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}


def request(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "claude-opus-5-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return {**base, **fields}


def user(*blocks: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


# (condition, value, request, expected)
CONDITION_TABLE = [
    ("background", True, request(model="claude-haiku-4-5-20251001"), True),
    ("background", True, request(model="CLAUDE-HAIKU-4-5"), True),
    ("background", True, request(model="claude-opus-5-5"), False),
    ("background", False, request(model="claude-opus-5-5"), True),
    ("thinking", True, request(thinking={"type": "adaptive"}), True),
    ("thinking", True, request(thinking={"type": "enabled", "budget_tokens": 2048}), True),
    ("thinking", True, request(thinking={"type": "disabled"}), False),
    ("thinking", True, request(), False),
    ("thinking", False, request(), True),
    ("thinking", "high", request(output_config={"effort": "high"}), True),
    ("thinking", "high", request(output_config={"effort": "max"}), True),
    ("thinking", "high", request(output_config={"effort": "medium"}), False),
    ("thinking", "medium", request(thinking={"type": "adaptive"}), True),  # no effort: medium
    ("thinking", "high", request(thinking={"type": "adaptive"}), False),
    ("thinking", "high", request(thinking={"type": "enabled", "budget_tokens": 31999}), True),
    ("thinking", "medium", request(thinking={"type": "enabled", "budget_tokens": 8000}), True),
    ("thinking", "medium", request(thinking={"type": "enabled", "budget_tokens": 1024}), False),
    ("thinking", "low", request(), False),  # thinking off, no effort
    # Claude Code's session-title request: thinking disabled, yet effort "high".
    (
        "thinking",
        "high",
        request(thinking={"type": "disabled"}, output_config={"effort": "high"}),
        False,
    ),
    ("thinking", "high", request(output_config={"effort": "high"}), True),  # no thinking field
    ("thinking", "low", request(output_config={"effort": "bogus"}), False),
    ("web_search", True, request(tools=[BASH, WEB_SEARCH]), True),
    ("web_search", True, request(tools=[BASH]), False),
    ("web_search", False, request(), True),
    ("image", True, request(messages=user({"type": "text", "text": "look"}, IMAGE)), True),
    (
        "image",
        True,
        request(messages=user({"type": "tool_result", "tool_use_id": "t1", "content": [IMAGE]})),
        True,
    ),
    ("image", True, request(), False),
    ("image", False, request(messages=user(IMAGE)), False),
    ("tools", True, request(tools=[BASH]), True),
    ("tools", True, request(tools=[{**BASH, "type": "custom"}]), True),
    ("tools", True, request(tools=[WEB_SEARCH]), False),  # a server tool only
    ("tools", False, request(tools=[]), True),
    ("tools", False, request(), True),
    ("model", ("claude-sonnet-*",), request(model="claude-sonnet-5"), True),
    ("model", ("claude-sonnet-*",), request(model="claude-opus-5-5"), False),
    ("model", ("gpt-*", "claude-opus-*"), request(model="claude-opus-5-5"), True),
    ("long_context", 1000, request(messages=user({"type": "text", "text": "x " * 4000})), True),
    ("long_context", 1000, request(), False),
]


@pytest.mark.parametrize(("name", "value", "body", "expected"), CONDITION_TABLE)
def test_condition_table(name: str, value: Any, body: dict[str, Any], expected: bool) -> None:
    assert CONDITIONS[name](body, value) is expected


def prose(tokens: int) -> dict[str, Any]:
    """A request whose text is about `tokens` tokens of ordinary words."""
    words = "the quick brown fox jumps over a lazy dog while routing requests "
    text = words * (tokens // 12)
    return request(messages=user({"type": "text", "text": text}))


@pytest.mark.parametrize("tokens", [3_000, 20_000, 70_000])
def test_long_context_counts_a_sample_near_the_threshold(tokens: int) -> None:
    body = prose(tokens)
    exact = count_tokens(body, "anthropic/claude")
    assert abs(sampled_tokens(body) / exact - 1) < 0.1
    # 15% from the threshold is inside the band where the sample decides, and it decides right.
    assert CONDITIONS["long_context"](body, int(exact * 0.85)) is True
    assert CONDITIONS["long_context"](body, int(exact * 1.15)) is False
    # Far from it, the bytes/4 estimate alone decides.
    assert CONDITIONS["long_context"](body, exact // 4) is True
    assert CONDITIONS["long_context"](body, exact * 4) is False


def test_sampled_tokens_of_a_claude_code_sized_request() -> None:
    body = claude_code_request()
    exact = count_tokens(body, "anthropic/claude")
    assert abs(sampled_tokens(body) / exact - 1) < 0.15


def parse(entry: Any) -> Rule:
    return parse_rule(0, entry, lambda use: use)


@pytest.mark.parametrize(
    ("entry", "name", "conditions"),
    [
        ({"if": "background", "use": "x"}, "background", (("background", True),)),
        (
            {"if": ["image", "tools"], "use": "x"},
            "image+tools",
            (("image", True), ("tools", True)),
        ),
        (
            {"if": {"web_search": True, "model": "claude-sonnet-*"}, "use": "x"},
            "web_search+model=claude-sonnet-*",
            (("web_search", True), ("model", ("claude-sonnet-*",))),
        ),
        ({"if": {"long_context": 60000}, "use": "x"}, "long_context=60000", None),
        ({"if": {"thinking": "high"}, "use": "x"}, "thinking=high", None),
        ({"if": {"tools": False}, "use": "x"}, "no_tools", None),
        ({"if": "thinking", "use": "x", "name": "think"}, "think", None),
    ],
)
def test_rule_names_and_conditions(entry: Any, name: str, conditions: Any) -> None:
    rule = parse(entry)
    assert rule.name == name and rule.use == "x"
    if conditions is not None:
        assert rule.conditions == conditions


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"use": "x"}, "needs 'if' and 'use'"),
        ("background", "needs 'if' and 'use'"),
        ({"if": "sunny", "use": "x"}, "unknown condition 'sunny'"),
        ({"if": {"long_context": True}, "use": "x"}, "long_context needs a token threshold"),
        ({"if": {"long_context": -5}, "use": "x"}, "long_context needs a token threshold"),
        ({"if": {"thinking": "huge"}, "use": "x"}, "thinking level 'huge'"),
        ({"if": {"image": "yes"}, "use": "x"}, "image takes true or false"),
        ({"if": {"model": 3}, "use": "x"}, "model needs a glob"),
        ({"if": {}, "use": "x"}, "names no condition"),
        ({"if": 7, "use": "x"}, "'if' must be"),
        ({"if": "image", "use": "x", "when": 1}, "unknown keys ['when']"),
        ({"if": "image", "use": "x", "name": "bad\nname"}, "printable ASCII"),
    ],
)
def test_bad_rules_name_the_problem(entry: Any, message: str) -> None:
    with pytest.raises(RuleError, match="rules\\[0\\]") as caught:
        parse(entry)
    assert message in str(caught.value)


def test_first_match_is_in_file_order() -> None:
    rules = (parse({"if": "thinking", "use": 1}), parse({"if": "tools", "use": 2}))
    both = request(thinking={"type": "adaptive"}, tools=[BASH])
    assert first_match(rules, both) is rules[0]
    assert first_match(rules, request(tools=[BASH])) is rules[1]
    assert first_match(rules, request()) is None


# Router decisions from a routing file.

ROUTING = """
rules:
  - if: background
    use: claude-haiku-*
  - if: {long_context: 60000}
    use: {backend: openrouter, model: google/gemini-2.5-pro}
  - if: {thinking: high}
    name: think
    use: deepseek/deepseek-r1
  - if: {web_search: true, model: "claude-sonnet-*"}
    use: perplexity/sonar
  - if: image
    use: vision
routes:
  claude-haiku-*: google/gemini-2.5-flash
  vision:
    model: openai/gpt-4o
    fallbacks: [google/gemini-2.5-flash]
  gemini-pro: google/gemini-2.5-pro
"""


def make_router(tmp_path: Path, text: str = ROUTING, name: str = "routes.yaml") -> Router:
    path = tmp_path / name
    path.write_text(text)
    return Router(
        Settings(_env_file=None, openrouter_api_key="test-key", model_map_file=path)  # type: ignore[call-arg]
    )


def big_request(tokens: int) -> dict[str, Any]:
    return prose(tokens)


@pytest.mark.parametrize(
    ("body", "rule", "served_by"),
    [
        (request(model="claude-haiku-4-5"), "background", "google/gemini-2.5-flash"),
        (big_request(90_000), "long_context=60000", "google/gemini-2.5-pro"),
        (request(output_config={"effort": "high"}), "think", "deepseek/deepseek-r1"),
        (
            request(model="claude-sonnet-5", tools=[WEB_SEARCH]),
            "web_search+model=claude-sonnet-*",
            "perplexity/sonar",
        ),
        (request(model="claude-opus-5-5", tools=[WEB_SEARCH]), None, "anthropic/claude-sonnet-4.5"),
        (request(messages=user(IMAGE)), "image", "openai/gpt-4o"),
        (request(output_config={"effort": "medium"}), None, "anthropic/claude-sonnet-4.5"),
        # An explicit upstream id wins over the conditions.
        (request(model="openai/gpt-5", output_config={"effort": "high"}), None, "openai/gpt-5"),
        # So does a route listed for Claude Code's /model picker.
        (
            request(model=PICKER_PREFIX + "gemini-pro", output_config={"effort": "high"}),
            None,
            "google/gemini-2.5-pro",
        ),
    ],
)
def test_router_decisions(tmp_path: Path, body: Any, rule: str | None, served_by: str) -> None:
    route = make_router(tmp_path).route(body)
    assert route.rule == rule
    assert route.upstream_model == served_by
    assert route.client_model == body["model"]
    if rule is not None:
        assert route.reason.startswith(f"rule {rule}: ")


def test_rule_targets_keep_the_route_fallbacks(tmp_path: Path) -> None:
    route = make_router(tmp_path).route(request(messages=user(IMAGE)))
    assert [t.upstream_model for t in route.targets] == ["openai/gpt-4o", "google/gemini-2.5-flash"]


def test_explicit_model_can_be_made_to_follow_the_rules(tmp_path: Path) -> None:
    text = "explicit_model_wins: false\n" + ROUTING
    route = make_router(tmp_path, text).route(
        request(model="openai/gpt-5", output_config={"effort": "max"})
    )
    assert route.rule == "think" and route.upstream_model == "deepseek/deepseek-r1"


def test_rules_in_json_and_top_level_routes(tmp_path: Path) -> None:
    data = {
        "rules": [{"if": "background", "use": {"model": "qwen/qwen3-coder"}}],
        "claude-opus-*": "x/big",
    }
    r = make_router(tmp_path, json.dumps(data), "routes.json")
    assert r.route(request(model="claude-haiku-4-5")).upstream_model == "qwen/qwen3-coder"
    assert r.route(request()).upstream_model == "x/big"
    assert r.route(request()).rule is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: {if: background}\n", "'rules' must be a list"),
        ("rules:\n  - {if: background, use: {backend: nowhere, model: m}}\n", "unknown backend"),
        ("rules:\n  - {if: image, use: a}\n  - {if: image, use: b}\n", "same name"),
        ("explicit_model_wins: maybe\nrules: []\n", "'explicit_model_wins' must be"),
    ],
)
def test_bad_rules_stop_start_up(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    with pytest.raises(ModelMapError, match="MODEL_MAP_FILE") as caught:
        load_routing_file(path, "openrouter")
    assert message in str(caught.value)


def test_a_rule_using_an_unknown_name_stops_start_up(tmp_path: Path) -> None:
    text = "rules:\n  - {if: image, use: vison}\nroutes:\n  vision: openai/gpt-4o\n"
    with pytest.raises(ModelMapError, match="rule 'image': use 'vison' is not a route name"):
        make_router(tmp_path, text)
    # Tier names and upstream ids are fine.
    text = "rules:\n  - {if: image, use: claude-haiku-4-5}\n  - {if: tools, use: x/y}\n"
    assert make_router(tmp_path, text).route(request(tools=[BASH])).upstream_model == "x/y"


def claude_code_request() -> dict[str, Any]:
    """A Claude Code-sized main-loop request (~80 KB: system, 24 tools, a few turns)."""
    tool = {
        "name": "Tool",
        "description": "Does things. " * 200,
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {f"p{i}": {"type": "string", "description": "x" * 40} for i in range(20)},
            "additionalProperties": False,
        },
    }
    turns = []
    for i in range(8):
        turns.append({"role": "user", "content": [{"type": "text", "text": f"step {i} " * 300}]})
        turns.append({"role": "assistant", "content": [{"type": "text", "text": "ok " * 300}]})
    turns.append({"role": "user", "content": "go on"})
    return request(
        system=[{"type": "text", "text": "You are Claude Code. " * 300}],
        tools=[{**tool, "name": f"Tool{i}"} for i in range(24)],
        messages=turns,
        thinking={"type": "adaptive"},
        output_config={"effort": "medium"},
    )


def test_rules_on_a_claude_code_sized_request(tmp_path: Path) -> None:
    """All five rules are evaluated (none matches) on a ~80 KB request; the timing is
    printed for docs/02 (`-s` shows it), not asserted."""
    body = claude_code_request()
    r = make_router(tmp_path)
    assert 60_000 < len(json.dumps(body)) < 200_000
    assert r.route(body).rule is None
    runs = 200
    started = time.perf_counter()
    for _ in range(runs):
        r.route(body)
    per_call = (time.perf_counter() - started) / runs * 1e6
    print(f"\nrules on a {len(json.dumps(body)) // 1024} KB request: {per_call:.0f} µs")
