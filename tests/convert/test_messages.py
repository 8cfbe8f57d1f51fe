"""`convert_messages`: Anthropic `system` + `messages` -> OpenAI `messages`.

Each case is literal input, the literal upstream messages, and the exact dropped-feature names
reported (protocol.md sections 5.2 and 8, edge cases 1-8, 11-12).
"""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.messages import convert_messages
from anthropic_router.convert.options import RequestOptions
from anthropic_router.convert.report import Report

JSON = dict[str, Any]

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PDF = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK"
SIG = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxDdp"
CC = {"type": "ephemeral"}
CC_SCOPED = {"type": "ephemeral", "ttl": "1h", "scope": "global"}
CC_KEPT = {"type": "ephemeral", "ttl": "1h"}
NEXT_MSG = "\n(attachments of this tool result follow in the next user message)"


def user(content: Any) -> JSON:
    return {"role": "user", "content": content}


def assistant(content: Any) -> JSON:
    return {"role": "assistant", "content": content}


def text(value: str, **extra: Any) -> JSON:
    return {"type": "text", "text": value, **extra}


def tool_use(id: str, name: str, input: Any, **extra: Any) -> JSON:
    return {"type": "tool_use", "id": id, "name": name, "input": input, **extra}


def tool_result(id: str, content: Any = None, **extra: Any) -> JSON:
    block: JSON = {"type": "tool_result", "tool_use_id": id, **extra}
    if content is not None:
        block["content"] = content
    return block


def image_b64(media_type: str = "image/png", data: str = PNG, **extra: Any) -> JSON:
    source = {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "image", "source": source, **extra}


def call(id: str, name: str, arguments: str) -> JSON:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def placeholder(reason: str) -> str:
    return f"[Image content could not be processed: {reason}]"


def convert(
    system: Any, messages: list[JSON], **options: Any
) -> tuple[list[JSON], list[str], list[str]]:
    report = Report()
    out = convert_messages(system, messages, RequestOptions(upstream_model="m", **options), report)
    return out, report.dropped_names, report.notes


# (id, system, messages, options, expected messages, expected dropped)
Case = tuple[str, Any, list[JSON], JSON, list[JSON], list[str]]

SYSTEM_CASES: list[Case] = [
    (
        "system string",
        "Be brief.",
        [user("hi")],
        {},
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        [],
    ),
    ("empty system string", "", [user("hi")], {}, [{"role": "user", "content": "hi"}], []),
    ("whitespace system string", " \n ", [user("hi")], {}, [user("hi")], []),
    ("empty system list", [], [user("hi")], {}, [user("hi")], []),
    ("system None", None, [user("hi")], {}, [user("hi")], []),
    (
        "system blocks without cache_control are joined",
        [text("A"), text("B")],
        [user("hi")],
        {},
        [{"role": "system", "content": "A\n\nB"}, user("hi")],
        [],
    ),
    (
        "empty and whitespace system blocks are dropped",
        [text(""), text("  "), text("A")],
        [user("hi")],
        {},
        [{"role": "system", "content": "A"}, user("hi")],
        [],
    ),
    (
        "only empty system blocks: no system message",
        [text(""), text(" ")],
        [user("hi")],
        {},
        [user("hi")],
        [],
    ),
    (
        "system cache_control kept as parts (type/ttl only)",
        [
            text("billing"),
            text("identity", cache_control=CC),
            text("prompt", cache_control=CC_SCOPED),
        ],
        [user("hi")],
        {"cache_control": True},
        [
            {
                "role": "system",
                "content": [
                    text("billing"),
                    text("identity", cache_control=CC),
                    text("prompt", cache_control=CC_KEPT),
                ],
            },
            user("hi"),
        ],
        [],
    ),
    (
        "system cache_control stripped and reported when unsupported",
        [text("identity", cache_control=CC), text("prompt", cache_control=CC)],
        [user("hi")],
        {},
        [{"role": "system", "content": "identity\n\nprompt"}, user("hi")],
        ["cache_control"],
    ),
    (
        "role:system inside messages (Claude Code mid-conversation system)",
        None,
        [user("hi"), {"role": "system", "content": "agents list"}, assistant("ok"), user("go")],
        {},
        [
            user("hi"),
            {"role": "system", "content": "agents list"},
            assistant("ok"),
            user("go"),
        ],
        [],
    ),
    (
        "role:system with block content is flattened to text",
        None,
        [{"role": "system", "content": [text("one"), text("two")]}, user("hi")],
        {},
        [{"role": "system", "content": "one\n\ntwo"}, user("hi")],
        [],
    ),
    (
        "empty role:system message is dropped",
        None,
        [user("a"), {"role": "system", "content": "  "}, user("b")],
        {},
        [user([text("a"), text("b")])],
        [],
    ),
    (
        "top-level system and a leading role:system message merge",
        "top",
        [{"role": "system", "content": "mid"}, user("hi")],
        {},
        [{"role": "system", "content": "top\n\nmid"}, user("hi")],
        [],
    ),
]

