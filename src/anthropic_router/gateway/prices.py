"""The cost of an exchange, in USD: the upstream's own figure where it reports one
(OpenRouter's `usage.cost`, already in the record), else the routing file's `prices:`
overrides, else the price table of the `genai-prices` package (bundled snapshot, never
fetched at run time). A model no table knows costs None: unknown, never 0.

Prices are per million tokens. Table lookups are memoized per (backend, model), and the
arithmetic is done here on floats, so pricing a ledger row costs a few microseconds.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from typing import Any

# LiteLLM model prefixes -> genai-prices provider ids.
_LITELLM_PROVIDERS = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gemini": "google",
    "vertex_ai": "google",
    "mistral": "mistral",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "azure": "azure",
    "openrouter": "openrouter",
    "groq": "groq",
    "deepseek": "deepseek",
}


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per million tokens below the first tier, and (threshold, price) cliffs: crossing
    a threshold of input tokens prices every token of the request at that tier."""

    base: float
    tiers: tuple[tuple[int, float], ...] = ()

    def per_mtok(self, context_tokens: int) -> float:
        price = self.base
        for start, tier_price in self.tiers:
            if context_tokens > start:
                price = tier_price
        return price


@dataclass(frozen=True, slots=True)
class Rates:
    input: Rate
    output: Rate
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    cache_write_1h: Rate | None = None
    web_search_per_k: float = 0.0

    def cost(self, usage: Usage) -> float:
        context = usage.input + usage.cache_read + usage.cache_write
        total = usage.input * self.input.per_mtok(context)
        total += usage.output * self.output.per_mtok(context)
        cache_read = self.cache_read or self.input
        total += usage.cache_read * cache_read.per_mtok(context)
        cache_write = self.cache_write or self.input
        write_5m = usage.cache_write - usage.cache_write_1h
        total += write_5m * cache_write.per_mtok(context)
        total += usage.cache_write_1h * (self.cache_write_1h or cache_write).per_mtok(context)
        return total / 1e6 + usage.web_searches * self.web_search_per_k / 1000


@dataclass(frozen=True, slots=True)
class Usage:
    """Anthropic usage as counted by the ledger (`input` excludes cache reads and writes)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    web_searches: int = 0


def parse_overrides(data: Any) -> list[tuple[str, Rates]]:
    """The routing file's `prices:` section: `{glob: {input, output, cache_read,
    cache_write}}` in USD per million tokens, globs over upstream model names (first match
    wins). Raises ValueError naming the bad entry."""
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ValueError("prices: expected a mapping of model globs to prices")
    found = []
    for glob, entry in data.items():
        if not isinstance(entry, dict) or not {"input", "output"} <= entry.keys():
            raise ValueError(f"prices.{glob}: expected {{input, output}} in USD per 1M tokens")
        try:
            rates = Rates(
                Rate(float(entry["input"])),
                Rate(float(entry["output"])),
                cache_read=_override(entry, "cache_read"),
                cache_write=_override(entry, "cache_write"),
            )
        except (TypeError, ValueError):
            raise ValueError(f"prices.{glob}: prices must be numbers") from None
        found.append((str(glob), rates))
    return found


def _override(entry: dict[str, Any], name: str) -> Rate | None:
    return Rate(float(entry[name])) if entry.get(name) is not None else None


class PriceTable:
    """Rates for (backend, upstream model): overrides first, then genai-prices."""

    def __init__(self, overrides: list[tuple[str, Rates]] | None = None) -> None:
        self.overrides = overrides or []
        self._memo: dict[tuple[str, str], Rates | None] = {}

    def rates(self, backend: str, model: str) -> Rates | None:
        key = (backend, model)
        if key not in self._memo:
            self._memo[key] = self._find(backend, model)
        return self._memo[key]

    def _find(self, backend: str, model: str) -> Rates | None:
        for glob, rates in self.overrides:
            if fnmatch.fnmatchcase(model, glob):
                return rates
        provider, name = _table_reference(backend, model)
        return _table_rates(provider, name)

    def cost(self, backend: str | None, model: str | None, usage: Usage) -> float | None:
        if not model:
            return None
        rates = self.rates(backend or "", model)
        return None if rates is None else rates.cost(usage)


def _table_reference(backend: str, model: str) -> tuple[str | None, str]:
    """The genai-prices (provider, model) for a target: OpenRouter ids are OpenRouter's,
    Databricks endpoints drop their `databricks-` prefix, LiteLLM names carry a provider."""
    if backend in ("openrouter", "litellm_openrouter"):
        return "openrouter", model.removeprefix("openrouter/")
    if backend == "databricks":
        return None, model.removeprefix("databricks-")
    if backend == "litellm" and "/" in model:
        prefix, rest = model.split("/", 1)
        if prefix in _LITELLM_PROVIDERS:
            return _LITELLM_PROVIDERS[prefix], rest
    return None, model


def _table_rates(provider: str | None, model: str) -> Rates | None:
    try:
        from genai_prices import data_snapshot
    except ImportError:  # the package is a dependency; a stripped install prices nothing
        return None
    snapshot = data_snapshot.get_snapshot()
    try:
        _, info = snapshot.find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    prices = info.get_prices(dt.datetime.now(dt.UTC)).__dict__
    if prices.get("input_mtok") is None or prices.get("output_mtok") is None:
        return None
    search = prices.get("web_searches_kcount")
    return Rates(
        input=_rate(prices["input_mtok"]),
        output=_rate(prices["output_mtok"]),
        cache_read=_rate(prices.get("cache_read_mtok")),
        cache_write=_rate(prices.get("cache_write_mtok")),
        cache_write_1h=_rate(prices.get("cache_write_1h_mtok")),
        web_search_per_k=float(search) if search is not None else 0.0,
    )


def _rate(value: Any) -> Any:
    """A genai-prices price (a Decimal, or TieredPrices with `base` and `tiers`) as a Rate."""
    if value is None:
        return None
    if hasattr(value, "base"):
        tiers = tuple((int(tier.start), float(tier.price)) for tier in value.tiers)
        return Rate(float(value.base), tiers)
    return Rate(float(value))
