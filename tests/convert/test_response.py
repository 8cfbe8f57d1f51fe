"""`to_anthropic_message`: a non-streaming OpenAI chat completion -> an Anthropic Message."""

from __future__ import annotations

import re
from typing import Any

import pytest

from anthropic_router.convert.response import to_anthropic_message
from anthropic_router.errors import ApiError

JSON = dict[str, Any]

MODEL = "claude-sonnet-4-5"
USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
ANTHROPIC_USAGE = {
    "input_tokens": 10,
    "output_tokens": 3,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
ZERO_USAGE = {
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
LONG_NAME = "a" * 100
LONG_NAME_UP = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_28165978"


def completion(message: JSON, finish_reason: str | None = "stop", **choice: Any) -> JSON:
    return {
        "id": "gen-1",
        "object": "chat.completion",
        "model": "openai/gpt-4o",  # the served model: never echoed to the client
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, **choice}],
        "usage": USAGE,
    }


def call(id: str | None, name: str, arguments: Any) -> JSON:
    out: JSON = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if id is not None:
        out["id"] = id
    return out


def message(
    content: list[JSON],
    stop_reason: str,
    stop_sequence: str | None = None,
    usage: JSON | None = None,
) -> JSON:
    return {
        "id": "msg_gen-1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage or ANTHROPIC_USAGE,
    }


def convert(body: JSON, **kwargs: Any) -> JSON:
    return to_anthropic_message(body, model=MODEL, **kwargs)