TEXT_CASES: list[Case] = [
    ("user string", None, [user("hi")], {}, [user("hi")], []),
    (
        "single user text block becomes a string",
        None,
        [user([text("hi")])],
        {},
        [user("hi")],
        [],
    ),
    (
        "several user text blocks stay parts",
        None,
        [user([text("a"), text("b")])],
        {},
        [user([text("a"), text("b")])],
        [],
    ),
    (
        "empty and whitespace user text blocks are dropped",
        None,
        [user([text(""), text(" \n\t"), text("real")])],
        {},
        [user("real")],
        [],
    ),
    (
        "a user message with only empty text disappears",
        None,
        [user("a"), assistant("b"), user([text("")]), assistant("c"), user("d")],
        {},
        [user("a"), assistant("b\n\nc"), user("d")],
        [],
    ),
    (
        "an empty user string disappears",
        None,
        [user(""), user("x")],
        {},
        [user("x")],
        [],
    ),
    (
        "a whitespace-only user string disappears",
        None,
        [user("  \n"), user("x")],
        {},
        [user("x")],
        [],
    ),
    (
        "assistant string",
        None,
        [user("hi"), assistant("hello")],
        {},
        [user("hi"), assistant("hello")],
        [],
    ),
    (
        "assistant text blocks are joined into a string",
        None,
        [user("hi"), assistant([text("one"), text(""), text("two")])],
        {},
        [user("hi"), assistant("one\n\ntwo")],
        [],
    ),
    (
        "an empty assistant message disappears and its neighbours merge",
        None,
        [user("a"), assistant(""), user("b")],
        {},
        [user([text("a"), text("b")])],
        [],
    ),
    (
        "an assistant message with empty blocks disappears",
        None,
        [user("a"), assistant([]), user("b")],
        {},
        [user([text("a"), text("b")])],
        [],
    ),
    (
        "whitespace-only assistant text before a tool call is dropped (content null)",
        None,
        [
            user("go"),
            assistant([text("\n\n"), tool_use("toolu_1", "f", {})]),
            user([tool_result("toolu_1", "ok")]),
        ],
        {},
        [
            user("go"),
            {"role": "assistant", "content": None, "tool_calls": [call("toolu_1", "f", "{}")]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"},
        ],
        [],
    ),
    (
        "trailing assistant message (prefill) is kept",
        None,
        [user("hi"), assistant("The answer is")],
        {},
        [user("hi"), assistant("The answer is")],
        [],
    ),
    (
        "unknown user block types are dropped and reported",
        None,
        [user([text("a"), {"type": "mid_conv_system", "text": "x"}])],
        {},
        [user("a")],
        ["content:mid_conv_system"],
    ),
    (
        "server tool blocks in assistant history are dropped and reported",
        None,
        [
            user("search"),
            assistant(
                [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {},
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    text("found it"),
                ]
            ),
        ],
        {},
        [user("search"), assistant("found it")],
        ["content:server_tool_use", "content:web_search_tool_result"],
    ),
    (
        "unknown roles are treated as user and reported",
        None,
        [{"role": "developer", "content": "be nice"}, user("hi")],
        {},
        [user([text("be nice"), text("hi")])],
        ["role:developer"],
    ),
]

IMAGE_CASES: list[Case] = [
    (
        "base64 image -> data URI image_url, text kept first",
        None,
        [user([text("what is this?"), image_b64()])],
        {},
        [
            user(
                [
                    text("what is this?"),
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ]
            )
        ],
        [],
    ),
    (
        "url image",
        None,
        [user([{"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}])],
        {},
        [user([{"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}])],
        [],
    ),
    (
        "image/jpg is accepted as jpeg",
        None,
        [user([image_b64("image/jpg")])],
        {},
        [user([{"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG}"}}])],
        [],
    ),
    (
        "image cache_control kept when supported",
        None,
        [user([image_b64(cache_control=CC_SCOPED)])],
        {"cache_control": True},
        [
            user(
                [
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}"},
                        "cache_control": CC_KEPT,
                    }
                ]
            )
        ],
        [],
    ),
    (
        "unsupported format -> placeholder",
        None,
        [user([text("look"), image_b64("image/bmp")])],
        {},
        [user([text("look"), text(placeholder("unsupported image format image/bmp"))])],
        ["image"],
    ),
    (
        "format not in the configured list -> placeholder",
        None,
        [user([image_b64("image/gif")])],
        {"image_formats": frozenset({"png", "jpeg"})},
        [user(placeholder("unsupported image format image/gif"))],
        ["image"],
    ),
    (
        "too large -> placeholder",
        None,
        [user([image_b64(data="iVBORw0KGgoAAAANSUhEUg==")])],
        {"image_max_bytes": 10},
        [user(placeholder("image of 18 bytes exceeds the 10-byte limit"))],
        ["image"],
    ),
    (
        "invalid base64 -> placeholder",
        None,
        [user([image_b64(data="!!!not base64 at all!!!")])],
        {},
        [user(placeholder("image data is not valid base64"))],
        ["image"],
    ),
    (
        "empty data -> placeholder",
        None,
        [user([image_b64(data="")])],
        {},
        [user(placeholder("empty image data"))],
        ["image"],
    ),
    (
        "non-http url -> placeholder",
        None,
        [user([{"type": "image", "source": {"type": "url", "url": "ftp://x.test/a.png"}}])],
        {},
        [user(placeholder("the image URL must be http or https"))],
        ["image"],
    ),
    (
        "Files API source -> placeholder",
        None,
        [user([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}])],
        {},
        [user(placeholder("image source type 'file' is not supported"))],
        ["image"],
    ),
    (
        "multimodal disabled -> placeholder",
        None,
        [user([text("look"), image_b64()])],
        {"multimodal": False},
        [user([text("look"), text(placeholder("multi-modal input is disabled"))])],
        ["image"],
    ),
    (
        "a placeholder keeps the image's cache_control",
        None,
        [user([image_b64("image/bmp", cache_control=CC)])],
        {"cache_control": True},
        [user([text(placeholder("unsupported image format image/bmp"), cache_control=CC)])],
        ["image"],
    ),
]

DOCUMENT_CASES: list[Case] = [
    (
        "PDF base64 -> file part named by its title",
        None,
        [
            user(
                [
                    {
                        "type": "document",
                        "title": "report.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    },
                    text("summarise"),
                ]
            )
        ],
        {},
        [
            user(
                [
                    {
                        "type": "file",
                        "file": {
                            "filename": "report.pdf",
                            "file_data": f"data:application/pdf;base64,{PDF}",
                        },
                    },
                    text("summarise"),
                ]
            )
        ],
        [],
    ),
    (
        "PDF url without title",
        None,
        [user([{"type": "document", "source": {"type": "url", "url": "https://x.test/y.pdf"}}])],
        {},
        [
            user(
                [
                    {
                        "type": "file",
                        "file": {"filename": "document.pdf", "file_data": "https://x.test/y.pdf"},
                    }
                ]
            )
        ],
        [],
    ),
    (
        "PDF with cache_control",
        None,
        [
            user(
                [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                        "cache_control": CC_SCOPED,
                    }
                ]
            )
        ],
        {"cache_control": True},
        [
            user(
                [
                    {
                        "type": "file",
                        "file": {
                            "filename": "document.pdf",
                            "file_data": f"data:application/pdf;base64,{PDF}",
                        },
                        "cache_control": CC_KEPT,
                    }
                ]
            )
        ],
        [],
    ),
    (
        "plain-text document -> text part headed by its title",
        None,
        [
            user(
                [
                    {
                        "type": "document",
                        "title": "Notes",
                        "source": {"type": "text", "media_type": "text/plain", "data": "body"},
                    }
                ]
            )
        ],
        {},
        [user("Notes\n\nbody")],
        [],
    ),
    (
        "empty plain-text document is dropped",
        None,
        [
            user(
                [
                    {"type": "document", "source": {"type": "text", "data": "  "}},
                    text("q"),
                ]
            )
        ],
        {},
        [user("q")],
        [],
    ),
    (
        "content document -> its text and image parts",
        None,
        [
            user(
                [
                    {
                        "type": "document",
                        "source": {
                            "type": "content",
                            "content": [text("chunk 1"), text(""), image_b64()],
                        },
                    }
                ]
            )
        ],
        {},
        [
            user(
                [
                    text("chunk 1"),
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ]
            )
        ],
        [],
    ),
    (
        "content document given as a string",
        None,
        [
            user(
                [
                    {
                        "type": "document",
                        "title": "T",
                        "source": {"type": "content", "content": "inline"},
                    }
                ]
            )
        ],
        {},
        [user("T\n\ninline")],
        [],
    ),
    (
        "Files API document is dropped and reported",
        None,
        [user([{"type": "document", "source": {"type": "file", "file_id": "f"}}, text("q")])],
        {},
        [user("q")],
        ["document:file"],
    ),
    (
        "search_result -> one text part",
        None,
        [
            user(
                [
                    {
                        "type": "search_result",
                        "source": "https://x.test/doc",
                        "title": "Doc",
                        "content": [text("line 1"), text("line 2")],
                        "citations": {"enabled": True},
                    },
                    text("answer from it"),
                ]
            )
        ],
        {},
        [
            user(
                [
                    text("[Search result: Doc (https://x.test/doc)]\nline 1\nline 2"),
                    text("answer from it"),
                ]
            )
        ],
        [],
    ),
]

TOOL_CASES: list[Case] = [
    (
        "tool_use -> tool_calls, text kept, result as a tool message",
        None,
        [
            user("weather?"),
            assistant(
                [text("Let me check."), tool_use("toolu_01", "get_weather", {"city": "Paris"})]
            ),
            user([tool_result("toolu_01", "15C")]),
        ],
        {},
        [
            user("weather?"),
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [call("toolu_01", "get_weather", '{"city":"Paris"}')],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "15C"},
        ],
        [],
    ),
    (
        "tool_use only -> content null; empty and missing input -> {}",
        None,
        [
            user("go"),
            assistant(
                [
                    tool_use("toolu_1", "a", {}),
                    {"type": "tool_use", "id": "toolu_2", "name": "b"},
                ]
            ),
            user([tool_result("toolu_1", "x"), tool_result("toolu_2", "y")]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("toolu_1", "a", "{}"), call("toolu_2", "b", "{}")],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "x"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "y"},
        ],
        [],
    ),
    (
        "a long tool name in history uses the upstream name",
        None,
        [
            user("go"),
            assistant([tool_use("toolu_1", "a" * 100, {"k": [1, 2]})]),
            user([tool_result("toolu_1", "done")]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    call(
                        "toolu_1",
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_28165978",
                        '{"k":[1,2]}',
                    )
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "done"},
        ],
        [],
    ),
    (
        "tool_result with text blocks joined",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {})]),
            user([tool_result("t1", [text("line a"), text("line b")])]),
        ],
        {},
        [
            user("go"),
            {"role": "assistant", "content": None, "tool_calls": [call("t1", "f", "{}")]},
            {"role": "tool", "tool_call_id": "t1", "content": "line a\n\nline b"},
        ],
        [],
    ),
    (
        "empty tool results get a placeholder text",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {}), tool_use("t2", "f", {}), tool_use("t3", "f", {})]),
            user([tool_result("t1", ""), tool_result("t2", []), tool_result("t3")]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("t1", "f", "{}"), call("t2", "f", "{}"), call("t3", "f", "{}")],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "(no output)"},
            {"role": "tool", "tool_call_id": "t2", "content": "(no output)"},
            {"role": "tool", "tool_call_id": "t3", "content": "(no output)"},
        ],
        [],
    ),
    (
        "is_error becomes a visible prefix",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "Bash", {"command": "false"})]),
            user([tool_result("t1", "Exit code 3\nthere", is_error=True)]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("t1", "Bash", '{"command":"false"}')],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "[tool error] Exit code 3\nthere"},
        ],
        [],
    ),
    (
        "is_error false adds nothing; empty error gets both",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {}), tool_use("t2", "f", {})]),
            user([tool_result("t1", "ok", is_error=False), tool_result("t2", "", is_error=True)]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("t1", "f", "{}"), call("t2", "f", "{}")],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
            {"role": "tool", "tool_call_id": "t2", "content": "[tool error] (no output)"},
        ],
        [],
    ),
    (
        "images in a tool_result move to the following user message",
        None,
        [
            user("screenshot"),
            assistant([tool_use("t1", "shot", {})]),
            user([tool_result("t1", [text("see"), image_b64()]), text("what now?")]),
        ],
        {},
        [
            user("screenshot"),
            {"role": "assistant", "content": None, "tool_calls": [call("t1", "shot", "{}")]},
            {"role": "tool", "tool_call_id": "t1", "content": "see" + NEXT_MSG},
            user(
                [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    text("what now?"),
                ]
            ),
        ],
        [],
    ),
    (
        "image-only tool_result: placeholder text plus the moved image",
        None,
        [
            user("shot"),
            assistant([tool_use("t1", "shot", {})]),
            user([tool_result("t1", [image_b64()])]),
        ],
        {},
        [
            user("shot"),
            {"role": "assistant", "content": None, "tool_calls": [call("t1", "shot", "{}")]},
            {"role": "tool", "tool_call_id": "t1", "content": "(no output)" + NEXT_MSG},
            user([{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]),
        ],
        [],
    ),
    (
        "documents and search results inside a tool_result",
        None,
        [
            user("read"),
            assistant([tool_use("t1", "read", {})]),
            user(
                [
                    tool_result(
                        "t1",
                        [
                            {
                                "type": "search_result",
                                "source": "s",
                                "title": "t",
                                "content": [text("x")],
                            },
                            {"type": "document", "source": {"type": "url", "url": "https://d"}},
                            {"type": "tool_reference", "tool_name": "x"},
                        ],
                    )
                ]
            ),
        ],
        {},
        [
            user("read"),
            {"role": "assistant", "content": None, "tool_calls": [call("t1", "read", "{}")]},
            {
                "role": "tool",
                "tool_call_id": "t1",
                "content": "[Search result: t (s)]\nx" + NEXT_MSG,
            },
            user(
                [{"type": "file", "file": {"filename": "document.pdf", "file_data": "https://d"}}]
            ),
        ],
        ["tool_result:tool_reference"],
    ),
    (
        "text after tool results -> a following user message",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {})]),
            user([tool_result("t1", "r"), text("thanks, continue")]),
        ],
        {},
        [
            user("go"),
            {"role": "assistant", "content": None, "tool_calls": [call("t1", "f", "{}")]},
            {"role": "tool", "tool_call_id": "t1", "content": "r"},
            user("thanks, continue"),
        ],
        [],
    ),
    (
        "[text, tool_result] ordering: tool messages still come first",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {}), tool_use("t2", "g", {})]),
            user([text("note first"), tool_result("t1", "r1"), tool_result("t2", "r2")]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("t1", "f", "{}"), call("t2", "g", "{}")],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "r1"},
            {"role": "tool", "tool_call_id": "t2", "content": "r2"},
            user("note first"),
        ],
        [],
    ),
    (
        "orphan tool_result becomes user text",
        None,
        [user([tool_result("gone", "old output"), text("and now?")])],
        {},
        [user([text("[tool result]\nold output"), text("and now?")])],
        ["tool_result:orphan"],
    ),
    (
        "orphan tool_result after a plain assistant turn",
        None,
        [user("a"), assistant("b"), user([tool_result("gone", "x")])],
        {},
        [user("a"), assistant("b"), user("[tool result]\nx")],
        ["tool_result:orphan"],
    ),
    (
        "interrupted tool_use gets a placeholder result before the next user text",
        None,
        [
            user("go"),
            assistant([text("running"), tool_use("t1", "Bash", {"command": "sleep 99"})]),
            user("stop, do something else"),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": "running",
                "tool_calls": [call("t1", "Bash", '{"command":"sleep 99"}')],
            },
            {
                "role": "tool",
                "tool_call_id": "t1",
                "content": "(no result: the tool call was interrupted)",
            },
            user("stop, do something else"),
        ],
        [],
    ),
    (
        "one of two parallel calls without a result",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {}), tool_use("t2", "g", {})]),
            user([tool_result("t2", "r2")]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("t1", "f", "{}"), call("t2", "g", "{}")],
            },
            {"role": "tool", "tool_call_id": "t2", "content": "r2"},
            {
                "role": "tool",
                "tool_call_id": "t1",
                "content": "(no result: the tool call was interrupted)",
            },
        ],
        [],
    ),
    (
        "interrupted call followed by another assistant turn (merged, as Anthropic does)",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {})]),
            assistant("never mind"),
            user("ok"),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": "never mind",
                "tool_calls": [call("t1", "f", "{}")],
            },
            {
                "role": "tool",
                "tool_call_id": "t1",
                "content": "(no result: the tool call was interrupted)",
            },
            user("ok"),
        ],
        [],
    ),
    (
        "interrupted call in a trailing assistant turn gets no placeholder",
        None,
        [user("go"), assistant([text("calling"), tool_use("t1", "f", {})])],
        {},
        [
            user("go"),
            {"role": "assistant", "content": "calling", "tool_calls": [call("t1", "f", "{}")]},
        ],
        [],
    ),
    (
        "tool_result cache_control kept on a text part (Claude Code's last block)",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "Bash", {"command": "echo hi"})]),
            user([tool_result("t1", "hi", is_error=False, cache_control=CC_SCOPED)]),
        ],
        {"cache_control": True},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("t1", "Bash", '{"command":"echo hi"}')],
            },
            {
                "role": "tool",
                "tool_call_id": "t1",
                "content": [text("hi", cache_control=CC_KEPT)],
            },
        ],
        [],
    ),
    (
        "tool_result cache_control stripped and reported when unsupported",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "Bash", {})]),
            user([tool_result("t1", "hi", cache_control=CC)]),
        ],
        {},
        [
            user("go"),
            {"role": "assistant", "content": None, "tool_calls": [call("t1", "Bash", "{}")]},
            {"role": "tool", "tool_call_id": "t1", "content": "hi"},
        ],
        ["cache_control"],
    ),
    (
        "orphan tool_result that carried cache_control",
        None,
        [user([tool_result("gone", "x", cache_control=CC)])],
        {"cache_control": True},
        [user("[tool result]\nx")],
        ["tool_result:orphan"],
    ),
]

