"""Issue 5, proof: property-based fuzzing of the request path through the real server.

hypothesis generates request bodies (valid ones, valid ones with one field replaced by junk,
arbitrary JSON and non-JSON bytes) and sends each with httpx to a RouterProcess in front of a
FakeUpstream that answers with its default replies: no upstream fault is scripted, so any 5xx
or unreadable answer is the router's own fault.

Properties, for every generated request:
  * the status is never 5xx;
  * every non-2xx answer is `{"type":"error","error":{"type":str,"message":str}}` (JSON);
  * every 200 JSON answer is a valid Message (count_tokens: `{"input_tokens": n}`);
  * every 200 stream is a valid Anthropic event grammar ending in message_stop;
  * the router logged no error record / traceback (checked once the run is over).

The three defects this fuzzer found (control characters copied into response headers, a
negative thinking budget, a numeric search_result content) are fixed; their minimal repros
stay at the end of this file as regression tests.

Default: 300 examples (part of `bash scripts/test.sh`). Long mode, run once for the report:
    FUZZ_EXAMPLES=10000 python -m pytest tests/reliability/test_fuzz.py -p no:cacheprovider \
        --hypothesis-show-statistics
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from reliability.shapes import (
    check_error_body,
    check_message,
    check_stream,
    log_errors,
    parse_sse,
)
from support.router import RouterProcess
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))

# -- values -------------------------------------------------------------------------------

TRICKY_TEXT = [
    "",
    " ",
    "\x00",
    "\u202e\u200b",
    "😀" * 3,
    "null",
    "<script>alert(1)</script>",
    "{{system}}",
    "data: [DONE]\n\n",
    "event: error\ndata: {}\n\n",
]
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(TRICKY_TEXT),
    st.integers(1_000, 8_000).map(lambda n: "x" * n),
)
names = st.text(min_size=1, max_size=30)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**64, 1e308, -0.0, 5e-324]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


def sometimes_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `strategy`, sometimes any JSON value in its place."""
    return st.one_of(strategy, strategy, strategy, junk)


# -- Anthropic shapes ---------------------------------------------------------------------
# "valid" bodies pass the router's edge checks (model, max_tokens, messages, roles, block
# `type` strings, typed optional fields), which are deliberately loose: everything inside a
# block, tool or option may still be junk, and that is what the conversion has to survive.

MODELS = [
    "claude-sonnet-4-5",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-8",
    "claude-3-5-sonnet-latest",
    "openai/gpt-4o",
    "anthropic/claude-sonnet-4",
    "gpt-4o-mini",
]
ROLES = ["user", "assistant", "system", "tool", "developer"]
BLOCK_TYPES = [
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "search_result",
    "server_tool_use",
    "web_search_tool_result",
    "container_upload",
    "mcp_tool_use",
]
MEDIA_TYPES = [
    "image/png",
    "image/jpeg",
    "image/jpg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "application/pdf",
    "text/plain",
]
BASE64 = ["iVBORw0KGgo=", "R0lGODlhAQABAAAAACw=", "", "%%%", "QUJD" * 50]
URLS = ["https://example.com/a.png", "http://x", "file:///etc/passwd", "ftp:/", ""]

cache_control = st.one_of(
    st.just({"type": "ephemeral"}),
    st.fixed_dictionaries(
        {"type": sometimes_junk(st.sampled_from(["ephemeral", "persistent"]))},
        optional={"ttl": sometimes_junk(st.sampled_from(["5m", "1h", "forever"]))},
    ),
    junk,
)
source = st.fixed_dictionaries(
    {"type": sometimes_junk(st.sampled_from(["base64", "url", "file", "text", "content"]))},
    optional={
        "media_type": sometimes_junk(st.sampled_from(MEDIA_TYPES)),
        "data": sometimes_junk(st.sampled_from(BASE64) | texts),
        "url": sometimes_junk(st.sampled_from(URLS)),
        "file_id": texts,
        "content": junk,
    },
)


def block_fields(kind: str, children: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    """The fields a block of `kind` has, each sometimes junk."""
    fields: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "text": {"text": texts, "citations": junk},
        "image": {"source": source},
        "document": {"source": source, "title": texts, "context": texts, "citations": junk},
        "tool_use": {"id": texts, "name": texts, "input": junk},
        "server_tool_use": {"id": texts, "name": texts, "input": junk},
        "mcp_tool_use": {"id": texts, "name": texts, "input": junk, "server_name": texts},
        "tool_result": {
            "tool_use_id": texts,
            "content": st.one_of(texts, st.lists(children, max_size=3)),
            "is_error": st.booleans(),
        },
        "thinking": {"thinking": texts, "signature": texts},
        "redacted_thinking": {"data": texts},
        "search_result": {
            "source": texts,
            "title": texts,
            "content": st.lists(children, max_size=2),
        },
        "web_search_tool_result": {"tool_use_id": texts, "content": junk},
        "container_upload": {"file_id": texts},
    }
    return {name: sometimes_junk(s) for name, s in fields.get(kind, {}).items()}


