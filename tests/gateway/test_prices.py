"""Prices: the routing file's overrides, genai-prices' table per backend naming, tiers and
cache tokens, and unknown models priced as unknown (None), never 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from anthropic_router.config import Settings
from anthropic_router.errors import ConfigError
from anthropic_router.gateway import load_price_overrides
from anthropic_router.gateway.prices import PriceTable, Rate, Rates, Usage, parse_overrides

MILLION = 1_000_000


@pytest.mark.parametrize(
    ("backend", "model", "usage", "expected"),
    [
        # OpenRouter's own ids, OpenRouter's prices ($3 / $15 per million for Sonnet 4.5)
        # (100k input tokens: under the 200k long-context tier)
        ("openrouter", "anthropic/claude-sonnet-4.5", Usage(input=100_000), 0.3),
        ("openrouter", "anthropic/claude-sonnet-4.5", Usage(output=MILLION), 15.0),
        ("litellm_openrouter", "anthropic/claude-sonnet-4.5", Usage(input=100_000), 0.3),
        # Databricks endpoints drop their prefix; Anthropic's price list answers
        ("databricks", "databricks-claude-sonnet-4-5", Usage(input=100_000), 0.3),
        # LiteLLM names carry the provider
        ("litellm", "gemini/gemini-2.5-flash", Usage(input=100_000), 0.03),
        # unknown: None (unknown), not 0
        ("openai_compatible", "llama3.2:1b", Usage(input=MILLION), None),
        ("openrouter", "nobody/never-heard-of-it", Usage(input=1), None),
    ],
)
def test_table_prices(backend: str, model: str, usage: Usage, expected: float | None) -> None:
    cost = PriceTable().cost(backend, model, usage)
    assert cost == (None if expected is None else pytest.approx(expected, rel=0.01))


def test_cache_tokens_and_the_long_context_cliff() -> None:
    rates = Rates(
        input=Rate(3.0, ((200_000, 6.0),)),
        output=Rate(15.0, ((200_000, 22.5),)),
        cache_read=Rate(0.3, ((200_000, 0.6),)),
        cache_write=Rate(3.75),
        cache_write_1h=Rate(6.0),
    )
    small = Usage(input=1000, output=100, cache_read=10_000, cache_write=2000, cache_write_1h=500)
    assert rates.cost(small) == pytest.approx(
        (1000 * 3 + 100 * 15 + 10_000 * 0.3 + 1500 * 3.75 + 500 * 6) / MILLION
    )
    # Past 200k input tokens (cache reads count), every token is priced at the tier.
    large = Usage(input=150_000, cache_read=60_000, output=10)
    assert rates.cost(large) == pytest.approx((150_000 * 6 + 60_000 * 0.6 + 10 * 22.5) / MILLION)


def test_overrides_win_and_match_globs() -> None:
    overrides = parse_overrides(
        {"local/*": {"input": 1, "output": 2}, "*": {"input": 9, "output": 9}}
    )
    table = PriceTable(overrides)
    assert (
        table.cost("openai_compatible", "local/qwen", Usage(input=MILLION, output=MILLION)) == 3.0
    )
    # the catch-all prices what the table would have known, too
    assert table.cost("openrouter", "anthropic/claude-sonnet-4.5", Usage(input=MILLION)) == 9.0
    assert table.cost("openrouter", None, Usage(input=1)) is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (["input"], "expected a mapping"),
        ({"m": {"input": 1}}, "prices.m: expected {input, output}"),
        ({"m": {"input": "cheap", "output": 1}}, "prices must be numbers"),
    ],
)
def test_bad_overrides(section: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_overrides(section)


def test_routing_file_prices_section(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "routes:\n  fast: {backend: openai_compatible, model: local/qwen}\n"
        "prices:\n  local/*: {input: 0.5, output: 1.5}\n"
    )
    settings = Settings(
        openai_compatible_base_url="http://127.0.0.1:9/v1", big_model="x", model_map_file=routing
    )
    table = load_price_overrides(settings)
    assert table.cost("openai_compatible", "local/qwen", Usage(output=MILLION)) == 1.5
    routing.write_text("prices:\n  local/*: {input: 0.5}\n")
    with pytest.raises(ConfigError, match="MODEL_MAP_FILE"):
        load_price_overrides(settings)