MERGE_CASES: list[Case] = [
    (
        "consecutive user messages merge into parts",
        None,
        [user("a"), user([text("b"), text("c")])],
        {},
        [user([text("a"), text("b"), text("c")])],
        [],
    ),
    (
        "consecutive assistant messages merge text and tool calls",
        None,
        [
            user("go"),
            assistant("first"),
            assistant([text("second"), tool_use("t1", "f", {})]),
            user([tool_result("t1", "r")]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": "first\n\nsecond",
                "tool_calls": [call("t1", "f", "{}")],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "r"},
        ],
        [],
    ),
    (
        "consecutive assistant messages each with tool calls",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {})]),
            assistant([tool_use("t2", "g", {})]),
            user([tool_result("t1", "r1"), tool_result("t2", "r2")]),
        ],
        {},
        [
            user("go"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("t1", "f", "{}"), call("t2", "g", "{}")],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "r1"},
            {"role": "tool", "tool_call_id": "t2", "content": "r2"},
        ],
        [],
    ),
    (
        "a user turn split in two: text, then the tool results",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {})]),
            user("wait"),
            user([tool_result("t1", "r")]),
        ],
        {},
        [
            user("go"),
            {"role": "assistant", "content": None, "tool_calls": [call("t1", "f", "{}")]},
            {"role": "tool", "tool_call_id": "t1", "content": "r"},
            user("wait"),
        ],
        [],
    ),
    (
        "thinking split over two assistant turns gets dense indices",
        None,
        [
            user("q"),
            assistant([{"type": "thinking", "thinking": "one", "signature": SIG}]),
            assistant([{"type": "thinking", "thinking": "two", "signature": SIG}, text("a")]),
        ],
        {},
        [
            user("q"),
            {
                "role": "assistant",
                "content": "a",
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "text": "one",
                        "index": 0,
                        "signature": SIG,
                        "format": "anthropic-claude-v1",
                    },
                    {
                        "type": "reasoning.text",
                        "text": "two",
                        "index": 1,
                        "signature": SIG,
                        "format": "anthropic-claude-v1",
                    },
                ],
            },
        ],
        [],
    ),
    (
        "tool results, then text, then the next user turn merge after the tool messages",
        None,
        [
            user("go"),
            assistant([tool_use("t1", "f", {})]),
            user([tool_result("t1", "r"), text("more")]),
            user("and this"),
        ],
        {},
        [
            user("go"),
            {"role": "assistant", "content": None, "tool_calls": [call("t1", "f", "{}")]},
            {"role": "tool", "tool_call_id": "t1", "content": "r"},
            user([text("more"), text("and this")]),
        ],
        [],
    ),
]