def blocks(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    def of_kind(kind: str) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {"type": st.just(kind)},
            optional={**block_fields(kind, children), "cache_control": cache_control},
        )

    known = st.sampled_from(BLOCK_TYPES).flatmap(of_kind)
    unknown = st.fixed_dictionaries({"type": texts}, optional={"text": texts, "data": junk})
    return st.one_of(known, known, known, unknown)


leaf_block = blocks(st.fixed_dictionaries({"type": st.just("text"), "text": texts}))
block = blocks(leaf_block)
content = st.one_of(texts, st.lists(block, max_size=4), st.lists(block, min_size=1, max_size=4))
message = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(ROLES), st.sampled_from(ROLES), texts), "content": content},
    optional={"name": junk, "cache_control": cache_control},
)
schema = st.one_of(
    st.just({"type": "object", "properties": {"command": {"type": "string"}}}),
    st.fixed_dictionaries(
        {"type": sometimes_junk(st.just("object"))},
        optional={"properties": st.dictionaries(texts, junk, max_size=3), "required": junk},
    ),
    st.dictionaries(st.text(max_size=10), junk, max_size=4),
)
tool = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["Bash", "Read", "web_search", "x" * 200]), names)},
    optional={
        "description": sometimes_junk(texts),
        "input_schema": schema,
        "type": sometimes_junk(
            st.sampled_from(["custom", "web_search_20250305", "bash_20250124", "computer_20250124"])
        ),
        "cache_control": cache_control,
        "max_uses": junk,
        "strict": junk,
    },
)
tool_choice = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["auto", "any", "tool", "none"]), texts)},
    optional={"name": sometimes_junk(texts), "disable_parallel_tool_use": junk},
)
thinking = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["enabled", "disabled", "adaptive"]), texts)},
    optional={"budget_tokens": sometimes_junk(numbers), "display": junk},
)
valid_body = st.fixed_dictionaries(
    {
        "model": st.one_of(st.sampled_from(MODELS), st.sampled_from(MODELS), names),
        "max_tokens": st.one_of(
            st.integers(min_value=1, max_value=64_000), st.integers(0, 2**63 - 1)
        ),
        "messages": st.lists(message, min_size=1, max_size=4),
    },
    optional={
        "stream": st.booleans(),
        "system": st.one_of(texts, st.lists(block, max_size=3)),
        "temperature": numbers,
        "top_p": numbers,
        "top_k": st.integers(),
        "stop_sequences": st.lists(texts, max_size=4),
        "tools": st.lists(tool, max_size=3),
        "tool_choice": tool_choice,
        "thinking": thinking,
        "metadata": st.dictionaries(st.sampled_from(["user_id", "x"]), junk, max_size=2),
        "output_config": st.dictionaries(
            st.sampled_from(["effort", "format", "x"]), junk, max_size=2
        ),
        "service_tier": junk,
        "context_management": junk,
        "mcp_servers": junk,
        "container": junk,
        "anthropic_version": junk,
    },
)


