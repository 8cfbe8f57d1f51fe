"""Anthropic `system` + `messages` to OpenAI `messages`.

The rules that break naive converters (protocol.md section 8) live here: tool results become
`role:tool` messages right after the assistant turn that made the calls, text after them
becomes a following user message, empty text is dropped, orphans are repaired, and
consecutive same-role messages are merged.
"""

from __future__ import annotations

from typing import Any, TypeGuard

import orjson

from anthropic_router.convert.content import (
    cache_control_of,
    document_parts,
    flatten_text,
    image_part,
    search_result_part,
    text_part,
)
from anthropic_router.convert.ids import to_upstream_tool_name
from anthropic_router.convert.options import RequestOptions
from anthropic_router.convert.profiles import Capabilities
from anthropic_router.convert.report import Report

JSON = dict[str, Any]

EMPTY_TOOL_RESULT = "(no output)"
INTERRUPTED_TOOL_RESULT = "(no result: the tool call was interrupted)"
ERROR_PREFIX = "[tool error] "


def convert_messages(
    system: Any, messages: list[JSON], options: RequestOptions, report: Report
) -> list[JSON]:
    out: list[JSON] = []
    system_message = _system_message(system, options, report)
    if system_message:
        out.append(system_message)
    for message in _merge_turns(messages):
        out.extend(_convert_one(message, options, report))
    out = _repair_tool_pairing(out, report)
    caps = options.capabilities
    return [_shape(_finish(message), caps) for message in _merge_same_role(out)]


def _merge_turns(messages: list[JSON]) -> list[JSON]:
    """Anthropic merges consecutive same-role turns before reading them, so tool_use blocks
    split over two assistant turns pair with one following user turn; do the same first."""
    out: list[JSON] = []
    for message in messages:
        previous = out[-1] if out else None
        if previous and previous["role"] == message["role"]:
            content = _as_blocks(previous["content"]) + _as_blocks(message["content"])
            out[-1] = {"role": message["role"], "content": content}
        else:
            out.append(message)
    return out


def _as_blocks(content: Any) -> list[JSON]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _system_message(system: Any, options: RequestOptions, report: Report) -> JSON | None:
    if isinstance(system, str):
        return {"role": "system", "content": system} if system.strip() else None
    if not isinstance(system, list):
        return None
    parts = [
        text_part(str(block["text"]), block, options, report)
        for block in system
        if block.get("type") == "text" and str(block.get("text", "")).strip()
    ]
    return {"role": "system", "content": parts} if parts else None


def _convert_one(message: JSON, options: RequestOptions, report: Report) -> list[JSON]:
    role = message["role"]
    content = message["content"]
    if role == "assistant":
        assistant = _assistant(content, options, report)
        return [assistant] if assistant else []
    if role == "system":
        # Claude Code >= 2.1.154 places system entries inside `messages`; OpenAI allows them.
        text = flatten_text(content)
        return [{"role": "system", "content": text}] if text.strip() else []
    if role != "user":
        report.drop(f"role:{role}")
    return _user(content, options, report)


def _user(content: Any, options: RequestOptions, report: Report) -> list[JSON]:
    if isinstance(content, str):
        text = [{"type": "text", "text": content}]
        return [{"role": "user", "content": text}] if content.strip() else []
    tool_messages: list[JSON] = []
    parts: list[JSON] = []
    for block in content:
        kind = block["type"]
        if kind == "tool_result":
            tool_message, media = _tool_result(block, options, report)
            tool_messages.append(tool_message)
            parts.extend(media)
        else:
            parts.extend(_user_parts(block, options, report))
    out = list(tool_messages)
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _user_parts(block: JSON, options: RequestOptions, report: Report) -> list[JSON]:
    kind = block["type"]
    if kind == "text":
        text = block.get("text")
        if isinstance(text, str) and text.strip():
            return [text_part(text, block, options, report)]
        return []
    if kind == "image":
        return [image_part(block, options, report)]
    if kind == "document":
        return document_parts(block, options, report)
    if kind == "search_result":
        part = search_result_part(block, options, report)
        return [part] if part else []
    report.drop(f"content:{kind}")
    return []


