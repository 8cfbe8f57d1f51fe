"""The benchmark's request bodies: one realistic Anthropic Messages request
(2 KB system prompt, 3 messages, 2 tools) and its OpenAI chat-completions equivalent
(what the floor receives directly)."""

from __future__ import annotations

import json

CLAUDE_MODEL = "claude-sonnet-4-5"
UPSTREAM_MODEL = "bench-model"

_SYSTEM_PARAGRAPH = (
    "You are a careful senior software engineer working inside a large monorepo. "
    "Answer with precise, minimal changes; explain the reasoning briefly; prefer the "
    "project's existing helpers over new dependencies; never invent APIs; when unsure, "
    "read the file first with the tools you have. Keep answers short and concrete. "
)


def system_prompt(n_bytes: int = 2048) -> str:
    s = ""
    i = 0
    while len(s) < n_bytes:
        s += f"[{i}] " + _SYSTEM_PARAGRAPH
        i += 1
    return s[:n_bytes]


TOOLS_ANTHROPIC = [
    {
        "name": "read_file",
        "description": "Read a text file from the repository and return its contents.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path relative to the repo root"},
                "offset": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": 2000},
            },
            "required": ["path"],
        },
    },
    {
        "name": "run_command",
        "description": "Run a shell command in the repository and return stdout and stderr.",
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "timeout_s": {"type": "number", "default": 30},
            },
            "required": ["command"],
        },
    },
]

MESSAGES_TEXT = [
    (
        "user",
        "The test suite fails on test_parse_headers with a KeyError on 'content-type'. "
        "Can you find out why and suggest a fix?",
    ),
    (
        "assistant",
        "The failing test builds a request without headers, and parse_headers indexes "
        "the dict directly. Using .get() with a default, or normalising header names "
        "to lower case first, fixes it. Shall I show the patch?",
    ),
    ("user", "Yes, show the patch, and check whether other callers rely on the KeyError."),
]


def anthropic_request(stream: bool) -> dict:
    body = {
        "model": CLAUDE_MODEL,
        "max_tokens": 1024,
        "system": system_prompt(),
        "messages": [{"role": r, "content": t} for r, t in MESSAGES_TEXT],
        "tools": TOOLS_ANTHROPIC,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return body


def openai_request(stream: bool) -> dict:
    body = {
        "model": UPSTREAM_MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "system", "content": system_prompt()}]
        + [{"role": r, "content": t} for r, t in MESSAGES_TEXT],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                },
            }
            for t in TOOLS_ANTHROPIC
        ],
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def dumps(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


if __name__ == "__main__":
    for name, b in (("anthropic", anthropic_request(False)), ("openai", openai_request(False))):
        print(name, len(dumps(b)), "bytes")
