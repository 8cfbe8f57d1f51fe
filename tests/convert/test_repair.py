"""Tool-call repair: broken argument strings, calls written as text in each documented format
(streamed and not, split at every position), and the input-schema check.

The shapes are written from the models' documented formats: Hermes' `<tool_call>` JSON
(NousResearch Hermes function-calling template, Qwen2.5), Qwen3-Coder's XML parameters,
Llama 3.1's `<function=NAME>` custom-tool format, and JSON in a markdown fence.
"""

from __future__ import annotations

from typing import Any

import pytest

from anthropic_router.convert.repair import ToolRepair, repair_arguments
from anthropic_router.convert.response import to_anthropic_message
from anthropic_router.convert.stream import StreamTranslator
from anthropic_router.convert.text_calls import TextCallScanner
from support.grammar import accumulate, check_grammar

JSON = dict[str, Any]

BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
        "required": ["command"],
    },
}
READ = {
    "name": "Read",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["file_path"],
    },
}
REQUEST = {"tools": [BASH, READ]}


def tool_repair() -> ToolRepair:
    repair = ToolRepair.for_request(REQUEST)
    assert repair is not None
    return repair


# -- broken argument strings ----------------------------------------------------------------

# (id, arguments as the model sent them, input the client gets, repair named)
ARGUMENTS: list[tuple[str, str, JSON, str | None]] = [
    ("valid", '{"command": "ls"}', {"command": "ls"}, None),
    ("empty string", "", {}, None),
    ("whitespace", "  \n", {}, None),
    ("trailing comma", '{"command": "ls",}', {"command": "ls"}, "tool_arguments"),
    ("single quotes", "{'command': 'ls'}", {"command": "ls"}, "tool_arguments"),
    (
        "raw newline in a string",
        '{"command": "echo a\nb"}',
        {"command": "echo a\nb"},
        "tool_arguments",
    ),
    ("cut at max_tokens", '{"command": "ls -la', {"command": "ls -la"}, "tool_arguments"),
    ("cut after a key", '{"command": "ls", "timeout"', {"command": "ls"}, "tool_arguments"),
    ("markdown fence", '```json\n{"command": "ls"}\n```', {"command": "ls"}, "tool_arguments"),
    (
        "JSON string inside the string",
        '"{\\"command\\": \\"ls\\"}"',
        {"command": "ls"},
        "tool_arguments:double_encoded",
    ),
    ("unquoted keys", "{command: 'ls'}", {"command": "ls"}, "tool_arguments"),
    ("python literals", "{'a': True, 'b': None}", {"a": True, "b": None}, "tool_arguments"),
    (
        "prose, not JSON",
        "run ls please",
        {"raw_input": "run ls please"},
        "tool_arguments:unrepairable",
    ),
    ("valid list is not repaired", "[1, 2]", {"value": [1, 2]}, None),
]


@pytest.mark.parametrize(
    ("arguments", "expected", "repair"), [a[1:] for a in ARGUMENTS], ids=[a[0] for a in ARGUMENTS]
)
def test_repair_arguments(arguments: str, expected: JSON, repair: str | None) -> None:
    assert repair_arguments(arguments) == (expected, repair)


# -- calls written as text --------------------------------------------------------------------

HERMES = '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n</tool_call>'
HERMES_STRING_ARGS = (
    '<tool_call>{"name": "Bash", "arguments": "{\\"command\\": \\"ls\\"}"}</tool_call>'
)
QWEN_XML = (
    "<tool_call>\n<function=Bash>\n<parameter=command>\nls -la\n</parameter>\n"
    "<parameter=timeout>\n30\n</parameter>\n</function>\n</tool_call>"
)
QWEN_BARE = "<function=Read>\n<parameter=file_path>\n/tmp/a.txt\n</parameter>\n</function>"
LLAMA = '<function=Bash>{"command": "pwd"}</function>'
FENCED = 'Let me look.\n```json\n{"name": "Read", "arguments": {"file_path": "/etc/hosts"}}\n```'
FENCED_PARAMETERS = '```\n{"name": "Bash", "parameters": {"command": "date"}}\n```'
TWO_CALLS = (
    HERMES + "\n" + '<tool_call>\n{"name": "Read", "arguments": {"file_path": "a"}}\n</tool_call>'
)

