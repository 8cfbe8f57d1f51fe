"""`context_management` (beta `context-management-2025-06-27`), done by the router for models
that cannot do it themselves: the edits are pure functions of the request.

- `clear_tool_uses_20250919`: past its trigger (default 100,000 input tokens, or a number of
  tool uses), the oldest tool results are replaced by a placeholder, keeping the last
  `keep` tool uses (default 3) and every use of an `exclude_tools` tool; `clear_tool_inputs`
  (true, or a list of tool names) empties the calls' inputs too; nothing is cleared unless
  at least `clear_at_least` tokens would be.
- `clear_thinking_20251015`: thinking blocks of all but the last `keep` assistant turns
  (default 1; `"all"` keeps every one) are removed.
- `compact_20260112`: `compaction_due` says when (default 150,000 input tokens); the
  summary itself is a model call, made by the relay with `summary_request`, and the
  summary continues the conversation through `compacted_request`.

A `compaction` block sent back in the history drops everything before it, as Anthropic
documents ("the API drops all message blocks prior to the compaction block").
Each applied edit is reported as Anthropic reports it in `context_management.applied_edits`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

JSON = dict[str, Any]
CountText = Callable[[str], int]

CLEAR_TOOL_USES = "clear_tool_uses_20250919"
CLEAR_THINKING = "clear_thinking_20251015"
COMPACT = "compact_20260112"
EDIT_TYPES = frozenset({CLEAR_TOOL_USES, CLEAR_THINKING, COMPACT})

CLEARED_RESULT = "[tool result cleared by context management to save context]"
_CLEARED_CONTENT = [{"type": "text", "text": CLEARED_RESULT}]
SUMMARY_PREFIX = "This conversation continues from a summary of its earlier part:\n\n"
DEFAULT_SUMMARY_PROMPT = (
    "Write a summary of the conversation above so that it can continue from the summary "
    "alone. Keep the user's requests and constraints, decisions taken and why, the state of "
    "the work (files, commands, results, errors and their fixes), and what remains to do. "
    "Write only the summary."
)
_DEFAULT_TRIGGER = {CLEAR_TOOL_USES: 100_000, COMPACT: 150_000}
_DEFAULT_KEEP_TOOL_USES = 3
_THINKING = ("thinking", "redacted_thinking")


def edits_of(request: JSON) -> list[JSON]:
    """The edits of `context_management`, those of a known type with a dict shape."""
    config = request.get("context_management")
    edits = config.get("edits") if isinstance(config, dict) else None
    if not isinstance(edits, list):
        return []
    return [e for e in edits if isinstance(e, dict) and e.get("type") in EDIT_TYPES]


def with_default_edits(request: JSON, defaults: list[JSON]) -> JSON:
    """The request with each default edit whose type it does not already bring, after its own
    (CONTEXT_MANAGEMENT_DEFAULT_EDITS)."""
    config = request.get("context_management")
    own = config.get("edits") if isinstance(config, dict) else None
    own = own if isinstance(own, list) else []
    types = {e.get("type") for e in own if isinstance(e, dict)}
    added = [e for e in defaults if e.get("type") not in types]
    if not added:
        return request
    base = config if isinstance(config, dict) else {}
    return {**request, "context_management": {**base, "edits": [*own, *added]}}


def unknown_edits(request: JSON) -> list[str]:
    config = request.get("context_management")
    edits = config.get("edits") if isinstance(config, dict) else None
    if not isinstance(edits, list):
        return []
    return [
        str(e.get("type")) for e in edits if isinstance(e, dict) and e.get("type") not in EDIT_TYPES
    ]


def input_token_triggers(request: JSON) -> list[int]:
    """The input-token thresholds of the edits (counting the prompt costs CPU: a request
    with none needs no count)."""
    found = []
    for edit in edits_of(request):
        trigger = edit.get("trigger")
        kind = trigger.get("type") if isinstance(trigger, dict) else "input_tokens"
        if edit["type"] in _DEFAULT_TRIGGER and kind == "input_tokens":
            found.append(_value(trigger, "input_tokens", _DEFAULT_TRIGGER[edit["type"]]))
    return found


def needs_input_tokens(request: JSON) -> bool:
    return bool(input_token_triggers(request))


def _value(setting: Any, kind: str, default: int) -> int:
    if isinstance(setting, dict) and setting.get("type") == kind:
        value = setting.get("value")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return default


# -- compaction blocks sent back --------------------------------------------------------------


def resolve_compaction(messages: list[JSON]) -> list[JSON]:
    """Messages as the model must see them: from the last `compaction` block with a summary
    on, the summary as the opening user message. A block with null content is a no-op."""
    for index in range(len(messages) - 1, -1, -1):
        content = messages[index].get("content")
        if messages[index].get("role") != "assistant" or not isinstance(content, list):
            continue
        for position in range(len(content) - 1, -1, -1):
            block = content[position]
            if block.get("type") == "compaction" and isinstance(block.get("content"), str):
                return _from_summary(
                    block["content"], content[position + 1 :], messages[index + 1 :]
                )
    return _without_empty_compactions(messages)


def _from_summary(summary: str, rest: list[JSON], later: list[JSON]) -> list[JSON]:
    opening: list[JSON] = [
        {"role": "user", "content": [{"type": "text", "text": SUMMARY_PREFIX + summary}]}
    ]
    rest = [b for b in rest if b.get("type") != "compaction"]
    if rest:
        opening.append({"role": "assistant", "content": rest})
    return opening + _without_empty_compactions(later)


def _without_empty_compactions(messages: list[JSON]) -> list[JSON]:
    if not any(_has_compaction(m) for m in messages):
        return messages
    out = []
    for message in messages:
        if _has_compaction(message):
            content = [b for b in message["content"] if b.get("type") != "compaction"]
            if not content:
                continue
            message = {**message, "content": content}
        out.append(message)
    return out


def _has_compaction(message: JSON) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(b.get("type") == "compaction" for b in content)


# -- clear_thinking_20251015 -----------------------------------------------------------------


def clear_thinking(
    messages: list[JSON], edit: JSON, count_text: CountText
) -> tuple[list[JSON], JSON | None]:
    """Remove thinking blocks from all but the last `keep` assistant turns. A turn runs from
    one user message that is not only tool results to the next: a tool loop is one turn."""
    keep = edit.get("keep")
    if keep == "all" or (isinstance(keep, dict) and keep.get("type") == "all"):
        return messages, None
    turns_to_keep = _value(keep, "thinking_turns", 1)
    turns = _assistant_turns(messages)
    thinking_turns = sorted({turns[i] for i in turns if _thinking_blocks(messages[i])})
    cleared_turns = set(thinking_turns[: max(len(thinking_turns) - turns_to_keep, 0)])
    if not cleared_turns:
        return messages, None
    out, tokens = list(messages), 0
    for index, turn in turns.items():
        if turn not in cleared_turns:
            continue
        content = messages[index]["content"]
        kept = [b for b in content if b.get("type") not in _THINKING]
        if not kept:  # an assistant message of thinking alone stays whole: it cannot be empty
            continue
        tokens += sum(count_text(_text_of(b)) for b in content if b.get("type") in _THINKING)
        out[index] = {**messages[index], "content": kept}
    applied = {
        "type": CLEAR_THINKING,
        "cleared_thinking_turns": len(cleared_turns),
        "cleared_input_tokens": tokens,
    }
    return out, applied


def _assistant_turns(messages: list[JSON]) -> dict[int, int]:
    turns: dict[int, int] = {}
    turn = 0
    for index, message in enumerate(messages):
        if message.get("role") == "user" and not _only_tool_results(message):
            turn += 1
        elif message.get("role") == "assistant" and isinstance(message.get("content"), list):
            turns[index] = turn
    return turns


def _only_tool_results(message: JSON) -> bool:
    content = message.get("content")
    return (
        isinstance(content, list)
        and bool(content)
        and all(b.get("type") == "tool_result" for b in content)
    )


def _thinking_blocks(message: JSON) -> list[JSON]:
    content = message.get("content")
    return [b for b in content if b.get("type") in _THINKING] if isinstance(content, list) else []


def _text_of(block: JSON) -> str:
    if block.get("type") == "thinking":
        return str(block.get("thinking") or "")
    if block.get("type") == "redacted_thinking":
        return str(block.get("data") or "")
    content = block.get("content")
    if isinstance(content, str):
        return content
    return orjson.dumps(content).decode() if content is not None else ""


# -- clear_tool_uses_20250919 ----------------------------------------------------------------


def clear_tool_uses(
    messages: list[JSON], edit: JSON, input_tokens: int, count_text: CountText
) -> tuple[list[JSON], JSON | None]:
    """Replace the oldest tool results (and optionally inputs) once past the trigger."""
    uses = _tool_uses(messages)
    trigger = edit.get("trigger")
    if isinstance(trigger, dict) and trigger.get("type") == "tool_uses":
        if len(uses) <= _value(trigger, "tool_uses", 0):
            return messages, None
    elif input_tokens <= _value(trigger, "input_tokens", _DEFAULT_TRIGGER[CLEAR_TOOL_USES]):
        return messages, None
    keep = _value(edit.get("keep"), "tool_uses", _DEFAULT_KEEP_TOOL_USES)
    excluded = set(edit.get("exclude_tools") or [])
    older = uses[: max(len(uses) - keep, 0)]
    candidates = [use for use in older if use[2] not in excluded]
    results = _tool_results(messages)
    clear_inputs = edit.get("clear_tool_inputs")
    plan: list[tuple[tuple[int, int, str, str], bool]] = []
    tokens = 0
    for use in candidates:
        inputs = clear_inputs is True or (isinstance(clear_inputs, list) and use[2] in clear_inputs)
        gain = _result_tokens(messages, results.get(use[3]), count_text)
        if inputs:
            gain += (
                count_text(
                    orjson.dumps(messages[use[0]]["content"][use[1]].get("input") or {}).decode()
                )
                - 1
            )
        if gain > 0:
            plan.append((use, inputs))
            tokens += gain
    if not plan or tokens < _value(edit.get("clear_at_least"), "input_tokens", 0):
        return messages, None
    out = _apply_clearing(messages, plan, results)
    return out, {
        "type": CLEAR_TOOL_USES,
        "cleared_tool_uses": len(plan),
        "cleared_input_tokens": tokens,
    }


def _tool_uses(messages: list[JSON]) -> list[tuple[int, int, str, str]]:
    """(message index, block index, tool name, tool_use id), oldest first."""
    uses = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        for position, block in enumerate(content):
            if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                uses.append((index, position, str(block.get("name") or ""), block["id"]))
    return uses


def _tool_results(messages: list[JSON]) -> dict[str, tuple[int, int]]:
    found = {}
    for index, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for position, block in enumerate(content):
            if block.get("type") == "tool_result" and isinstance(block.get("tool_use_id"), str):
                found[block["tool_use_id"]] = (index, position)
    return found


def _result_tokens(
    messages: list[JSON], where: tuple[int, int] | None, count_text: CountText
) -> int:
    if where is None:
        return 0
    block = messages[where[0]]["content"][where[1]]
    if block.get("content") in (CLEARED_RESULT, _CLEARED_CONTENT):
        return 0  # cleared on an earlier turn (the client sent our placeholder back)
    return max(count_text(_text_of(block)) - count_text(CLEARED_RESULT), 0)


def _apply_clearing(
    messages: list[JSON],
    plan: list[tuple[tuple[int, int, str, str], bool]],
    results: dict[str, tuple[int, int]],
) -> list[JSON]:
    out = list(messages)
    copied: set[int] = set()

    def block(index: int, position: int) -> JSON:
        if index not in copied:  # copy on write: the client's request is not changed
            out[index] = {**out[index], "content": list(out[index]["content"])}
            copied.add(index)
        content: list[JSON] = out[index]["content"]
        content[position] = dict(content[position])
        return content[position]

    for (index, position, _name, use_id), inputs in plan:
        if inputs:
            block(index, position)["input"] = {}
        where = results.get(use_id)
        if where is not None:
            result = block(*where)
            result["content"] = [dict(part) for part in _CLEARED_CONTENT]
    return out


# -- all edits ------------------------------------------------------------------------------


def apply_context_edits(
    request: JSON, input_tokens: int, count_text: CountText
) -> tuple[JSON, list[JSON]]:
    """The request the model sees and the applied edits to report, in the listed order.
    `input_tokens` is the prompt's count (0 when `needs_input_tokens` is false)."""
    messages = resolve_compaction(request["messages"])
    applied: list[JSON] = []
    for edit in edits_of(request):
        if edit["type"] == CLEAR_THINKING:
            messages, done = clear_thinking(messages, edit, count_text)
        elif edit["type"] == CLEAR_TOOL_USES:
            messages, done = clear_tool_uses(messages, edit, input_tokens, count_text)
        else:
            continue  # compaction is a model call: the relay makes it
        if done is not None:
            applied.append(done)
            input_tokens -= done["cleared_input_tokens"]
    edited = {k: v for k, v in request.items() if k != "context_management"}
    edited["messages"] = messages
    return edited, applied


