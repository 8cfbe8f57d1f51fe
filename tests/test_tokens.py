"""Offline token counting (anthropic_router.tokens): vocabularies, request walking, images,
PDFs, family selection, and that nothing is fetched from the network."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from anthropic_router import tokens

CLAUDE_MODEL = "anthropic/claude-sonnet-4.5"
GPT4O = "openai/gpt-4o"
GPT4 = "openai/gpt-4"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """An empty encoder cache for one test (the module's real cache is restored after)."""
    cache: dict[str, Any] = {}
    monkeypatch.setattr(tokens, "_ENCODERS", cache)
    yield cache


# ------------------------------------------------------------------------------ families


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("anthropic/claude-sonnet-4.5", "claude"),
        ("anthropic/claude-3.5-haiku:beta", "claude"),
        ("claude-opus-4-8", "claude"),
        ("bedrock/anthropic.claude-3-sonnet", "claude"),
        ("openai/gpt-4o", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("openai/gpt-4.1-nano", "o200k_base"),
        ("openai/gpt-5", "o200k_base"),
        ("openai/gpt-5.1-codex", "o200k_base"),
        ("openai/o1", "o200k_base"),
        ("openai/o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("openai/gpt-oss-120b:free", "o200k_base"),
        ("OpenAI/GPT-4O", "o200k_base"),
        ("openai/gpt-4", "cl100k_base"),
        ("openai/gpt-4-turbo", "cl100k_base"),
        ("openai/gpt-3.5-turbo", "cl100k_base"),
        ("meta-llama/llama-3.3-70b-instruct", "cl100k_base"),
        ("google/gemini-2.5-pro", "cl100k_base"),
        ("deepseek/deepseek-chat", "cl100k_base"),
        ("x-ai/grok-4", "cl100k_base"),
        ("openrouter/auto", "cl100k_base"),
        ("", "cl100k_base"),
    ],
)
def test_tokenizer_for(model: str, family: str) -> None:
    assert tokens.tokenizer_for(model) == family


# ------------------------------------------------------------------------------ vocabularies

# sha256 of the decompressed files: the first two are the hashes tiktoken itself pins for
# OpenAI's published files; the third is the converted anthropic==0.38.0 tokenizer.json.
VOCAB_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "claude": "ba9ebb28e61f5872504fbe44b2f61bd825c222d7d910f55c89f5f28ab1f40e8b",
}


@pytest.mark.parametrize("family", sorted(VOCAB_SHA256))
def test_vocabulary_files_are_packaged_and_intact(family: str) -> None:
    raw = gzip.decompress(tokens.vocabulary_path(family).read_bytes())
    assert hashlib.sha256(raw).hexdigest() == VOCAB_SHA256[family]


def test_pyproject_ships_the_data_directory() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "data/*" in pyproject["tool"]["setuptools"]["package-data"]["anthropic_router"]


@pytest.mark.parametrize(
    ("family", "ids"),
    [("o200k_base", [24912, 2375]), ("cl100k_base", [15339, 1917])],
)
def test_openai_vocabularies_give_tiktokens_ids(family: str, ids: list[int]) -> None:
    encoding = tokens._encoder(family)._encoding
    assert encoding.encode_ordinary("hello world") == ids
    assert encoding.decode(ids) == "hello world"


@pytest.mark.parametrize(
    ("text", "claude", "o200k", "cl100k"),
    [
        ("hello world", 2, 2, 2),
        ("You are a helpful assistant.", 6, 6, 6),
        ("What is the capital of France?", 7, 7, 7),
        ('{"command":"echo hi"}', 6, 6, 6),
        ("", 0, 0, 0),
        ("\ufb01", 1, 1, 2),  # NFKC folds the ligature to "fi" for Claude
    ],
)
def test_count_text_exact(text: str, claude: int, o200k: int, cl100k: int) -> None:
    assert tokens.count_text(text, CLAUDE_MODEL) == claude
    assert tokens.count_text(text, GPT4O) == o200k
    assert tokens.count_text(text, GPT4) == cl100k


def test_special_token_text_and_lone_surrogates_are_ordinary_text() -> None:
    for model in (CLAUDE_MODEL, GPT4O, GPT4):
        assert tokens.count_text("<|endoftext|>", model) == 7
        assert tokens.count_text("<EOT><META>", model) > 2
        assert tokens.count_text("bad \ud800 surrogate", model) > 0


# ------------------------------------------------------------------------------ offline, lazy


