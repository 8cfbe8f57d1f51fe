"""Builders for OpenAI Chat Completions bodies and stream chunks, shaped as OpenRouter sends them.

Pure functions returning plain dicts, so tests can also tweak them before scripting a reply.
"""

from __future__ import annotations

import json
import time
from typing import Any

JSON = dict[str, Any]

DEFAULT_MODEL = "test/model"
DEFAULT_TEXT = "Hello from upstream"
COMPLETION_ID = "gen-fake-0001"


def split_text(text: str, n_pieces: int) -> list[str]:
    """Split `text` into at most `n_pieces` contiguous pieces whose concatenation is `text`."""
    if n_pieces < 1:
        raise ValueError("n_pieces must be >= 1")
    if not text:
        return [""]
    count = min(n_pieces, len(text))
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def usage_dict(
    prompt: int = 12, completion: int = 5, cached: int = 0, cost: float | None = None
) -> JSON:
    """An OpenAI/OpenRouter `usage` object."""
    usage: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    if cost is not None:
        usage["cost"] = cost
    return usage


def tool_call(id: str, name: str, arguments: str | JSON) -> JSON:
    """One non-streaming `message.tool_calls[]` item; dict arguments are JSON-encoded."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": id, "type": "function", "function": {"name": name, "arguments": args}}


def completion_dict(
    text: str | None = None,
    tool_calls: list[JSON] | None = None,
    reasoning: str | None = None,
    finish_reason: str = "stop",
    usage: JSON | None = None,
    model: str = DEFAULT_MODEL,
    extra_message_fields: JSON | None = None,
) -> JSON:
    """A `chat.completion` body. Without text and tool calls the content is DEFAULT_TEXT."""
    content = DEFAULT_TEXT if text is None and not tool_calls else text
    message: JSON = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning is not None:
        message["reasoning"] = reasoning
    message.update(extra_message_fields or {})
    return {
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage if usage is not None else usage_dict(),
    }


def chunk(delta: JSON, finish_reason: str | None = None, model: str = DEFAULT_MODEL) -> JSON:
    """A `chat.completion.chunk` with one choice carrying `delta`."""
    return {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def text_chunks(text: str, n_pieces: int = 3, model: str = DEFAULT_MODEL) -> list[JSON]:
    """`delta.content` chunks; the first also carries `role: "assistant"`."""
    deltas: list[JSON] = [{"content": piece} for piece in split_text(text, n_pieces)]
    deltas[0] = {"role": "assistant", **deltas[0]}
    return [chunk(delta, model=model) for delta in deltas]


def reasoning_chunks(text: str, n_pieces: int = 3, model: str = DEFAULT_MODEL) -> list[JSON]:
    """OpenRouter-style `delta.reasoning` chunks; the first also carries `role: "assistant"`."""
    deltas: list[JSON] = [{"reasoning": piece} for piece in split_text(text, n_pieces)]
    deltas[0] = {"role": "assistant", **deltas[0]}
    return [chunk(delta, model=model) for delta in deltas]


def tool_call_chunks(
    index: int,
    id: str,
    name: str,
    arguments: str,
    n_pieces: int = 3,
    model: str = DEFAULT_MODEL,
) -> list[JSON]:
    """A streamed tool call: id, name and empty arguments first, then argument fragments."""
    head = {
        "index": index,
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    chunks = [chunk({"tool_calls": [head]}, model=model)]
    for piece in split_text(arguments, n_pieces) if arguments else []:
        fragment = {"index": index, "function": {"arguments": piece}}
        chunks.append(chunk({"tool_calls": [fragment]}, model=model))
    return chunks


def finish_chunk(reason: str = "stop", model: str = DEFAULT_MODEL) -> JSON:
    """The chunk carrying `finish_reason` and an empty delta."""
    return chunk({}, finish_reason=reason, model=model)


def usage_chunk(
    prompt: int = 12,
    completion: int = 5,
    cached: int = 0,
    cost: float | None = None,
    model: str = DEFAULT_MODEL,
) -> JSON:
    """The final usage chunk: `choices: []` plus `usage` (OpenRouter sends it before [DONE])."""
    return {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage_dict(prompt, completion, cached, cost),
    }


def default_stream_chunks(model: str = DEFAULT_MODEL) -> list[JSON]:
    """What the fake upstream streams when nothing is scripted."""
    return [
        *text_chunks(DEFAULT_TEXT, 3, model=model),
        finish_chunk("stop", model=model),
        usage_chunk(model=model),
    ]


# An OpenRouter-style `GET /models` list.
MODELS: list[JSON] = [
    {
        "id": "openai/gpt-4o-mini",
        "name": "OpenAI: GPT-4o-mini",
        "context_length": 128000,
        "created": 1721260800,
        "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
    },
    {
        "id": "anthropic/claude-sonnet-4",
        "name": "Anthropic: Claude Sonnet 4",
        "context_length": 200000,
        "created": 1747930371,
        "pricing": {"prompt": "0.000003", "completion": "0.000015"},
    },
    {
        "id": "meta-llama/llama-3.1-8b-instruct",
        "name": "Meta: Llama 3.1 8B Instruct",
        "context_length": 131072,
        "created": 1721692800,
        "pricing": {"prompt": "0.00000002", "completion": "0.00000003"},
    },
]