# (id, upstream message, finish_reason, expected content, expected stop_reason)
CONTENT_CASES: list[tuple[str, JSON, str | None, list[JSON], str]] = [
    (
        "text",
        {"role": "assistant", "content": "Hi there"},
        "stop",
        [{"type": "text", "text": "Hi there"}],
        "end_turn",
    ),
    (
        "empty text makes no block",
        {"role": "assistant", "content": ""},
        "stop",
        [],
        "end_turn",
    ),
    (
        "null content with tool_calls: no empty text block",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call("call_1", "get_weather", '{"city":"Paris"}')],
        },
        "tool_calls",
        [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "tool_use",
    ),
    (
        "text then tool call",
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [call("call_1", "f", "{}")],
        },
        "tool_calls",
        [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {}},
        ],
        "tool_use",
    ),
    (
        "broken JSON arguments -> raw_input object",
        {"role": "assistant", "content": None, "tool_calls": [call("c", "f", '{"city": "Par')]},
        "tool_calls",
        [{"type": "tool_use", "id": "c", "name": "f", "input": {"raw_input": '{"city": "Par'}}],
        "tool_use",
    ),
    (
        "non-object JSON arguments are wrapped",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                call("c1", "f", "[1, 2]"),
                call("c2", "g", '"text"'),
                call("c3", "h", "7"),
            ],
        },
        "tool_calls",
        [
            {"type": "tool_use", "id": "c1", "name": "f", "input": {"value": [1, 2]}},
            {"type": "tool_use", "id": "c2", "name": "g", "input": {"value": "text"}},
            {"type": "tool_use", "id": "c3", "name": "h", "input": {"value": 7}},
        ],
        "tool_use",
    ),
    (
        "dict arguments are used as they are",
        {"role": "assistant", "content": None, "tool_calls": [call("c", "f", {"a": [1]})]},
        "tool_calls",
        [{"type": "tool_use", "id": "c", "name": "f", "input": {"a": [1]}}],
        "tool_use",
    ),
    (
        "empty, whitespace and missing arguments -> {}",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call("c1", "f", ""), call("c2", "g", "  "), call("c3", "h", None)],
        },
        "tool_calls",
        [
            {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
            {"type": "tool_use", "id": "c2", "name": "g", "input": {}},
            {"type": "tool_use", "id": "c3", "name": "h", "input": {}},
        ],
        "tool_use",
    ),
    (
        "reasoning string -> unsigned thinking before the text",
        {"role": "assistant", "content": "42", "reasoning": "Let me think."},
        "stop",
        [
            {"type": "thinking", "thinking": "Let me think.", "signature": ""},
            {"type": "text", "text": "42"},
        ],
        "end_turn",
    ),
    (
        "reasoning_content (DeepSeek/vLLM/LiteLLM)",
        {"role": "assistant", "content": "42", "reasoning_content": "Hmm."},
        "stop",
        [
            {"type": "thinking", "thinking": "Hmm.", "signature": ""},
            {"type": "text", "text": "42"},
        ],
        "end_turn",
    ),
    (
        "reasoning_details win over the duplicate reasoning string",
        {
            "role": "assistant",
            "content": "42",
            "reasoning": "Let me think.",
            "reasoning_details": [
                {
                    "type": "reasoning.text",
                    "text": "Let me think.",
                    "signature": "SIG1",
                    "format": "anthropic-claude-v1",
                    "index": 0,
                },
                {
                    "type": "reasoning.encrypted",
                    "data": "ENCRYPTED",
                    "format": "anthropic-claude-v1",
                    "index": 1,
                },
            ],
        },
        "stop",
        [
            {"type": "thinking", "thinking": "Let me think.", "signature": "SIG1"},
            {"type": "redacted_thinking", "data": "ENCRYPTED"},
            {"type": "text", "text": "42"},
        ],
        "end_turn",
    ),
    (
        "reasoning.summary and unknown detail types",
        {
            "role": "assistant",
            "content": "ok",
            "reasoning_details": [
                {"type": "reasoning.summary", "summary": "Short summary", "index": 0},
                {"type": "reasoning.future", "whatever": 1},
                "not a dict",
            ],
        },
        "stop",
        [
            {"type": "thinking", "thinking": "Short summary", "signature": ""},
            {"type": "text", "text": "ok"},
        ],
        "end_turn",
    ),
    (
        "thinking before tool calls",
        {
            "role": "assistant",
            "content": None,
            "reasoning": "Need the weather.",
            "tool_calls": [call("c", "get_weather", '{"city":"Oslo"}')],
        },
        "tool_calls",
        [
            {"type": "thinking", "thinking": "Need the weather.", "signature": ""},
            {"type": "tool_use", "id": "c", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "tool_use",
    ),
    (
        "Databricks content list: reasoning summary + text",
        {
            "role": "assistant",
            "content": [
                {
                    "type": "reasoning",
                    "summary": [
                        {"type": "summary_text", "text": "Thinking.", "signature": "DBSIG"},
                        {"type": "summary_text", "text": "More."},
                    ],
                },
                {"type": "text", "text": "final answer"},
                {"type": "text", "text": ""},
            ],
        },
        "stop",
        [
            {"type": "thinking", "thinking": "Thinking.", "signature": "DBSIG"},
            {"type": "thinking", "thinking": "More.", "signature": ""},
            {"type": "text", "text": "final answer"},
        ],
        "end_turn",
    ),
    (
        "refusal -> text block and stop_reason refusal",
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        "stop",
        [{"type": "text", "text": "I can't help with that."}],
        "refusal",
    ),
    (
        "refusal alongside content: content wins",
        {"role": "assistant", "content": "Partial answer", "refusal": "I can't"},
        "stop",
        [{"type": "text", "text": "Partial answer"}],
        "end_turn",
    ),
]


@pytest.mark.parametrize(
    ("upstream_message", "finish_reason", "content", "stop_reason"),
    [case[1:] for case in CONTENT_CASES],
    ids=[case[0] for case in CONTENT_CASES],
)
def test_content(
    upstream_message: JSON, finish_reason: str | None, content: list[JSON], stop_reason: str
) -> None:
    # (not named `upstream`: conftest's autouse fixture would clear a parameter of that name)
    body = completion(upstream_message, finish_reason)
    assert convert(body) == message(content, stop_reason)


# (finish_reason, made tool calls, stop_reason)
FINISH_CASES: list[tuple[str | None, bool, str]] = [
    ("stop", False, "end_turn"),
    ("length", False, "max_tokens"),
    ("tool_calls", True, "tool_use"),
    ("function_call", True, "tool_use"),
    ("content_filter", False, "refusal"),
    (None, False, "end_turn"),
    ("something_new", False, "end_turn"),
    ("end_turn", False, "end_turn"),
    ("max_tokens", False, "max_tokens"),
    ("tool_use", True, "tool_use"),
    ("stop_sequence", False, "stop_sequence"),
    ("pause_turn", False, "pause_turn"),
    ("model_context_window_exceeded", False, "model_context_window_exceeded"),
    # Several providers say "stop" (or nothing) after tool calls: the client must see tool_use.
    ("stop", True, "tool_use"),
    (None, True, "tool_use"),
    ("end_turn", True, "tool_use"),
    # A cut-off tool call is still max_tokens.
    ("length", True, "max_tokens"),
    ("content_filter", True, "refusal"),
]


@pytest.mark.parametrize(("finish_reason", "with_calls", "stop_reason"), FINISH_CASES)
def test_finish_reasons(finish_reason: str | None, with_calls: bool, stop_reason: str) -> None:
    upstream: JSON = {"role": "assistant", "content": "x"}
    content = [{"type": "text", "text": "x"}]
    if with_calls:
        upstream["tool_calls"] = [call("c", "f", "{}")]
        content.append({"type": "tool_use", "id": "c", "name": "f", "input": {}})
    assert convert(completion(upstream, finish_reason)) == message(content, stop_reason)


# (id, extra choice fields, stop_sequences, expected stop_reason, expected stop_sequence)
STOP_SEQUENCE_CASES: list[tuple[str, JSON, list[str] | None, str, str | None]] = [
    (
        "vLLM stop_reason names the string",
        {"stop_reason": "END"},
        ["END", "###"],
        "stop_sequence",
        "END",
    ),
    (
        "native_stop_sequence",
        {"native_stop_sequence": "###"},
        ["END", "###"],
        "stop_sequence",
        "###",
    ),
    ("matched_stop", {"matched_stop": "END"}, ["END"], "stop_sequence", "END"),
    ("a string the client did not ask for", {"stop_reason": "OTHER"}, ["END"], "end_turn", None),
    ("no stop_sequences in the request", {"stop_reason": "END"}, None, "end_turn", None),
    ("vLLM token id instead of a string", {"stop_reason": 128009}, ["END"], "end_turn", None),
]


@pytest.mark.parametrize(
    ("choice", "stops", "stop_reason", "stop_sequence"),
    [case[1:] for case in STOP_SEQUENCE_CASES],
    ids=[case[0] for case in STOP_SEQUENCE_CASES],
)
def test_stop_sequence(
    choice: JSON, stops: list[str] | None, stop_reason: str, stop_sequence: str | None
) -> None:
    body = completion({"role": "assistant", "content": "x"}, "stop", **choice)
    assert convert(body, stop_sequences=stops) == message(
        [{"type": "text", "text": "x"}], stop_reason, stop_sequence
    )


# (id, upstream usage, Anthropic usage)
USAGE_CASES: list[tuple[str, Any, JSON]] = [
    ("plain", USAGE, ANTHROPIC_USAGE),
    (
        "cached tokens are subtracted from input",
        {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 30},
        },
        {
            "input_tokens": 70,
            "output_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 30,
        },
    ),
    (
        "cache writes are subtracted too (OpenRouter)",
        {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 20},
            "completion_tokens_details": {"reasoning_tokens": 4},
        },
        {
            "input_tokens": 50,
            "output_tokens": 7,
            "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 30,
        },
    ),
    (
        "Anthropic-named cache fields (LiteLLM)",
        {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "cache_read_input_tokens": 40,
            "cache_creation_input_tokens": 10,
        },
        {
            "input_tokens": 50,
            "output_tokens": 7,
            "cache_creation_input_tokens": 10,
            "cache_read_input_tokens": 40,
        },
    ),
    (
        "input is clamped at zero",
        {
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 30},
        },
        {
            "input_tokens": 0,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 30,
        },
    ),
    (
        "null details and non-integer values count as zero",
        {
            "prompt_tokens": 9,
            "completion_tokens": None,
            "prompt_tokens_details": None,
            "total_tokens": "9",
        },
        {
            "input_tokens": 9,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    ),
    ("booleans are not counts", {"prompt_tokens": True, "completion_tokens": False}, ZERO_USAGE),
    ("null usage -> zeros", None, ZERO_USAGE),
    ("empty usage -> zeros", {}, ZERO_USAGE),
]