# -- compact_20260112 -----------------------------------------------------------------------


def compaction_edit(request: JSON) -> JSON | None:
    return next((e for e in edits_of(request) if e["type"] == COMPACT), None)


def compaction_due(edit: JSON, input_tokens: int) -> bool:
    return input_tokens >= _value(edit.get("trigger"), "input_tokens", _DEFAULT_TRIGGER[COMPACT])


def summary_request(request: JSON, edit: JSON, model: str, max_tokens: int = 8192) -> JSON:
    """The summarisation call: the conversation, then the instruction (`instructions`
    replaces the default prompt, as Anthropic documents). Tools stay declared so the
    history's tool blocks are valid, but the summariser may not call them."""
    instructions = edit.get("instructions")
    prompt = (
        instructions
        if isinstance(instructions, str) and instructions.strip()
        else DEFAULT_SUMMARY_PROMPT
    )
    messages = list(request["messages"])
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "user":
        content = last["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        messages[-1] = {**last, "content": [*blocks, {"type": "text", "text": prompt}]}
    else:
        messages.append({"role": "user", "content": prompt})
    body: JSON = {"model": model, "max_tokens": max_tokens, "messages": messages}
    for name in ("system", "tools", "metadata"):
        if request.get(name) is not None:
            body[name] = request[name]
    if body.get("tools"):
        body["tool_choice"] = {"type": "none"}
    return body


def summary_text(message: JSON) -> str | None:
    text = "".join(
        b.get("text") or "" for b in message.get("content") or [] if b.get("type") == "text"
    )
    return text.strip() or None


def compacted_request(request: JSON, summary: str) -> JSON:
    """The request continued from the summary: the summary opens the conversation, followed
    by the latest user message when it stands alone (tool results need their calls)."""
    blocks: list[JSON] = [{"type": "text", "text": SUMMARY_PREFIX + summary}]
    last = request["messages"][-1]
    if last.get("role") == "user" and not _has_tool_results(last):
        content = last["content"]
        blocks += [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    return {**request, "messages": [{"role": "user", "content": blocks}]}


def _has_tool_results(message: JSON) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


def compaction_block(summary: str | None) -> JSON:
    """Anthropic's `compaction` block; null content says the compaction failed."""
    return {"type": "compaction", "content": summary}


def compaction_events(summary: str | None, index: int = 0) -> list[JSON]:
    """The block as a stream carries it: a start with null content, the summary in one
    `compaction_delta`, the stop."""
    events: list[JSON] = [
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "compaction", "content": None},
        }
    ]
    if summary is not None:
        delta = {"type": "compaction_delta", "content": summary}
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
    events.append({"type": "content_block_stop", "index": index})
    return events


def iteration(kind: str, usage: JSON | None, **extra: Any) -> JSON:
    """One `usage.iterations` entry (`compaction`, `message`, `fallback_message`)."""
    usage = usage or {}
    return {
        "type": kind,
        **extra,
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        "cache_read_input_tokens": int(usage.get("cache_read_input_tokens") or 0),
    }