def test_counts_with_no_network_and_an_empty_tiktoken_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_cache: dict[str, Any]
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(tiktoken, "get_encoding", no_network)  # the downloading entry point
    body = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
    assert tokens.count_tokens(body, CLAUDE_MODEL) == 3 + 3 + 7
    assert tokens.count_tokens(body, GPT4O) == 3 + 4 + 7
    assert tokens.count_tokens(body, GPT4) == 3 + 4 + 7
    assert sorted(fresh_cache) == ["cl100k_base", "claude", "o200k_base"]
    assert list(tmp_path.iterdir()) == []


def test_fresh_interpreter_without_network(tmp_path: Path) -> None:
    script = (
        "import socket\n"
        "def blocked(*a, **k): raise OSError('no network')\n"
        "socket.socket.connect = blocked\n"
        "socket.getaddrinfo = blocked\n"
        "from anthropic_router.tokens import count_tokens\n"
        "body = {'messages': [{'role': 'user', 'content': 'hello world'}]}\n"
        "print(count_tokens(body, 'openai/gpt-4o'), count_tokens(body, 'claude-opus-4-8'),"
        " count_tokens(body, 'mistralai/mistral-large'))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    env.pop("DATA_GYM_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["9", "8", "9"]
    assert list(tmp_path.iterdir()) == []


def test_vocabularies_load_lazily_once(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: dict[str, Any]
) -> None:
    builds: list[str] = []
    real_build = tokens._build

    def counting_build(family: str) -> Any:
        builds.append(family)
        time.sleep(0.05)  # widen the race window
        return real_build(family)

    monkeypatch.setattr(tokens, "_build", counting_build)
    assert fresh_cache == {}
    results: list[int] = []
    body = {"messages": [{"role": "user", "content": "hello world"}]}

    def worker() -> None:
        results.append(tokens.count_tokens(body, GPT4O))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [9] * 8
    assert builds == ["o200k_base"]
    tokens.preload()
    assert sorted(builds) == ["cl100k_base", "claude", "o200k_base"]


def test_warm_counting_reuses_the_loaded_vocabulary() -> None:
    """A large Claude Code-sized body counted twice: the second count loads nothing (the
    same encoder objects, no new one) and gives the same number. How fast counting is is
    measured in bench/, not asserted here."""
    tool = {
        "name": "Bash",
        "description": "Run a shell command. " * 200,
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
    body = {
        "system": "You are a coding agent. " * 500,
        "messages": [{"role": "user", "content": "Fix the failing test. " * 1000}],
        "tools": [tool] * 25,
    }
    first = tokens.count_tokens(body, GPT4O)
    loaded = dict(tokens._ENCODERS)
    assert tokens.count_tokens(body, GPT4O) == first > 10_000
    assert tokens._ENCODERS.keys() == loaded.keys()
    assert all(tokens._ENCODERS[family] is encoder for family, encoder in loaded.items())


# ------------------------------------------------------------------------------ calibration


def test_claude_matches_anthropics_published_counts() -> None:
    # Anthropic's token-counting docs: 14 for this request; a 1-character message counts 7.
    scientist = {
        "system": "You are a scientist",
        "messages": [{"role": "user", "content": "Hello, Claude"}],
    }
    assert tokens.count_tokens(scientist, "claude-opus-4-8") == 14
    one_char = {"messages": [{"role": "user", "content": "x"}]}
    assert tokens.count_tokens(one_char, "claude-opus-4-8") == 7
    weather = {
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "What's the weather like in San Francisco?"}],
    }
    assert abs(tokens.count_tokens(weather, "claude-opus-4-8") - 403) <= 4  # published: 403


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {
                "type": "string",
                "description": "The city and state, e.g. San Francisco, CA",
            }
        },
        "required": ["location"],
    },
}


def test_plain_chat_per_family() -> None:
    body = {
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    }
    # OpenAI chat format: 3 to prime the reply, 3 + 1 (role) per message, plus the text.
    assert tokens.count_tokens(body, GPT4O) == 3 + (4 + 6) + (4 + 7) == 24
    assert tokens.count_tokens(body, GPT4) == 24
    assert tokens.count_tokens(body, CLAUDE_MODEL) == 3 + (1 + 6) + (3 + 7) == 20