@pytest.mark.parametrize(
    ("usage", "expected"), [case[1:] for case in USAGE_CASES], ids=[c[0] for c in USAGE_CASES]
)
def test_usage(usage: Any, expected: JSON) -> None:
    body = completion({"role": "assistant", "content": "x"})
    body["usage"] = usage
    assert convert(body)["usage"] == expected


def test_missing_usage_key() -> None:
    body = completion({"role": "assistant", "content": "x"})
    del body["usage"]
    assert convert(body) == message([{"type": "text", "text": "x"}], "end_turn", usage=ZERO_USAGE)


# -- errors ----------------------------------------------------------------------------------

# (id, upstream body, error type, message, retryable)
ERROR_CASES: list[tuple[str, JSON, str, str, bool]] = [
    (
        "finish_reason error without details",
        {"choices": [{"index": 0, "message": {"content": "part"}, "finish_reason": "error"}]},
        "api_error",
        "upstream error: generation failed",
        False,
    ),
    (
        "finish_reason error with a choice error",
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"content": "partial"},
                    "finish_reason": "error",
                    "error": {"code": 429, "message": "Rate limited upstream"},
                }
            ]
        },
        "rate_limit_error",
        "Rate limited upstream",
        True,
    ),
    (
        "finish_reason error with a top-level error",
        {
            "error": {"code": 502, "message": "Provider returned error"},
            "choices": [{"index": 0, "message": {"content": ""}, "finish_reason": "error"}],
        },
        "api_error",
        "upstream error: Provider returned error",
        False,
    ),
    (
        "empty choices",
        {"id": "gen-1", "choices": []},
        "api_error",
        "upstream returned no choices",
        False,
    ),
    ("no choices key", {"id": "gen-1"}, "api_error", "upstream returned no choices", False),
    (
        "choices not a list",
        {"choices": {"0": {}}},
        "api_error",
        "upstream returned no choices",
        False,
    ),
    (
        "choice not an object",
        {"choices": ["text"]},
        "api_error",
        "upstream returned no choices",
        False,
    ),
    (
        "error envelope 429",
        {"error": {"code": 429, "message": "slow down"}},
        "rate_limit_error",
        "slow down",
        True,
    ),
    (
        "error envelope with the code as a string (LiteLLM)",
        {"error": {"code": "429", "message": "slow down", "type": "rate_limit"}},
        "rate_limit_error",
        "slow down",
        True,
    ),
    (
        "error envelope 503",
        {"error": {"code": 503, "message": "no provider"}},
        "overloaded_error",
        "no provider",
        True,
    ),
    (
        "error_type provider_overloaded",
        {
            "error": {
                "code": 502,
                "message": "busy",
                "metadata": {"error_type": "provider_overloaded"},
            }
        },
        "overloaded_error",
        "busy",
        True,
    ),
    (
        "error envelope 408",
        {"error": {"code": 408, "message": "too slow"}},
        "timeout_error",
        "too slow",
        True,
    ),
    (
        "error_type timeout",
        {"error": {"code": 500, "message": "t/o", "metadata": {"error_type": "timeout"}}},
        "timeout_error",
        "t/o",
        True,
    ),
    (
        "context length",
        {
            "error": {
                "code": 400,
                "message": "This endpoint's maximum context length is 8192 tokens",
                "metadata": {"error_type": "context_length_exceeded"},
            }
        },
        "invalid_request_error",
        "prompt is too long: This endpoint's maximum context length is 8192 tokens",
        False,
    ),
    (
        "error envelope 400",
        {"error": {"code": 400, "message": "bad"}},
        "invalid_request_error",
        "upstream error: bad",
        False,
    ),
    (
        "error envelope 401",
        {"error": {"code": 401, "message": "No auth credentials found"}},
        "authentication_error",
        "upstream error: No auth credentials found",
        False,
    ),
    (
        "error envelope 402",
        {"error": {"code": 402, "message": "Insufficient credits"}},
        "billing_error",
        "upstream error: Insufficient credits",
        False,
    ),
    (
        "error envelope 403 (moderation)",
        {"error": {"code": 403, "message": "flagged", "metadata": {"reasons": ["x"]}}},
        "permission_error",
        "upstream error: flagged",
        False,
    ),
    (
        "error envelope 500",
        {"error": {"code": 500, "message": "boom"}},
        "api_error",
        "upstream error: boom",
        False,
    ),
    (
        "string error code (streaming guide's server_error)",
        {"error": {"code": "server_error", "message": "boom"}},
        "api_error",
        "upstream error: boom",
        False,
    ),
    (
        "error without a message",
        {"error": {"code": 500}},
        "api_error",
        "upstream error: upstream error",
        False,
    ),
    ("error as a string", {"error": "boom"}, "api_error", "upstream error: boom", False),
]