THINKING_CASES: list[Case] = [
    (
        "signed thinking -> reasoning_details with signature and format",
        None,
        [
            user("q"),
            assistant([{"type": "thinking", "thinking": "hmm", "signature": SIG}, text("answer")]),
            user("next"),
        ],
        {},
        [
            user("q"),
            {
                "role": "assistant",
                "content": "answer",
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "text": "hmm",
                        "index": 0,
                        "signature": SIG,
                        "format": "anthropic-claude-v1",
                    }
                ],
            },
            user("next"),
        ],
        [],
    ),
    (
        "unsigned thinking is kept without a signature by default",
        None,
        [
            user("q"),
            assistant([{"type": "thinking", "thinking": "hmm", "signature": ""}, text("a")]),
        ],
        {},
        [
            user("q"),
            {
                "role": "assistant",
                "content": "a",
                "reasoning_details": [{"type": "reasoning.text", "text": "hmm", "index": 0}],
            },
        ],
        [],
    ),
    (
        "unsigned thinking is dropped with signed_thinking_only",
        None,
        [
            user("q"),
            assistant(
                [
                    {"type": "thinking", "thinking": "unsigned", "signature": ""},
                    {"type": "thinking", "thinking": "signed", "signature": SIG},
                    text("a"),
                ]
            ),
        ],
        {"signed_thinking_only": True},
        [
            user("q"),
            {
                "role": "assistant",
                "content": "a",
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "text": "signed",
                        "index": 0,
                        "signature": SIG,
                        "format": "anthropic-claude-v1",
                    }
                ],
            },
        ],
        ["thinking:unsigned"],
    ),
    (
        "thinking and redacted_thinking keep their order before a tool call",
        None,
        [
            user("q"),
            assistant(
                [
                    {"type": "thinking", "thinking": "t", "signature": SIG},
                    {"type": "redacted_thinking", "data": "EmwKAhgB"},
                    tool_use("t1", "f", {}),
                ]
            ),
            user([tool_result("t1", "r")]),
        ],
        {"signed_thinking_only": True},
        [
            user("q"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("t1", "f", "{}")],
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "text": "t",
                        "index": 0,
                        "signature": SIG,
                        "format": "anthropic-claude-v1",
                    },
                    {"type": "reasoning.encrypted", "data": "EmwKAhgB", "index": 1},
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "r"},
        ],
        [],
    ),
    (
        "a thinking-only assistant turn is dropped and reported",
        None,
        [
            user("a"),
            assistant([{"type": "thinking", "thinking": "hmm", "signature": SIG}]),
            user("b"),
        ],
        {},
        [user([text("a"), text("b")])],
        ["thinking:without-content"],
    ),
]