def test_system_blocks_and_strings_count_the_same() -> None:
    as_string = {"system": "You are a helpful assistant.", "messages": []}
    as_blocks = {
        "system": [
            {
                "type": "text",
                "text": "You are a helpful assistant.",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": [],
    }
    for model in (CLAUDE_MODEL, GPT4O):
        assert tokens.count_tokens(as_string, model) == tokens.count_tokens(as_blocks, model)
    assert tokens.count_tokens({"system": "", "messages": []}, GPT4O) == 3


def test_mid_conversation_system_message_is_a_message() -> None:
    base = {"messages": [{"role": "user", "content": "hello world"}]}
    more = {
        "messages": [
            {"role": "user", "content": "hello world"},
            {"role": "system", "content": [{"type": "text", "text": "hello world"}]},
        ]
    }
    assert tokens.count_tokens(more, GPT4O) - tokens.count_tokens(base, GPT4O) == 4 + 2
    assert tokens.count_tokens(more, CLAUDE_MODEL) - tokens.count_tokens(base, CLAUDE_MODEL) == 5


TOOL_LOOP = {
    "messages": [
        {"role": "user", "content": "run echo hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "hello world"},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "Bash",
                    "input": {"command": "echo hi"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "hi",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
}


def test_tool_use_and_tool_result() -> None:
    user = tokens.count_text("run echo hi", GPT4O)
    # tool_use: name + compact JSON of the input + 3; tool_result: content + 2.
    expected = 3 + (4 + user) + (4 + 2 + (3 + 2 + 6)) + (4 + (2 + 1))
    assert tokens.count_tokens(TOOL_LOOP, GPT4O) == expected
    user = tokens.count_text("run echo hi", CLAUDE_MODEL)
    expected = 3 + (3 + user) + (3 + 2 + (25 + 2 + 6)) + (3 + (20 + 1))
    assert tokens.count_tokens(TOOL_LOOP, CLAUDE_MODEL) == expected


def test_tool_result_with_blocks_and_images() -> None:
    blocks = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "hello world"},
                            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                        ],
                    }
                ],
            }
        ]
    }
    assert tokens.count_tokens(blocks, GPT4O) == 3 + 4 + 2 + 2 + 765
    assert tokens.count_tokens(blocks, CLAUDE_MODEL) == 3 + 3 + 20 + 2 + 1600


def test_tools_are_counted_as_compact_json_schemas() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL]}
    bare = {"messages": [{"role": "user", "content": "x"}]}
    schema = json.dumps(WEATHER_TOOL["input_schema"], separators=(",", ":"))
    for model, base, per_tool, weight in (
        (CLAUDE_MODEL, 346, 0, 1.0),
        (GPT4O, 7, 0, 0.7),
        (GPT4, 2, 27, 1.0),
    ):
        text = tokens.count_text
        named = text("get_weather", model) + text(str(WEATHER_TOOL["description"]), model)
        tool = per_tool + named + round(weight * text(schema, model))
        added = tokens.count_tokens(body, model) - tokens.count_tokens(bare, model)
        assert added == base + tool, model


def test_forced_tool_choice_uses_anthropics_smaller_tool_prompt() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL]}
    auto = tokens.count_tokens(body, CLAUDE_MODEL)
    forced = tokens.count_tokens({**body, "tool_choice": {"type": "any"}}, CLAUDE_MODEL)
    assert auto - forced == 346 - 313
    assert tokens.count_tokens({**body, "tool_choice": {"type": "none"}}, CLAUDE_MODEL) == auto


def test_server_tools_without_schema_count_their_settings() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
    }
    bare = {"messages": [{"role": "user", "content": "x"}]}
    settings = tokens.count_text('{"type":"web_search_20250305","max_uses":5}', GPT4O)
    added = tokens.count_tokens(body, GPT4O) - tokens.count_tokens(bare, GPT4O)
    assert added == 7 + tokens.count_text("web_search", GPT4O) + settings


def test_thinking_counts_for_claude_only() -> None:
    thinking = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hello world", "signature": "c2ln" * 50},
                    {"type": "redacted_thinking", "data": "A" * 160},
                    {"type": "text", "text": "hi"},
                ],
            },
        ]
    }
    plain = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        ]
    }
    claude_extra = tokens.count_tokens(thinking, CLAUDE_MODEL) - tokens.count_tokens(
        plain, CLAUDE_MODEL
    )
    assert claude_extra == 2 + 160 * 3 // 16
    assert tokens.count_tokens(thinking, GPT4O) == tokens.count_tokens(plain, GPT4O)