@pytest.mark.parametrize(
    ("body", "error_type", "text", "retryable"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_errors(body: JSON, error_type: str, text: str, retryable: bool) -> None:
    with pytest.raises(ApiError) as caught:
        convert(body)
    assert (caught.value.error_type, caught.value.message, caught.value.retryable) == (
        error_type,
        text,
        retryable,
    )


def test_error_key_with_choices_is_not_an_error() -> None:
    """Some routes attach an informational `error: null` or leave an error next to a good
    choice; only a finish_reason of error or missing choices fail the request."""
    body = completion({"role": "assistant", "content": "fine"})
    body["error"] = None
    assert convert(body) == message([{"type": "text", "text": "fine"}], "end_turn")


# -- model echo and ids ----------------------------------------------------------------------


def test_model_is_the_clients() -> None:
    body = completion({"role": "assistant", "content": "x"})
    body["model"] = "anthropic/claude-3.5-sonnet:fallback-provider"
    assert convert(body)["model"] == MODEL


# (id, upstream completion id, expected message id)
MESSAGE_ID_CASES = [
    ("gen id is prefixed", "gen-1749-abc", "msg_gen-1749-abc"),
    ("chatcmpl id is prefixed", "chatcmpl-9x", "msg_chatcmpl-9x"),
    ("msg_ id is kept", "msg_01ABC", "msg_01ABC"),
]


@pytest.mark.parametrize(
    ("upstream_id", "expected"),
    [case[1:] for case in MESSAGE_ID_CASES],
    ids=[case[0] for case in MESSAGE_ID_CASES],
)
def test_message_id(upstream_id: str, expected: str) -> None:
    body = completion({"role": "assistant", "content": "x"})
    body["id"] = upstream_id
    assert convert(body)["id"] == expected


@pytest.mark.parametrize("upstream_id", [None, ""])
def test_missing_message_id_is_generated(upstream_id: str | None) -> None:
    body = completion({"role": "assistant", "content": "x"})
    body["id"] = upstream_id
    assert re.fullmatch(r"msg_[0-9a-f]{24}", convert(body)["id"])


def test_tool_ids_are_sanitised_and_unique() -> None:
    upstream = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            call("functions.Bash:0", "Bash", '{"command":"ls"}'),
            call("call_abc", "f", "{}"),
            call("call_abc", "f", "{}"),  # some providers repeat ids across parallel calls
            call("0", "g", "{}"),
            call("tool__thought__sig==", "g", "{}"),
        ],
    }
    result = convert(completion(upstream, "tool_calls"))
    assert [block["id"] for block in result["content"]] == [
        "functions_Bash_0",
        "call_abc",
        "call_abc_",
        "0",
        "tool__thought__sig__",
    ]


@pytest.mark.parametrize("upstream_id", [None, ""])
def test_missing_tool_id_is_generated(upstream_id: str | None) -> None:
    upstream = {"role": "assistant", "content": None, "tool_calls": [call(upstream_id, "f", "{}")]}
    block = convert(completion(upstream, "tool_calls"))["content"][0]
    assert re.fullmatch(r"toolu_[0-9a-f]{24}", block["id"])


def test_tool_names_are_mapped_back() -> None:
    upstream = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            call("c1", LONG_NAME_UP, '{"x":1}'),
            call("c2", "my_tool_bca2c361", "{}"),
            call("c3", "unknown_to_the_map", "{}"),
        ],
    }
    result = convert(
        completion(upstream, "tool_calls"),
        tool_names={LONG_NAME_UP: LONG_NAME, "my_tool_bca2c361": "my.tool"},
    )
    assert result["content"] == [
        {"type": "tool_use", "id": "c1", "name": LONG_NAME, "input": {"x": 1}},
        {"type": "tool_use", "id": "c2", "name": "my.tool", "input": {}},
        {"type": "tool_use", "id": "c3", "name": "unknown_to_the_map", "input": {}},
    ]
