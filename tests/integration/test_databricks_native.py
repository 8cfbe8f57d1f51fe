"""Claude endpoints on Databricks' native Anthropic route: the request passes through
untranslated (model renamed, extension fields dropped), the answer comes back with the
client's model name. A loopback upstream speaks the Anthropic Messages wire format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from support import native, replies
from support.router import RouterProcess
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

PAT = "dapi-test-token-0000"
NATIVE_PATH = "/serving-endpoints/anthropic/v1/messages"
USER_HI = [{"role": "user", "content": "hi"}]
USAGE = {"input_tokens": 12, "output_tokens": 5, "cache_read_input_tokens": 4}


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_dbx_1",
        "type": "message",
        "role": "assistant",
        "model": "databricks-claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": USAGE,
    }


@pytest.fixture(scope="module")
def native_router(upstream: FakeUpstream) -> Iterator[RouterProcess]:
    env = {
        "PROXY_BACKEND": "AZURE_DATABRICKS",
        "DATABRICKS_HOST": upstream.url,
        "DATABRICKS_PAT": PAT,
        "OPENROUTER_API_KEY": None,
    }
    with RouterProcess(None, env) as process:
        yield process


@pytest.fixture
def sdk(native_router: RouterProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=native_router.url, api_key="k", max_retries=0) as client:
        yield client


def test_request_passes_through_and_model_is_renamed(native_router, upstream: FakeUpstream):
    upstream.enqueue(replies.json_reply(message([{"type": "text", "text": "Hello"}])))
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2000,
        "system": [
            {
                "type": "text",
                "text": "Be brief.",
                "cache_control": {"type": "ephemeral", "scope": "global"},
            }
        ],
        "messages": USER_HI,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "Read", "input_schema": {"type": "object", "$defs": {}}}],
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "min_p": 0.2,
    }
    headers = {"anthropic-beta": "context-management-2025-06-27", "anthropic-version": "2023-06-01"}
    response = httpx.post(f"{native_router.url}/v1/messages?beta=true", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        **message([{"type": "text", "text": "Hello"}]),
        "model": "claude-sonnet-4-5",
    }
    assert response.headers["x-anthropic-router-backend"] == "databricks"
    assert response.headers["x-anthropic-router-upstream-model"] == "databricks-claude-sonnet-4-5"
    assert response.headers["x-anthropic-router-dropped"] == "field:min_p"
    seen = upstream.last
    assert seen.path == NATIVE_PATH
    assert seen.headers["authorization"] == f"Bearer {PAT}"
    assert seen.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    expected = {k: v for k, v in body.items() if k != "min_p"}
    assert seen.json == {**expected, "model": "databricks-claude-sonnet-4-5"}


def test_stream_relays_thinking_and_tool_use(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    thinking = {"type": "thinking", "thinking": "", "signature": ""}
    tool = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}
    upstream.enqueue(
        replies.sse(
            native.anthropic_events(
                [
                    (
                        thinking,
                        [
                            {"type": "thinking_delta", "thinking": "Look at a.txt"},
                            {"type": "signature_delta", "signature": "sig-9"},
                        ],
                    ),
                    (tool, [{"type": "input_json_delta", "partial_json": '{"path": "a.txt"}'}]),
                ],
                stop_reason="tool_use",
                output_tokens=9,
            ),
            done=False,
        )
    )
    with sdk.messages.stream(model="claude-haiku-4-5", max_tokens=3000, messages=USER_HI) as s:
        final = s.get_final_message()
    assert final.model == "claude-haiku-4-5"
    assert final.content[0].type == "thinking" and final.content[0].signature == "sig-9"
    assert final.content[1].type == "tool_use" and final.content[1].input == {"path": "a.txt"}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 9
    assert upstream.last.json["model"] == "databricks-claude-haiku-4-5"
    assert upstream.last.json["stream"] is True


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (replies.truncated_sse, "upstream connection lost"),
        (lambda events: replies.sse(events, done=False), "ended before message_stop"),
    ],
    ids=["connection cut", "clean end without message_stop"],
)
def test_stream_ending_early_is_an_error_event(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, reply: Any, message: str
):
    text = {"type": "text", "text": ""}
    events = native.anthropic_events([(text, [{"type": "text_delta", "text": "par"}])])
    upstream.enqueue(reply(events[:4]))
    with (
        pytest.raises(anthropic.APIError, match=message),
        sdk.messages.stream(model="claude-haiku-4-5", max_tokens=30, messages=USER_HI) as s,
    ):
        s.get_final_message()


def test_native_errors_keep_their_type(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    upstream.enqueue(*[replies.json_reply(overloaded, status=529)] * 3)
    with pytest.raises(anthropic.InternalServerError, match="busy") as caught:
        sdk.messages.create(model="claude-haiku-4-5", max_tokens=30, messages=USER_HI)
    assert caught.value.status_code == 529
    bad = {"error_code": "BAD_REQUEST", "message": "max_tokens too large"}
    upstream.enqueue(replies.json_reply(bad, status=400))
    with pytest.raises(anthropic.BadRequestError, match="max_tokens too large"):
        sdk.messages.create(model="claude-haiku-4-5", max_tokens=30, messages=USER_HI)


def test_non_claude_endpoints_use_the_chat_route(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    upstream.enqueue(replies.completion("llama says hi"))
    message = sdk.messages.create(
        model="databricks-meta-llama-3-3-70b-instruct", max_tokens=30, messages=USER_HI
    )
    assert message.content[0].text == "llama says hi"
    seen = upstream.last
    assert seen.path == "/serving-endpoints/databricks-meta-llama-3-3-70b-instruct/invocations"
    assert "model" not in seen.json and seen.json["messages"] == USER_HI


def test_models_list_includes_serving_endpoints(sdk: anthropic.Anthropic, upstream: FakeUpstream):
    endpoints = {
        "endpoints": [
            {"name": "databricks-claude-opus-4-1", "state": {"ready": "READY"}},
            {"name": "my-finetune", "creation_timestamp": 1700000000000},
        ]
    }
    upstream.enqueue(replies.json_reply(endpoints), path="/api/2.0/serving-endpoints")
    ids = [model.id for model in sdk.models.list(limit=100)]
    assert {"databricks-claude-opus-4-1", "my-finetune"} <= set(ids)
    assert upstream.last.headers["authorization"] == f"Bearer {PAT}"
