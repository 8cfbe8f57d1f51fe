"""Anthropic Messages request -> OpenAI chat completions request (OpenRouter dialect)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from anthropic_router.convert.ids import to_upstream_tool_name
from anthropic_router.convert.messages import convert_messages
from anthropic_router.convert.options import OPENAI_FIELDS, OPENROUTER_FIELDS, RequestOptions
from anthropic_router.convert.profiles import Capabilities
from anthropic_router.convert.report import Report
from anthropic_router.convert.schema import clean_schema_for_gemini

JSON = dict[str, Any]

# Anthropic fields this conversion reads; any other top-level field is forwarded or reported.
_HANDLED = frozenset(
    {
        "model", "max_tokens", "messages", "system", "stream", "temperature", "top_p", "top_k",
        "stop_sequences", "tools", "tool_choice", "thinking", "metadata", "output_config",
        "output_format", "cache_control",
    }
)  # fmt: skip

# Anthropic-only fields with no OpenAI meaning: accepted and reported as dropped.
_ANTHROPIC_ONLY = frozenset(
    {
        "service_tier", "context_management", "container", "mcp_servers", "inference_geo",
        "speed", "fallbacks", "betas",
    }
)  # fmt: skip

_MAX_USER_LENGTH = 256

_EFFORT_BY_BUDGET = ((16384, "high"), (4096, "medium"), (0, "low"))


@dataclass(slots=True)
class Conversion:
    """The upstream body plus what the response side needs to undo the mapping."""

    body: JSON
    report: Report = field(default_factory=Report)
    tool_names: dict[str, str] = field(default_factory=dict)  # upstream name -> client name


def to_openai_request(request: JSON, options: RequestOptions) -> Conversion:
    report = Report()
    body: JSON = {
        "model": options.upstream_model,
        "messages": convert_messages(request.get("system"), request["messages"], options, report),
    }
    caps = options.capabilities
    if request.get("max_tokens"):
        body[caps.max_tokens_field] = request["max_tokens"]
    _sampling(request, body, options, report)
    tool_names = _tools(request, body, caps, report)
    _stream(request, body, caps)
    _thinking(request, body, caps, report)
    _output_format(request, body)
    _top_level_cache_control(request, body, options, report)
    _extensions(request, body, options, report)
    _drop_rejected(body, caps, report)
    return Conversion(body=body, report=report, tool_names=tool_names)


def _stream(request: JSON, body: JSON, caps: Capabilities) -> None:
    """`stream_options` only where the server reports usage when asked. A server that cannot
    stream an answer to tools with `tool_choice` auto gets that request unstreamed: the relay
    replays its JSON answer as SSE (providers raise JsonAsStream)."""
    if not request.get("stream"):
        return
    if "tools" in body and body.get("tool_choice", "auto") == "auto" and not caps.stream_auto_tools:
        return
    body["stream"] = True
    if caps.stream_usage == "include_usage":
        body["stream_options"] = {"include_usage": True}


def _drop_rejected(body: JSON, caps: Capabilities, report: Report) -> None:
    """Fields the profile says this model refuses (OpenAI reasoning models 400 on
    `temperature`, for one) are removed and reported rather than sent to fail."""
    for name in sorted(caps.rejected_params):
        if body.pop(name, None) is not None:
            report.drop(f"param:{name}")


def _sampling(request: JSON, body: JSON, options: RequestOptions, report: Report) -> None:
    for name in ("temperature", "top_p", "top_k"):
        if request.get(name) is not None:
            body[name] = request[name]
    stops = [s for s in request.get("stop_sequences") or [] if s]
    if stops:
        if len(stops) > options.max_stop_sequences:
            report.drop("stop_sequences:beyond-4")
        body["stop"] = stops[: options.max_stop_sequences]
    user = (request.get("metadata") or {}).get("user_id")
    if isinstance(user, str) and user:
        # Claude Code sends a ~140-character JSON string; some upstreams cap `user`.
        body["user"] = user if len(user) <= _MAX_USER_LENGTH else _digest(user)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _tools(request: JSON, body: JSON, caps: Capabilities, report: Report) -> dict[str, str]:
    names: dict[str, str] = {}
    tools: list[JSON] = []
    for tool in request.get("tools") or []:
        kind = tool.get("type")
        if kind not in (None, "custom") and "input_schema" not in tool:
            report.drop(f"tool:{kind}")  # server and versioned tools have no OpenAI form
            continue
        name = str(tool["name"])
        upstream_name = to_upstream_tool_name(name)
        names[upstream_name] = name
        function: JSON = {
            "name": upstream_name,
            "parameters": _parameters(tool.get("input_schema"), caps, report),
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = bool(tool["strict"])
        tools.append({"type": "function", "function": function})
    if tools:
        body["tools"] = tools
        _tool_choice(request.get("tool_choice"), body)
        if not caps.tool_choice and body.pop("tool_choice", "auto") != "auto":
            report.drop("tool_choice")
        _fit_tool_choice(body, caps.tool_choice_forms, report)
    return names


def _form(choice: Any) -> str:
    return "function" if isinstance(choice, dict) else str(choice)


def _fit_tool_choice(body: JSON, forms: frozenset[str], report: Report) -> None:
    """A `tool_choice` form the server does not honour, said in one it does where the meaning
    is the same: a named tool is "required" with only that tool offered, "required" with one
    tool is that tool by name, "none" is no tools. Otherwise dropped and reported."""
    choice = body.get("tool_choice")
    if choice is None or _form(choice) in forms:
        return
    tools = body["tools"]
    if isinstance(choice, dict) and "required" in forms:
        name = choice["function"]["name"]
        body["tools"] = [t for t in tools if t["function"]["name"] == name] or tools
        body["tool_choice"] = "required"
    elif choice == "required" and len(tools) == 1 and "function" in forms:
        body["tool_choice"] = {
            "type": "function",
            "function": {"name": tools[0]["function"]["name"]},
        }
    elif choice == "none":
        del body["tools"], body["tool_choice"]
        body.pop("parallel_tool_calls", None)
    else:
        del body["tool_choice"]
        report.drop("tool_choice")


def _parameters(schema: Any, caps: Capabilities, report: Report) -> JSON:
    if not isinstance(schema, dict) or not schema:
        # Gemini rejects an empty `properties` on an OBJECT; everyone else expects the key.
        gemini = caps.schema_dialect == "gemini"
        return {"type": "object"} if gemini else {"type": "object", "properties": {}}
    if caps.schema_dialect != "gemini":
        return dict(schema)
    cleaned, removed = clean_schema_for_gemini(schema)
    for keyword in removed:
        report.drop(f"schema:{keyword}")
    return cleaned


def _tool_choice(choice: JSON | None, body: JSON) -> None:
    if not choice:
        return
    kind = choice.get("type")
    if kind == "auto":
        body["tool_choice"] = "auto"
    elif kind == "any":
        body["tool_choice"] = "required"
    elif kind == "none":
        body["tool_choice"] = "none"
    elif kind == "tool" and choice.get("name"):
        function = {"name": to_upstream_tool_name(str(choice["name"]))}
        body["tool_choice"] = {"type": "function", "function": function}
    if choice.get("disable_parallel_tool_use") and kind != "none":
        body["parallel_tool_calls"] = False


def _thinking(request: JSON, body: JSON, caps: Capabilities, report: Report) -> None:
    """Anthropic `thinking` in the upstream's dialect (see `Capabilities.reasoning_style`)."""
    thinking = request.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in (
        "enabled", "adaptive", "disabled"
    ):  # fmt: skip
        return
    if caps.reasoning_style == "openrouter":
        _reasoning(request, body)
    elif caps.reasoning_style == "anthropic":
        _anthropic_thinking(request, thinking, body, report)
    elif caps.reasoning_style == "effort" and thinking["type"] != "disabled":
        body["reasoning_effort"] = _effort(request, thinking)
    elif thinking["type"] != "disabled":
        report.drop("thinking")