CACHE_CASES: list[Case] = [
    (
        "text cache_control kept (type/ttl only, scope stripped)",
        None,
        [user([text("<reminder>"), text("prompt", cache_control=CC_SCOPED)])],
        {"cache_control": True},
        [user([text("<reminder>"), text("prompt", cache_control=CC_KEPT)])],
        [],
    ),
    (
        "a single text part with cache_control stays a part",
        None,
        [user([text("prompt", cache_control=CC)])],
        {"cache_control": True},
        [user([text("prompt", cache_control=CC)])],
        [],
    ),
    (
        "cache_control without type defaults to ephemeral",
        None,
        [user([text("prompt", cache_control={"ttl": "5m"})])],
        {"cache_control": True},
        [user([text("prompt", cache_control={"type": "ephemeral", "ttl": "5m"})])],
        [],
    ),
    (
        "text cache_control stripped and reported when unsupported",
        None,
        [user([text("<reminder>"), text("prompt", cache_control=CC_SCOPED)])],
        {},
        [user([text("<reminder>"), text("prompt")])],
        ["cache_control"],
    ),
    (
        "assistant text with cache_control stays parts",
        None,
        [user("q"), assistant([text("a", cache_control=CC)])],
        {"cache_control": True},
        [user("q"), assistant([text("a", cache_control=CC)])],
        [],
    ),
]