def _tool_result(block: JSON, options: RequestOptions, report: Report) -> tuple[JSON, list[JSON]]:
    """One `role:tool` message, plus media to send in the following user message.

    OpenAI tool messages carry text only, so images and documents move to the next user
    message; `is_error` has no OpenAI field, so it becomes a visible prefix.
    """
    content = block.get("content")
    texts: list[str] = []
    media: list[JSON] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for item in content:
            if not isinstance(item, dict):
                continue
            _split_result_item(item, texts, media, options, report)
    text = "\n\n".join(t for t in texts if t) or EMPTY_TOOL_RESULT
    if media:
        text += "\n(attachments of this tool result follow in the next user message)"
    if block.get("is_error"):
        text = ERROR_PREFIX + text
    message: JSON = {
        "role": "tool",
        "tool_call_id": str(block.get("tool_use_id", "")),
        "content": text,
    }
    control = cache_control_of(block, options, report)
    if control:
        message["content"] = [{"type": "text", "text": text, "cache_control": control}]
    return message, media


def _split_result_item(
    item: JSON, texts: list[str], media: list[JSON], options: RequestOptions, report: Report
) -> None:
    kind = item.get("type")
    if kind == "text":
        texts.append(str(item.get("text", "")))
    elif kind == "image":
        media.append(image_part(item, options, report))
    elif kind == "document":
        media.extend(document_parts(item, options, report))
    elif kind == "search_result":
        part = search_result_part(item, options, report)
        if part:
            texts.append(part["text"])
    else:
        report.drop(f"tool_result:{kind}")


def _assistant(content: Any, options: RequestOptions, report: Report) -> JSON | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content.strip() else None
    parts: list[JSON] = []
    tool_calls: list[JSON] = []
    reasoning: list[JSON] = []
    for block in content:
        kind = block["type"]
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text.strip():
                parts.append(text_part(text, block, options, report))
        elif kind == "tool_use":
            tool_calls.append(_tool_call(block))
        elif kind in ("thinking", "redacted_thinking"):
            detail = _reasoning_detail(block, len(reasoning), options, report)
            if detail:
                reasoning.append(detail)
        else:
            report.drop(f"content:{kind}")
    if not parts and not tool_calls:
        # A thinking-only turn would be an empty assistant message, which upstreams reject.
        if reasoning:
            report.drop("thinking:without-content")
        return None
    message: JSON = {"role": "assistant", "content": parts or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        _attach_reasoning(message, reasoning, options, report)
    return message


def _attach_reasoning(
    message: JSON, reasoning: list[JSON], options: RequestOptions, report: Report
) -> None:
    """Thinking history in the dialect of the upstream: OpenRouter's `reasoning_details`,
    LiteLLM's `thinking_blocks` for Claude, and/or `reasoning_content` (DeepSeek, Kimi)."""
    caps = options.capabilities
    if caps.openrouter_fields:
        message["reasoning_details"] = reasoning
    elif caps.reasoning_style == "anthropic":
        message["thinking_blocks"] = [_thinking_block(detail) for detail in reasoning]
    if caps.reasoning_echo:
        texts = [d["text"] for d in reasoning if d["type"] == "reasoning.text" and d["text"]]
        message["reasoning_content"] = "\n\n".join(texts)
    if not (caps.openrouter_fields or caps.reasoning_echo or caps.reasoning_style == "anthropic"):
        report.drop("thinking:history")


def _thinking_block(detail: JSON) -> JSON:
    if detail["type"] == "reasoning.encrypted":
        return {"type": "redacted_thinking", "data": detail["data"]}
    return {
        "type": "thinking",
        "thinking": detail["text"],
        "signature": detail.get("signature", ""),
    }


def _tool_call(block: JSON) -> JSON:
    tool_input = block.get("input")
    arguments = orjson.dumps(tool_input if tool_input is not None else {}).decode()
    return {
        "id": str(block.get("id", "")),
        "type": "function",
        "function": {
            "name": to_upstream_tool_name(str(block.get("name", ""))),
            "arguments": arguments,
        },
    }


def _reasoning_detail(
    block: JSON, index: int, options: RequestOptions, report: Report
) -> JSON | None:
    """Thinking history as OpenRouter `reasoning_details`, unmodified and in order."""
    if block["type"] == "redacted_thinking":
        return {"type": "reasoning.encrypted", "data": block.get("data", ""), "index": index}
    signature = block.get("signature") or ""
    if not signature and options.signed_thinking_only:
        report.drop("thinking:unsigned")
        return None
    detail: JSON = {"type": "reasoning.text", "text": block.get("thinking", ""), "index": index}
    if signature:
        detail["signature"] = signature
        detail["format"] = "anthropic-claude-v1"
    return detail


def _repair_tool_pairing(messages: list[JSON], report: Report) -> list[JSON]:
    """Every tool call gets a result right after its assistant turn; orphans become text.

    A client that was interrupted leaves calls without results, and trimmed histories leave
    results without calls; upstreams answer both with a 400.
    """
    out: list[JSON] = []
    pending: list[str] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            if message["tool_call_id"] in pending:
                pending.remove(message["tool_call_id"])
                out.append(message)
            else:
                report.drop("tool_result:orphan")
                text = (
                    flatten_text(message["content"])
                    if isinstance(message["content"], list)
                    else message["content"]
                )
                out.append(
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": f"[tool result]\n{text}"}],
                    }
                )
            continue
        out.extend(_interrupted(pending))
        pending = [call["id"] for call in message.get("tool_calls", [])]
        out.append(message)
    if pending and out and out[-1]["role"] != "assistant":
        out.extend(_interrupted(pending))
    return out