@st.composite
def mutated_body(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one field removed or replaced by any JSON value."""
    body = dict(draw(valid_body))
    name = draw(st.sampled_from([*body, "model", "max_tokens", "messages", "stream", "system"]))
    if draw(st.booleans()):
        body.pop(name, None)
    else:
        body[name] = draw(junk)
    return body


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


NOT_JSON = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"just a string"',
    b'{"model": NaN, "max_tokens": 1, "messages": []}',
    b'{"model": "m", "max_tokens": 1e400, "messages": []}',
    b'\xef\xbb\xbf{"model": "m"}',
    b'{"model": "m"} trailing',
    b'{"model": "\\ud800", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}',
    '{"model": "m"}'.encode("utf-16"),
]
payloads = st.one_of(
    valid_body.map(lambda b: ("valid", encode(b))),
    valid_body.map(lambda b: ("valid", encode(b))),
    valid_body.map(lambda b: ("valid", encode(b))),
    mutated_body().map(lambda b: ("mutated", encode(b))),
    mutated_body().map(lambda b: ("mutated", encode(b))),
    junk.map(lambda v: ("any-json", encode(v))),
    st.binary(max_size=300).map(lambda b: ("bytes", b)),
    st.sampled_from(NOT_JSON).map(lambda b: ("not-json", b)),
)
requests = st.tuples(
    payloads,
    st.sampled_from(["/v1/messages"] * 5 + ["/v1/messages/count_tokens"]),
    st.sampled_from(["application/json", "application/json", "text/plain", None]),
)


# -- the property -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_router(upstream: FakeUpstream) -> Iterator[RouterProcess]:
    with RouterProcess(upstream.url, {"UPSTREAM_MAX_RETRIES": "0"}) as process:
        yield process


@pytest.fixture(scope="module")
def http(fuzz_router: RouterProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_router.url, timeout=30, trust_env=False) as client:
        yield client


FUZZED: list[str] = []  # the paths the property sent, for the no-traceback check


def path_of(request: Any) -> str:
    return str(request[1])


def _event(text: str) -> None:
    """Hypothesis statistics; the regression tests below call `check_answer` outside `@given`."""
    with contextlib.suppress(InvalidArgument):
        event(text)


def check_answer(path: str, response: httpx.Response) -> None:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    content_type = response.headers.get("content-type", "")
    if status != 200:
        assert content_type.startswith("application/json"), content_type
        error = check_error_body(response.json())
        _event(f"error {status} {error['type']}")
        return
    if path.endswith("count_tokens"):
        body = response.json()
        # Anthropic adds `context_management.original_input_tokens` when edits were asked for.
        assert set(body) <= {"input_tokens", "context_management"} and "input_tokens" in body, body
        if "context_management" in body:
            original = body["context_management"].get("original_input_tokens")
            assert isinstance(original, int) and original >= 0, body
        assert isinstance(body["input_tokens"], int) and body["input_tokens"] >= 0, body
        _event("200 count_tokens")
    elif content_type.startswith("text/event-stream"):
        failure = check_stream(parse_sse(response.text))
        assert failure is None, f"stream ended in an error with a healthy upstream: {failure}"
        _event("200 stream")
    else:
        assert content_type.startswith("application/json"), content_type
        check_message(response.json())
        _event("200 message")


@pytest.mark.timeout(max(120, FUZZ_EXAMPLES // 5))  # long mode: ~0.05 s per example
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
@given(request=requests)
def test_fuzzed_requests_get_anthropic_shaped_answers(http, upstream, request):
    FUZZED.append(path_of(request))
    (kind, payload), path, content_type = request
    event(f"kind {kind}")
    headers = {"content-type": content_type} if content_type else {}
    response = http.post(path, content=payload, headers=headers)
    check_answer(path, response)
    upstream.clear()  # keep the fake's record list small over long runs


def test_fuzzing_left_no_traceback(fuzz_router, http, upstream):
    """Nothing the fuzzer sent crashed a handler. Runs after the property (file order); run
    alone, it runs the property first, so it never passes on an idle router."""
    if not FUZZED:
        test_fuzzed_requests_get_anthropic_shaped_answers(http, upstream)
    assert len(FUZZED) >= min(FUZZ_EXAMPLES, 100) // 2
    exchanges = [line for line in fuzz_router.logs().splitlines() if '"event":"exchange"' in line]
    assert len(exchanges) >= len(FUZZED) // 2  # the requests reached the handlers
    errors = log_errors(fuzz_router.logs())
    assert not errors, "\n".join(line[:2000] for line in errors[:5])


# -- bugs the fuzzer found, now fixed: minimal repros kept as regression tests --

USER_HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "openai/gpt-4o\r"},
        {"messages": [{"role": "user", "content": [{"type": "custom\nblock"}]}]},
        {"messages": [{"role": "narrator\x00", "content": "hi"}]},
        {"unknown\nfield": 1},
    ],
    ids=["model-with-slash", "block-type", "role", "top-level-field"],
)
def test_control_characters_never_reach_response_headers(http, fields):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": USER_HI, **fields}
    try:
        response = http.post("/v1/messages", json=body)
    except httpx.RemoteProtocolError as exc:
        raise AssertionError("the router closed the connection without an answer") from exc
    check_answer("/v1/messages", response)


@pytest.mark.parametrize(
    ("budget", "max_tokens", "beta", "message"),
    [
        (-1, 4000, None, "greater than or equal to 1024"),
        (1023, 4000, None, "greater than or equal to 1024"),
        ("2000", 4000, None, "valid integer"),
        (4000, 4000, None, "must be greater than `thinking.budget_tokens`"),
        (5000, 4000, None, "must be greater than `thinking.budget_tokens`"),
    ],
)
def test_a_bad_thinking_budget_is_a_400_naming_the_field(http, budget, max_tokens, beta, message):
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "messages": USER_HI,
        "thinking": {"type": "enabled", "budget_tokens": budget},
    }
    response = http.post("/v1/messages", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]
    assert "budget_tokens" in error["message"]


def test_interleaved_thinking_lets_the_budget_exceed_max_tokens(http):
    """With `interleaved-thinking-2025-05-14` Anthropic allows a budget over max_tokens
    (it spans every thinking block of the turn); Claude Code sends such requests."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4000,
        "messages": USER_HI,
        "thinking": {"type": "enabled", "budget_tokens": 8000},
    }
    headers = {"anthropic-beta": "interleaved-thinking-2025-05-14"}
    response = http.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200


def test_search_result_with_non_list_content_is_not_a_500(http):
    block = {"type": "search_result", "source": "s", "title": "t", "content": 5}
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [block]}],
    }
    check_answer("/v1/messages", http.post("/v1/messages", json=body))