# (id, text the model wrote, pieces expected: ("text", s) or ("call", name, input, format))
TEXTS: list[tuple[str, str, list[tuple[Any, ...]]]] = [
    ("prose", "Hello, world.", [("text", "Hello, world.")]),
    ("hermes", HERMES, [("call", "Bash", {"command": "ls -la"}, "hermes")]),
    (
        "hermes with text before",
        "I will list.\n\n" + HERMES,
        [("text", "I will list."), ("call", "Bash", {"command": "ls -la"}, "hermes")],
    ),
    (
        "hermes, arguments as a string",
        HERMES_STRING_ARGS,
        [("call", "Bash", {"command": "ls"}, "hermes")],
    ),
    (
        "hermes, broken JSON",
        '<tool_call>{"name": "Bash", "arguments": {"command": "ls",}}</tool_call>',
        [("call", "Bash", {"command": "ls"}, "hermes")],
    ),
    (
        "hermes, cut before the closing tag",
        '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}',
        [("call", "Bash", {"command": "ls"}, "hermes")],
    ),
    (
        "two hermes calls",
        TWO_CALLS,
        [
            ("call", "Bash", {"command": "ls -la"}, "hermes"),
            ("call", "Read", {"file_path": "a"}, "hermes"),
        ],
    ),
    (
        "qwen xml, typed by the schema",
        QWEN_XML,
        [("call", "Bash", {"command": "ls -la", "timeout": 30}, "qwen_xml")],
    ),
    (
        "qwen xml without <tool_call>",
        QWEN_BARE,
        [("call", "Read", {"file_path": "/tmp/a.txt"}, "qwen_xml")],
    ),
    ("llama <function=>", LLAMA, [("call", "Bash", {"command": "pwd"}, "function")]),
    (
        "fenced json",
        FENCED,
        [("text", "Let me look."), ("call", "Read", {"file_path": "/etc/hosts"}, "fenced_json")],
    ),
    (
        "fenced json, parameters key",
        FENCED_PARAMETERS,
        [("call", "Bash", {"command": "date"}, "fenced_json")],
    ),
    (
        "openai namespace",
        '<tool_call>{"name": "functions.Bash", "arguments": {"command": "id"}}</tool_call>',
        [("call", "Bash", {"command": "id"}, "hermes")],
    ),
    (
        "text after the call",
        LLAMA + "\nDone.",
        [("call", "Bash", {"command": "pwd"}, "function"), ("text", "\nDone.")],
    ),
    (
        "fenced json, trailing whitespace",
        FENCED_PARAMETERS + "\n\n",
        [("call", "Bash", {"command": "date"}, "fenced_json")],
    ),
    (
        "two fenced calls",
        FENCED_PARAMETERS + "\n" + FENCED_PARAMETERS,
        [
            ("call", "Bash", {"command": "date"}, "fenced_json"),
            ("call", "Bash", {"command": "date"}, "fenced_json"),
        ],
    ),
    (
        "fenced call, then a tagged call",
        FENCED_PARAMETERS + "\n" + LLAMA,
        [
            ("call", "Bash", {"command": "date"}, "fenced_json"),
            ("call", "Bash", {"command": "pwd"}, "function"),
        ],
    ),
    # Not calls: the text comes out exactly as written.
    (
        "fenced json followed by prose is an example",
        FENCED_PARAMETERS + "\nThat is how a call looks.",
        [("text", FENCED_PARAMETERS + "\nThat is how a call looks.")],
    ),
    (
        "undeclared tool",
        '<tool_call>{"name": "Write", "arguments": {}}</tool_call>',
        [("text", '<tool_call>{"name": "Write", "arguments": {}}</tool_call>')],
    ),
    (
        "python fence",
        "Code:\n```python\nprint(1)\n```\nok",
        [("text", "Code:\n```python\nprint(1)\n```\nok")],
    ),
    ("json fence that is data", '```json\n{"a": 1}\n```', [("text", '```json\n{"a": 1}\n```')]),
    ("html and comparisons", "a < b, <b>bold</b>, `x`", [("text", "a < b, <b>bold</b>, `x`")]),
    ("an opener prefix at the end", "see <tool_", [("text", "see <tool_")]),
    ("trailing whitespace kept", "ends with space  \n", [("text", "ends with space  \n")]),
    (
        "xml example without a declared name",
        "<function=foo>bar</function>",
        [("text", "<function=foo>bar</function>")],
    ),
]