def _params(*groups: list[Case]) -> Any:
    cases = [case for group in groups for case in group]
    return pytest.mark.parametrize(
        ("system", "messages", "options", "expected", "dropped"),
        [case[1:] for case in cases],
        ids=[case[0] for case in cases],
    )


@_params(SYSTEM_CASES, TEXT_CASES, IMAGE_CASES, DOCUMENT_CASES)
def test_content(
    system: Any, messages: list[JSON], options: JSON, expected: list[JSON], dropped: list[str]
) -> None:
    out, reported, _ = convert(system, messages, **options)
    assert out == expected
    assert reported == dropped


@_params(TOOL_CASES, MERGE_CASES)
def test_tools(
    system: Any, messages: list[JSON], options: JSON, expected: list[JSON], dropped: list[str]
) -> None:
    out, reported, _ = convert(system, messages, **options)
    assert out == expected
    assert reported == dropped


@_params(THINKING_CASES, CACHE_CASES)
def test_thinking_and_cache(
    system: Any, messages: list[JSON], options: JSON, expected: list[JSON], dropped: list[str]
) -> None:
    out, reported, _ = convert(system, messages, **options)
    assert out == expected
    assert reported == dropped


def test_placeholder_is_noted() -> None:
    _, dropped, notes = convert(None, [user([image_b64("image/tiff")])])
    assert dropped == ["image"]
    assert notes == ["image replaced by a placeholder: unsupported image format image/tiff"]