def _anthropic_thinking(request: JSON, thinking: JSON, body: JSON, report: Report) -> None:
    """Anthropic's own field, for Claude behind an OpenAI-style API (Databricks chat route,
    LiteLLM): only `type` and `budget_tokens` are documented there."""
    kept = {k: v for k, v in thinking.items() if k in ("type", "budget_tokens")}
    if thinking.get("display") is not None:
        report.drop("thinking.display")
    if (request.get("output_config") or {}).get("effort") is not None:
        report.drop("output_config.effort")
    budget, max_tokens = kept.get("budget_tokens"), request.get("max_tokens") or 0
    if isinstance(budget, int) and max_tokens and budget >= max_tokens:
        kept["budget_tokens"] = max_tokens - 1  # Anthropic requires budget < max_tokens
    body["thinking"] = kept


def _effort(request: JSON, thinking: JSON) -> str:
    effort = (request.get("output_config") or {}).get("effort")
    if isinstance(effort, str) and effort in ("low", "medium", "high"):
        return effort
    budget = thinking.get("budget_tokens")
    return _effort_for(budget) if isinstance(budget, int) else "medium"


def _reasoning(request: JSON, body: JSON) -> None:
    """Anthropic `thinking` (+ `output_config.effort`) -> OpenRouter `reasoning`."""
    thinking = request.get("thinking") or {}
    kind = thinking.get("type")
    if kind == "disabled":
        # Explicitly off: models that reason by default (and bill for it) should not.
        body["reasoning"] = {"enabled": False}
        return
    if kind not in ("enabled", "adaptive"):
        return
    reasoning: JSON = {}
    effort = (request.get("output_config") or {}).get("effort")
    budget = thinking.get("budget_tokens")
    max_tokens = request.get("max_tokens") or 0
    if kind == "enabled" and isinstance(budget, int):
        # OpenRouter requires max_tokens strictly above the reasoning budget.
        if max_tokens and budget >= max_tokens:
            budget = max_tokens - 1
        if budget >= 1024:
            reasoning["max_tokens"] = budget
        else:
            reasoning["effort"] = _effort_for(budget)
    elif isinstance(effort, str):
        reasoning["effort"] = effort
    else:
        reasoning["enabled"] = True
    if thinking.get("display") == "omitted":
        reasoning["exclude"] = True
    body["reasoning"] = reasoning


