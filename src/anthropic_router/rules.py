"""Task routing: the routing file's `rules:`, evaluated in order on the parsed request.

A rule is a set of conditions on what the request *is* (a background side call, thinking, a
long context, web search, images, tools, the client's model name) and what to use for it. The
first rule whose conditions all hold decides; none holding leaves the request to `routes:` and
the tiers. Everything here is a pure function of the parsed request: no I/O, no settings.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from anthropic_router.tokens import count_text

JSON = dict[str, Any]

EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
# `thinking.budget_tokens` read as an effort level when the request gives no effort.
_BUDGET_LEVELS = ((4096, "low"), (16384, "medium"))
# bytes/4 decides outside this band around the threshold (off by -20%..+5% on Claude Code's
# requests). Inside it, the offline tokenizer counts a sample: 8 slices of 512 bytes spread
# over the body, scaled to its size (within 8% of the full count, ~0.5 ms where the full
# count takes 30-100 ms on a long session; docs/02).
_ESTIMATE_BAND = (0.7, 1.4)
_SAMPLES, _SAMPLE_BYTES = 8, 512
_TOKENIZER_MODEL = "anthropic/claude"  # the client speaks Claude: count with Claude's vocabulary


class RuleError(ValueError):
    """A rule of the routing file is malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of `rules:`: a name, the conditions that must all hold, and what to use
    (opaque here: `routing` gives it meaning)."""

    name: str
    conditions: tuple[tuple[str, Any], ...]
    use: Any


def estimated_tokens(request: Mapping[str, Any]) -> int:
    """Input tokens by the cheap estimate: serialized bytes / 4 (orjson: tens of µs)."""
    return len(orjson.dumps(request, default=str)) // 4


def sampled_tokens(request: Mapping[str, Any]) -> int:
    """Input tokens from the offline tokenizer run on evenly spread slices of the body."""
    return _sampled(orjson.dumps(request, default=str))


def _sampled(body: bytes) -> int:
    if len(body) <= _SAMPLES * _SAMPLE_BYTES:
        return count_text(body.decode("utf-8", "ignore"), _TOKENIZER_MODEL)
    step = len(body) // _SAMPLES
    sample = b"".join(body[i * step : i * step + _SAMPLE_BYTES] for i in range(_SAMPLES))
    counted = count_text(sample.decode("utf-8", "ignore"), _TOKENIZER_MODEL)
    return round(counted * len(body) / len(sample))


def _background(request: Mapping[str, Any], wanted: Any) -> bool:
    # Claude Code's small fast model (titles, topic detection, probes) is a haiku name.
    return ("haiku" in str(request.get("model", "")).lower()) == bool(wanted)


def _effort(request: Mapping[str, Any]) -> str | None:
    """The request's reasoning effort: `output_config.effort`, else read from the thinking
    budget; None when thinking is disabled, or off and no effort is given."""
    thinking = request.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":  # e.g. Claude Code's title request, which still says effort "high"
        return None
    config = request.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str) and effort in EFFORT_LEVELS:
        return effort
    if kind == "adaptive":
        return "medium"
    if kind == "enabled":
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(budget, int):
            return next((lvl for limit, lvl in _BUDGET_LEVELS if budget < limit), "high")
        return "high"
    return None


def _thinking(request: Mapping[str, Any], wanted: Any) -> bool:
    thinking = request.get("thinking")
    enabled = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    if isinstance(wanted, bool):
        return enabled == wanted
    effort = _effort(request)
    return effort is not None and EFFORT_LEVELS.index(effort) >= EFFORT_LEVELS.index(wanted)


def _long_context(request: Mapping[str, Any], threshold: Any) -> bool:
    limit = int(threshold)
    body = orjson.dumps(request, default=str)
    low, high = _ESTIMATE_BAND
    if len(body) // 4 < limit * low:
        return False
    if len(body) // 4 > limit * high:
        return True
    return _sampled(body) > limit


def _tools_of(request: Mapping[str, Any]) -> list[JSON]:
    tools = request.get("tools")
    return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


def _web_search(request: Mapping[str, Any], wanted: Any) -> bool:
    found = any(str(t.get("type", "")).startswith("web_search") for t in _tools_of(request))
    return found == bool(wanted)


def _client_tools(request: Mapping[str, Any], wanted: Any) -> bool:
    # Server tools carry a versioned `type`; client tools have none (or "custom").
    found = any(t.get("type") in (None, "custom") for t in _tools_of(request))
    return found == bool(wanted)


def _has_image(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for block in content:
        if isinstance(block, dict):
            if block.get("type") == "image":
                return True
            if block.get("type") == "tool_result" and _has_image(block.get("content")):
                return True
    return False


def _image(request: Mapping[str, Any], wanted: Any) -> bool:
    messages = request.get("messages")
    found = isinstance(messages, list) and any(
        isinstance(m, dict) and _has_image(m.get("content")) for m in messages
    )
    return found == bool(wanted)


def _model(request: Mapping[str, Any], patterns: Any) -> bool:
    name = str(request.get("model", ""))
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


CONDITIONS: dict[str, Callable[[Mapping[str, Any], Any], bool]] = {
    "background": _background,
    "thinking": _thinking,
    "long_context": _long_context,
    "web_search": _web_search,
    "image": _image,
    "tools": _client_tools,
    "model": _model,
}


def matches(rule: Rule, request: Mapping[str, Any]) -> bool:
    return all(CONDITIONS[name](request, value) for name, value in rule.conditions)


def first_match(rules: tuple[Rule, ...], request: Mapping[str, Any]) -> Rule | None:
    """The first rule whose conditions all hold, in file order; None when none does."""
    return next((rule for rule in rules if matches(rule, request)), None)


# ---------------------------------------------------------------------------------------------
# Parsing the routing file's `rules:` (at start-up)
# ---------------------------------------------------------------------------------------------


def parse_rule(position: int, entry: Any, parse_use: Callable[[Any], Any]) -> Rule:
    """One `rules:` entry: `{if: <name> | [names] | {name: value, ...}, use: ..., name: ...}`.
    `parse_use` turns `use` into what the router needs; it raises RuleError on bad input."""
    label = f"rules[{position}]"
    if not isinstance(entry, dict) or "if" not in entry or "use" not in entry:
        raise RuleError(f"{label}: a rule needs 'if' and 'use'")
    unknown = set(entry) - {"if", "use", "name"}
    if unknown:
        raise RuleError(f"{label}: unknown keys {sorted(unknown)}")
    conditions = tuple(_condition(label, name, value) for name, value in _pairs(label, entry["if"]))
    if not conditions:
        raise RuleError(f"{label}: 'if' names no condition")
    name = entry.get("name") or _default_name(conditions)
    # The name travels in a response header: printable ASCII only.
    if not isinstance(name, str) or not (name.isascii() and name.isprintable()):
        raise RuleError(f"{label}: 'name' must be a string of printable ASCII")
    return Rule(name, conditions, parse_use(entry["use"]))


def _pairs(label: str, spec: Any) -> list[tuple[str, Any]]:
    if isinstance(spec, str):
        return [(spec, True)]
    if isinstance(spec, list) and all(isinstance(item, str) for item in spec):
        return [(item, True) for item in spec]
    if isinstance(spec, dict):
        return [(str(key), value) for key, value in spec.items()]
    raise RuleError(f"{label}: 'if' must be a condition name, a list of names or a mapping")


def _condition(label: str, name: str, value: Any) -> tuple[str, Any]:
    if name not in CONDITIONS:
        raise RuleError(f"{label}: unknown condition {name!r} (one of {', '.join(CONDITIONS)})")
    if name == "long_context":
        if value is True or not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RuleError(f"{label}: long_context needs a token threshold, e.g. 60000")
        return name, value
    if name == "thinking" and isinstance(value, str):
        if value not in EFFORT_LEVELS:
            raise RuleError(f"{label}: thinking level {value!r} is not one of {EFFORT_LEVELS}")
        return name, value
    if name == "model":
        patterns = [value] if isinstance(value, str) else value
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise RuleError(f"{label}: model needs a glob or a list of globs")
        return name, tuple(patterns)
    if not isinstance(value, bool):
        raise RuleError(f"{label}: {name} takes true or false, not {value!r}")
    return name, value


def _default_name(conditions: tuple[tuple[str, Any], ...]) -> str:
    parts = []
    for name, value in conditions:
        if value is True:
            parts.append(name)
        elif value is False:
            parts.append(f"no_{name}")
        elif isinstance(value, tuple):
            parts.append(f"{name}={','.join(value)}")
        else:
            parts.append(f"{name}={value}")
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in "+".join(parts))