def merged(pieces: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for piece in pieces:
        if piece[0] == "text" and out and out[-1][0] == "text":
            out[-1] = ("text", out[-1][1] + piece[1])
        else:
            out.append(piece)
    return out


def scan(text: str, cuts: list[int]) -> list[tuple[Any, ...]]:
    scanner = TextCallScanner(tool_repair().schemas)
    pieces: list[tuple[Any, ...]] = []
    previous = 0
    for cut in [*cuts, len(text)]:
        pieces += scanner.feed(text[previous:cut])
        previous = cut
    return merged(pieces + scanner.finish())


@pytest.mark.parametrize(("text", "expected"), [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_text_calls_whole(text: str, expected: list[tuple[Any, ...]]) -> None:
    assert scan(text, []) == expected


@pytest.mark.parametrize(("text", "expected"), [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_text_calls_split_at_every_position(text: str, expected: list[tuple[Any, ...]]) -> None:
    for cut in range(1, len(text)):
        assert scan(text, [cut]) == expected, f"split at {cut}: {text[:cut]!r} | {text[cut:]!r}"


@pytest.mark.parametrize(("text", "expected"), [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_text_calls_one_character_at_a_time(text: str, expected: list[tuple[Any, ...]]) -> None:
    assert scan(text, list(range(1, len(text)))) == expected


def test_prose_is_released_at_once() -> None:
    """Only a possible opener and trailing whitespace are held: prose is not delayed."""
    scanner = TextCallScanner(tool_repair().schemas)
    assert scanner.feed("Hello ") == [("text", "Hello")]
    assert scanner.feed("world <") == [("text", " world")]
    assert scanner.feed("b>") == [("text", " <b>")]


# -- the non-streamed answer ------------------------------------------------------------------


def completion(
    content: str | None, tool_calls: list[JSON] | None = None, finish: str = "stop"
) -> JSON:
    message: JSON = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {"id": "gen-1", "choices": [{"message": message, "finish_reason": finish}], "usage": {}}


def call(name: str, arguments: str, call_id: str = "call_1") -> JSON:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_message_broken_arguments_repaired() -> None:
    repair = tool_repair()
    message = to_anthropic_message(
        completion(None, [call("Bash", "{'command': 'ls',}")], "tool_calls"),
        model="m",
        repair=repair,
    )
    assert message["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}}
    ]
    assert repair.names == ["tool_arguments"]
    assert repair.invalid == []


def test_message_unrepairable_arguments_are_visible() -> None:
    repair = tool_repair()
    message = to_anthropic_message(
        completion(None, [call("Bash", "ls -la")], "tool_calls"), model="m", repair=repair
    )
    assert message["content"][0]["input"] == {"raw_input": "ls -la"}
    assert repair.names == ["tool_arguments:unrepairable"]
    assert repair.invalid == ["Bash: (root): required"]


def test_message_text_call_becomes_tool_use() -> None:
    repair = tool_repair()
    message = to_anthropic_message(
        completion("I will list.\n\n" + HERMES), model="m", repair=repair
    )
    assert message["stop_reason"] == "tool_use"
    text, tool = message["content"]
    assert text == {"type": "text", "text": "I will list."}
    assert tool["type"] == "tool_use" and tool["id"].startswith("toolu_")
    assert (tool["name"], tool["input"]) == ("Bash", {"command": "ls -la"})
    assert repair.names == ["text_tool_call:hermes"]


def test_message_without_repair_is_unchanged() -> None:
    message = to_anthropic_message(completion(HERMES), model="m")
    assert message["content"] == [{"type": "text", "text": HERMES}]
    assert message["stop_reason"] == "end_turn"


def test_message_prose_keeps_its_stop_reason() -> None:
    repair = tool_repair()
    message = to_anthropic_message(
        completion("Just text.", finish="length"), model="m", repair=repair
    )
    assert (message["content"], message["stop_reason"]) == (
        [{"type": "text", "text": "Just text."}],
        "max_tokens",
    )
    assert repair.names == []


# (id, tool, input, counted as invalid)
SCHEMA_CASES: list[tuple[str, str, JSON, list[str]]] = [
    ("valid", "Bash", {"command": "ls"}, []),
    (
        "missing required",
        "Bash",
        {"timeout": 3},
        ["Bash: (root): required"],
    ),
    (
        "wrong type",
        "Read",
        {"file_path": "a", "limit": "ten"},
        ["Read: limit: type"],
    ),
    ("unknown tool: nothing to check", "Other", {}, []),
]


@pytest.mark.parametrize(
    ("name", "tool_input", "invalid"),
    [c[1:] for c in SCHEMA_CASES],
    ids=[c[0] for c in SCHEMA_CASES],
)
def test_schema_check_counts(name: str, tool_input: JSON, invalid: list[str]) -> None:
    repair = tool_repair()
    repair.check(name, tool_input)
    assert repair.invalid == invalid


def test_schema_that_cannot_be_evaluated_checks_nothing() -> None:
    repair = ToolRepair.for_request(
        {
            "tools": [
                {
                    "name": "X",
                    "input_schema": {
                        "type": "object",
                        "properties": {"a": {"$ref": "https://example.invalid/s.json"}},
                    },
                }
            ]
        }
    )
    assert repair is not None
    repair.check("X", {"a": 1})
    bad = ToolRepair.for_request({"tools": [{"name": "Y", "input_schema": {"type": 5}}]})
    assert bad is not None
    bad.check("Y", {})
    assert repair.invalid == [] and bad.invalid == []


def test_no_declared_tools_no_repair() -> None:
    assert (
        ToolRepair.for_request({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})
        is None
    )
    assert ToolRepair.for_request({}) is None


# -- the streamed answer -----------------------------------------------------------------------


def chunk(delta: JSON, finish: str | None = None) -> JSON:
    return {"id": "gen-1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def stream(chunks: list[JSON], repair: ToolRepair | None) -> list[JSON]:
    translator = StreamTranslator(model="m", message_id="msg_test", repair=repair)
    events = translator.start()
    for item in chunks:
        events += translator.feed(item)
    events += translator.finish()
    check_grammar(events)
    return events


def text_chunks(text: str, size: int) -> list[JSON]:
    return [chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)] + [
        chunk({}, "stop")
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize(("text", "expected"), [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_stream_text_calls(text: str, expected: list[tuple[Any, ...]], size: int) -> None:
    repair = tool_repair()
    message = accumulate(stream(text_chunks(text, size), repair))
    got = [
        ("text", b["text"]) if b["type"] == "text" else ("call", b["name"], b["input"])
        for b in message["content"]
    ]
    assert got == [p[:3] for p in expected]
    calls = [p for p in expected if p[0] == "call"]
    assert message["stop_reason"] == ("tool_use" if calls else "end_turn")
    assert repair.names == list(dict.fromkeys(f"text_tool_call:{p[3]}" for p in calls))


def test_stream_broken_arguments_one_repaired_delta() -> None:
    repair = tool_repair()
    chunks = [
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{'command': "}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "'ls',}"}}]}),
        chunk({}, "tool_calls"),
    ]
    events = stream(chunks, repair)
    deltas = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ['{"command":"ls"}']
    assert accumulate(events)["content"][0]["input"] == {"command": "ls"}
    assert repair.names == ["tool_arguments"]


def test_stream_valid_arguments_pass_as_sent() -> None:
    repair = tool_repair()
    chunks = [
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Read", "arguments": '{"file_path": '},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"a"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    events = stream(chunks, repair)
    deltas = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ['{"file_path": "a"}']
    assert repair.names == [] and repair.invalid == []


def test_stream_without_repair_relays_fragments() -> None:
    chunks = [
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": '{"com'},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'mand": "ls"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    deltas = [
        e["delta"]["partial_json"]
        for e in stream(chunks, None)
        if e["type"] == "content_block_delta"
    ]
    assert deltas == ['{"com', 'mand": "ls"}']


def test_stream_text_then_native_call() -> None:
    """Held text goes out before a native tool call that follows it."""
    repair = tool_repair()
    chunks = [
        chunk({"content": "Checking "}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": '{"command": "ls"}'},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
    ]
    message = accumulate(stream(chunks, repair))
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][0]["text"] == "Checking "


def test_stream_invalid_input_counted() -> None:
    repair = tool_repair()
    stream(text_chunks('<function=Read>{"limit": 3}</function>', 5), repair)
    assert repair.invalid == ["Read: (root): required"]


def test_stream_interleaved_parallel_calls_repaired() -> None:
    """Two calls whose fragments alternate (0, 1, 0, 1): each block gets its own arguments,
    held and repaired at its close."""
    repair = tool_repair()

    def frag(index: int, arguments: str, name: str | None = None) -> JSON:
        call: JSON = {"index": index, "function": {"arguments": arguments}}
        if name is not None:
            call.update(id=f"call_{index}", type="function")
            call["function"]["name"] = name
        return chunk({"tool_calls": [call]})

    chunks = [
        frag(0, "{'command': ", "Bash"),
        frag(1, '{"file_path": ', "Read"),
        frag(0, "'ls',}"),
        frag(1, '"a"}'),
        chunk({}, "tool_calls"),
    ]
    message = accumulate(stream(chunks, repair))
    assert [(b["name"], b["input"]) for b in message["content"]] == [
        ("Bash", {"command": "ls"}),
        ("Read", {"file_path": "a"}),
    ]
    assert repair.names == ["tool_arguments"]