def _effort_for(budget: int) -> str:
    return next((effort for floor, effort in _EFFORT_BY_BUDGET if budget >= floor), "low")


def _output_format(request: JSON, body: JSON) -> None:
    fmt = (request.get("output_config") or {}).get("format") or request.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema") or {}
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }


def _top_level_cache_control(
    request: JSON, body: JSON, options: RequestOptions, report: Report
) -> None:
    control = request.get("cache_control")
    if not isinstance(control, dict):
        return
    if options.cache_control:
        body["cache_control"] = {k: v for k, v in control.items() if k in ("type", "ttl")}
    else:
        report.drop("cache_control")


def _extensions(request: JSON, body: JSON, options: RequestOptions, report: Report) -> None:
    """Per-request OpenRouter/OpenAI fields are forwarded; seed defaults fill the gaps."""
    for name, value in request.items():
        if name in _HANDLED:
            continue
        if (name in OPENROUTER_FIELDS and options.openrouter_fields) or (
            name in OPENAI_FIELDS and options.openai_fields
        ):
            body[name] = value
        else:
            report.drop(name if name in _ANTHROPIC_ONLY else f"field:{name}")
    for name, value in options.defaults.items():
        if name in OPENROUTER_FIELDS and not options.openrouter_fields:
            report.drop(f"field:{name}")  # a seed default this upstream cannot take
        else:
            body.setdefault(name, value)