def test_unknown_blocks_and_search_results() -> None:
    unknown = {"type": "container_upload", "file_id": "file_abc", "cache_control": {}}
    search = {
        "type": "search_result",
        "title": "hello world",
        "source": "hello world",
        "content": [{"type": "text", "text": "hello world"}],
        "citations": {"enabled": True},
    }
    body = {"messages": [{"role": "user", "content": [unknown, search]}]}
    unknown_json = tokens.count_text('{"file_id":"file_abc"}', GPT4O)
    assert tokens.count_tokens(body, GPT4O) == 3 + 4 + unknown_json + 2 + 2 + 2


def test_malformed_bodies_do_not_raise() -> None:
    odd: list[dict[str, Any]] = [
        {},
        {"messages": "not a list"},
        {"messages": [None, 3, {"role": "user"}, {"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": [None, "bare string", {"no": "type"}]}]},
        {"messages": [], "tools": "nope", "system": 42},
        {"messages": [], "tools": [None, {"name": None}]},
        {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "document"}]}]},
        {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "input": None}]}]},
    ]
    for body in odd:
        for model in (CLAUDE_MODEL, GPT4O):
            assert tokens.count_tokens(body, model) >= 1


def test_output_format_schema_is_counted() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    fmt = {"type": "json_schema", "schema": schema}
    bare = {"messages": [{"role": "user", "content": "x"}]}
    with_config = {**bare, "output_config": {"effort": "high", "format": fmt}}
    with_beta = {**bare, "output_format": fmt}
    added = tokens.count_text(json.dumps(fmt, separators=(",", ":")), GPT4O)
    assert tokens.count_tokens(with_config, GPT4O) - tokens.count_tokens(bare, GPT4O) == added
    assert tokens.count_tokens(with_beta, GPT4O) - tokens.count_tokens(bare, GPT4O) == added


# ------------------------------------------------------------------------------ images


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 20


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    exif = b"\xff\xe1" + struct.pack(">H", 1002) + b"\0" * 1000  # a segment to skip
    sof = b"\xff\xc2" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + b"\xff\xff" + exif + sof + b"\xff\xda"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\0" * 10


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0"
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + bits.to_bytes(4, "little") + b"\0" * 8
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def webp_vp8(width: int, height: int) -> bytes:
    frame = b"\0\0\0" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\0" * 8
    body = b"VP8 " + struct.pack("<I", len(frame)) + frame
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


@pytest.mark.parametrize("make", [png, jpeg, gif, webp_vp8x, webp_vp8l, webp_vp8])
def test_image_size_from_headers(make: Any) -> None:
    assert tokens.image_size(make(1280, 720)) == (1280, 720)
    assert tokens.image_size(make(1, 3000)) == (1, 3000)


def test_image_size_rejects_garbage() -> None:
    for data in (b"", b"not an image", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", png(0, 10)):
        assert tokens.image_size(data) is None


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((200, 200), 54),  # ceil(40000 / 750)
        ((1000, 1000), 1334),
        ((1092, 1092), 1590),  # Anthropic's table: ~1590 for 1092x1092
        ((4000, 3000), 1600),  # scaled down: capped at the ~1.15 MP budget
        ((1568, 100), 210),
        ((3136, 200), 210),  # long edge capped at 1568 first
        (None, 1600),
    ],
)
def test_anthropic_image_tokens(size: tuple[int, int] | None, expected: int) -> None:
    assert tokens.anthropic_image_tokens(size) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1024, 1024), 765),  # OpenAI's documented examples
        ((2048, 4096), 1105),
        ((512, 512), 255),
        ((100, 100), 255),
        (None, 765),
    ],
)
def test_openai_image_tokens(size: tuple[int, int] | None, expected: int) -> None:
    assert tokens.openai_image_tokens(size) == expected


def image_body(source: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"type": "image", "source": source}]}]}


def test_base64_images_are_sized_from_their_header() -> None:
    data = base64.b64encode(jpeg(1000, 1000) + b"\0" * 5000).decode()
    body = image_body({"type": "base64", "media_type": "image/jpeg", "data": data})
    assert tokens.count_tokens(body, CLAUDE_MODEL) == 3 + 3 + 1334
    assert tokens.count_tokens(body, GPT4O) == 3 + 4 + 765
    wrapped = "\n".join(data[i : i + 76] for i in range(0, len(data), 76))  # MIME line breaks
    body = image_body({"type": "base64", "media_type": "image/jpeg", "data": wrapped})
    assert tokens.count_tokens(body, CLAUDE_MODEL) == 3 + 3 + 1334


