"""The request-level `fallbacks` list (beta `server-side-fallback-2026-06-01` / `-07-01`),
honoured by the router's own chain instead of dropped.

An entry names a `model` and may override `max_tokens`, `thinking`, `output_config` and
`speed` for its attempt. The rules are Anthropic's (`-07-01`): a field left out takes the
request's value, `null` takes the model's default (the field is removed); `output_config`
merges one field at a time. `"default"` asks for the server's own chain: here, the route's.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

_OVERRIDES = ("max_tokens", "thinking", "speed")


def fallback_entries(request: JSON) -> list[JSON]:
    """The entries to try after the requested model, in order ([] for "default" or none).
    Entries without a model name are skipped, duplicates of the requested model too."""
    value = request.get("fallbacks")
    if not isinstance(value, list):
        return []
    seen = {request.get("model")}
    entries = []
    for entry in value:
        if isinstance(entry, str):
            entry = {"model": entry}  # OpenRouter's and LiteLLM's form: a bare model name
        model = entry.get("model") if isinstance(entry, dict) else None
        if isinstance(model, str) and model.strip() and model not in seen:
            seen.add(model)
            entries.append(entry)
    return entries


def without_fallbacks(request: JSON) -> JSON:
    return {k: v for k, v in request.items() if k != "fallbacks"}


def fallback_request(request: JSON, entry: JSON) -> JSON:
    """The request as the attempt on `entry["model"]` sends it."""
    body = without_fallbacks(request)
    body["model"] = entry["model"]
    for name in _OVERRIDES:
        if name not in entry:
            continue
        if entry[name] is None:
            if name != "max_tokens":  # null max_tokens: the request's (Anthropic's rule)
                body.pop(name, None)
        else:
            body[name] = entry[name]
    if "output_config" in entry:
        body = _output_config(body, entry["output_config"])
    return body


def _output_config(body: JSON, override: Any) -> JSON:
    if override is None:  # no format, no task budget, the model's default effort
        body.pop("output_config", None)
        return body
    if not isinstance(override, dict):
        return body
    merged = dict(body.get("output_config") or {})
    for name, value in override.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    if merged:
        body["output_config"] = merged
    else:
        body.pop("output_config", None)
    return body


def fallback_block(declined_model: str, serving_model: str) -> JSON:
    """Anthropic's marker where one model's output gives way to the next (a refusal)."""
    return {
        "type": "fallback",
        "from": {"model": declined_model},
        "to": {"model": serving_model},
        "trigger": {"type": "refusal", "category": None},
    }