def test_claude_code_tool_loop() -> None:
    """Request 2 of Claude Code's Bash loop: user, system, assistant[text, tool_use],
    user[tool_result + cache_control]."""
    messages = [
        user(
            [
                text("<system-reminder>today</system-reminder>"),
                text("run echo hi", cache_control=CC),
            ]
        ),
        {"role": "system", "content": "agent types and skills"},
        assistant(
            [
                {"type": "thinking", "thinking": "I'll run it", "signature": ""},
                text("Running it."),
                tool_use("toolu_01ABC", "Bash", {"command": "echo hi", "description": "say hi"}),
            ]
        ),
        user(
            [
                tool_result(
                    "toolu_01ABC",
                    "hi",
                    is_error=False,
                    cache_control={"type": "ephemeral", "scope": "session"},
                )
            ]
        ),
    ]
    out, dropped, _ = convert(
        [text("You are a Claude agent.", cache_control=CC)],
        messages,
        cache_control=True,
        signed_thinking_only=True,
    )
    assert out == [
        {"role": "system", "content": [text("You are a Claude agent.", cache_control=CC)]},
        user(
            [
                text("<system-reminder>today</system-reminder>"),
                text("run echo hi", cache_control=CC),
            ]
        ),
        {"role": "system", "content": "agent types and skills"},
        {
            "role": "assistant",
            "content": "Running it.",
            "tool_calls": [
                call("toolu_01ABC", "Bash", '{"command":"echo hi","description":"say hi"}')
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01ABC", "content": [text("hi", cache_control=CC)]},
    ]
    assert dropped == ["thinking:unsigned"]


def test_input_is_not_mutated() -> None:
    messages = [
        user([text("a", cache_control=CC_SCOPED)]),
        assistant([tool_use("t1", "f", {"x": 1})]),
        user([tool_result("t1", [text("r"), image_b64()]), text("b")]),
        user("c"),
    ]
    snapshot = repr(messages)
    convert("sys", messages, cache_control=True)
    assert repr(messages) == snapshot