def _interrupted(pending: list[str]) -> list[JSON]:
    return [
        {"role": "tool", "tool_call_id": call_id, "content": INTERRUPTED_TOOL_RESULT}
        for call_id in pending
    ]


def _merge_same_role(messages: list[JSON]) -> list[JSON]:
    """Anthropic merges consecutive same-role turns; many OpenAI backends require alternation."""
    out: list[JSON] = []
    for message in messages:
        previous = out[-1] if out else None
        if (
            previous
            and previous["role"] == message["role"]
            and message["role"] in ("user", "system")
        ):
            previous["content"] = _as_parts(previous["content"]) + _as_parts(message["content"])
        elif previous and previous["role"] == "assistant" == message["role"]:
            _merge_assistant(previous, message)
        else:
            out.append(dict(message))
    return out


def _merge_assistant(into: JSON, other: JSON) -> None:
    into["content"] = (_as_parts(into["content"]) + _as_parts(other["content"])) or None
    for key in ("tool_calls", "reasoning_details"):
        if key in other:
            into[key] = into.get(key, []) + other[key]


def _as_parts(content: Any) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def _shape(message: JSON, caps: Capabilities) -> JSON:
    """The target server's spelling of what OpenAI allows several ways (convert/profiles.py):
    a tool-call turn's empty `content`, and user text as parts or as one string."""
    content = message.get("content")
    if message["role"] == "assistant" and content is None:
        if caps.assistant_tool_content == "empty":
            message["content"] = ""
        elif caps.assistant_tool_content == "omit":
            del message["content"]
    elif caps.flatten_text and message["role"] == "user" and _text_only(content):
        message["content"] = "\n\n".join(part["text"] for part in content)
    return message


def _text_only(content: Any) -> TypeGuard[list[JSON]]:
    """Non-empty parts that are all plain text (no cache breakpoint to keep)."""
    return (
        isinstance(content, list)
        and bool(content)
        and all(part.get("type") == "text" and "cache_control" not in part for part in content)
    )


def _finish(message: JSON) -> JSON:
    """A single plain text part becomes a string: every OpenAI-compatible server reads that."""
    content = message.get("content")
    if isinstance(content, list):
        if message["role"] == "assistant" and all(
            part.get("type") == "text" and "cache_control" not in part for part in content
        ):
            message["content"] = "\n\n".join(part["text"] for part in content) if content else None
        elif (
            len(content) == 1
            and content[0].get("type") == "text"
            and "cache_control" not in content[0]
        ):
            message["content"] = content[0]["text"]
        elif message["role"] == "system" and all(
            part.get("type") == "text" and "cache_control" not in part for part in content
        ):
            message["content"] = "\n\n".join(part["text"] for part in content)
    return message