def test_unreadable_and_url_images_fall_back() -> None:
    broken = image_body({"type": "base64", "media_type": "image/png", "data": "!!notbase64"})
    url = image_body({"type": "url", "url": "https://example.com/cat.png"})
    for body in (broken, url):
        assert tokens.count_tokens(body, CLAUDE_MODEL) == 3 + 3 + 1600
        assert tokens.count_tokens(body, GPT4O) == 3 + 4 + 765
    data_url = "data:image/gif;base64," + base64.b64encode(gif(200, 200)).decode()
    assert tokens.count_tokens(image_body({"type": "url", "url": data_url}), CLAUDE_MODEL) == 60


# ------------------------------------------------------------------------------ documents


def pdf(pages: int, compressed: bool = False) -> bytes:
    parts = [b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"]
    parts.append(b"2 0 obj << /Type /Pages /Kids [] /Count %d >> endobj\n" % pages)
    if not compressed:
        parts += [
            b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj\n" % (3 + i) for i in range(pages)
        ]
    return b"".join(parts) + b"%%EOF\n"


def test_pdf_pages() -> None:
    assert tokens.pdf_pages(pdf(3)) == 3
    assert tokens.pdf_pages(pdf(7, compressed=True)) == 7  # from the page tree's /Count
    assert tokens.pdf_pages(b"%PDF-1.7\n" + b"x" * 120_000) == 3  # by size: 50 kB a page
    assert tokens.pdf_pages(b"") == 1


def document_body(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    block = {"type": "document", "source": source, **extra}
    return {"messages": [{"role": "user", "content": [block]}]}


def test_documents() -> None:
    data = base64.b64encode(pdf(3)).decode()
    body = document_body({"type": "base64", "media_type": "application/pdf", "data": data})
    assert tokens.count_tokens(body, CLAUDE_MODEL) == 3 + 3 + 3 * 2000
    assert tokens.count_tokens(body, GPT4O) == 3 + 4 + 3 * 1300
    text = document_body(
        {"type": "text", "media_type": "text/plain", "data": "hello world"},
        title="hello world",
        context="hello world",
    )
    assert tokens.count_tokens(text, GPT4O) == 3 + 4 + 2 + 2 + 2
    content = document_body({"type": "content", "content": [{"type": "text", "text": "hi"}]})
    assert tokens.count_tokens(content, GPT4O) == 3 + 4 + 1
    url = document_body({"type": "url", "url": "https://example.com/paper.pdf"})
    assert tokens.count_tokens(url, CLAUDE_MODEL) == 3 + 3 + tokens.UNKNOWN_PDF_PAGES * 2000


def test_a_loaded_vocabulary_keeps_no_python_copy_of_its_ranks(
    fresh_cache: dict[str, Any],
) -> None:
    """The ranks live once, in tiktoken's Rust core (14 MB of Python dict per vocabulary
    freed); counting and token ids are unchanged (the exact-count tests above)."""
    for family in ("claude", "o200k_base", "cl100k_base"):
        tokens.preload(family)
        assert fresh_cache[family]._encoding._mergeable_ranks == {}
    assert tokens.count_text("hello world", GPT4O) == 2


def test_long_runs_without_whitespace_are_counted() -> None:
    # tiktoken < 0.13 is quadratic on one long pre-token (200k "a": ~25 s): the dependency is
    # pinned to >= 0.13, and the installed one must satisfy it (no timing asserted here).
    assert tuple(int(part) for part in tiktoken.__version__.split(".")[:2]) >= (0, 13)
    expected = {CLAUDE_MODEL: 12_500, GPT4O: 25_000, GPT4: 25_000}  # 16 and 8 "a" per token
    for model, count in expected.items():
        assert tokens.count_text("a" * 200_000, model) == count, model


@pytest.mark.parametrize(
    ("request_body", "low", "high"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, 1, 20),
        ({"messages": [{"role": "user", "content": "word " * 1000}]}, 1000, 2000),
        # 100 KB of base64 image data counts as one image, not 25,000 tokens of text.
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "A" * 100_000,
                                },
                            }
                        ],
                    }
                ]
            },
            1500,
            1600,
        ),
    ],
)
def test_estimate_input_tokens_is_in_range(request_body: dict, low: int, high: int) -> None:
    from anthropic_router.tokens import estimate_input_tokens

    assert low <= estimate_input_tokens(request_body) <= high
