"""The real server driven by the official Anthropic SDK, against a scripted OpenRouter-like
upstream on loopback: each test asserts what the client got and what the upstream saw."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from support import openai_chunks as oc
from support import replies
from support.router import UPSTREAM_API_KEY
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

USER_HI = [{"role": "user", "content": "hi"}]


def test_text_answer_and_what_upstream_saw(client: anthropic.Anthropic, upstream: FakeUpstream):
    upstream.enqueue(replies.completion("Hello!", usage=oc.usage_dict(20, 3, cached=8)))
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        system="Be brief.",
        messages=USER_HI,
        stop_sequences=["END"],
        metadata={"user_id": "user-1"},
        # SDK 2.x (API version 2026-10-21) no longer takes sampling parameters as arguments.
        extra_body={"temperature": 0.3},
    )
    assert message.content[0].type == "text" and message.content[0].text == "Hello!"
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 12 and message.usage.cache_read_input_tokens == 8
    seen = upstream.last
    assert seen.path == "/api/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_API_KEY}"
    assert seen.headers["x-request-id"].startswith("req_")
    assert seen.json == {
        "model": "anthropic/claude-sonnet-4.5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 100,
        "temperature": 0.3,
        "stop": ["END"],
        "user": "user-1",
    }


def test_stream_accumulates_text_and_usage(client: anthropic.Anthropic, upstream: FakeUpstream):
    chunks = [
        ": OPENROUTER PROCESSING\n\n",
        *oc.text_chunks("Hello there, friend", 4),
        oc.finish_chunk("stop"),
        oc.usage_chunk(30, 7),
    ]
    upstream.enqueue(replies.sse(chunks))
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=USER_HI) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == "Hello there, friend"
    assert final.usage.output_tokens == 7 and final.usage.input_tokens == 30
    seen = upstream.last.json
    assert seen["stream"] is True and seen["model"] == "anthropic/claude-haiku-4.5"


def test_stream_raw_frames_all_carry_event_lines(router, upstream: FakeUpstream):
    upstream.enqueue(replies.sse([*oc.text_chunks("abc", 2), oc.finish_chunk(), oc.usage_chunk()]))
    body = {"model": "claude-opus-4-8", "max_tokens": 10, "messages": USER_HI, "stream": True}
    response = httpx.post(f"{router.url}/v1/messages?beta=true", json=body, timeout=10)
    frames = [f for f in response.text.split("\n\n") if f.strip()]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert all(frame.startswith("event: ") for frame in frames)
    names = [frame.split("\n")[0].removeprefix("event: ") for frame in frames]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    start = json.loads(frames[0].split("data: ", 1)[1])
    assert start["message"]["usage"]["input_tokens"] == 0


def test_tool_loop_streamed_fragments_and_result_replay(
    client: anthropic.Anthropic, upstream: FakeUpstream
):
    args = '{"command": "echo hi", "description": "say hi"}'
    upstream.enqueue(
        replies.sse(
            [
                *oc.text_chunks("Running it.", 2),
                *oc.tool_call_chunks(0, "call_abc:1", "Bash", args, n_pieces=5),
                oc.finish_chunk("tool_calls"),
                oc.usage_chunk(),
            ]
        )
    )
    tools = [
        {
            "name": "Bash",
            "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        }
    ]
    with client.messages.stream(
        model="claude-opus-4-8", max_tokens=100, tools=tools, messages=USER_HI
    ) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    tool_use = first.content[1]
    assert tool_use.type == "tool_use" and tool_use.name == "Bash"
    assert tool_use.input == {"command": "echo hi", "description": "say hi"}
    assert tool_use.id == "call_abc_1"  # sanitised to Anthropic's id alphabet
    upstream.enqueue(replies.completion("It printed hi."))
    history = [
        *USER_HI,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "hi"},
                {"type": "text", "text": "what next?"},
            ],
        },
    ]
    second = client.messages.create(
        model="claude-opus-4-8", max_tokens=100, tools=tools, messages=history
    )
    assert second.content[0].text == "It printed hi."
    sent = upstream.last.json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_abc_1"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == tool_use.input
    assert sent[2] == {"role": "tool", "tool_call_id": "call_abc_1", "content": "hi"}
    assert sent[3] == {"role": "user", "content": "what next?"}
    assert upstream.last.json["tools"][0]["function"]["name"] == "Bash"


def test_parallel_tool_calls_stream(client: anthropic.Anthropic, upstream: FakeUpstream):
    upstream.enqueue(
        replies.sse(
            [
                *oc.tool_call_chunks(0, "call_1", "Read", '{"path": "a.txt"}'),
                *oc.tool_call_chunks(1, "call_2", "Read", '{"path": "b.txt"}'),
                oc.finish_chunk("tool_calls"),
                oc.usage_chunk(),
            ]
        )
    )
    with client.messages.stream(model="claude-opus-4-8", max_tokens=50, messages=USER_HI) as s:
        final = s.get_final_message()
    assert [(b.type, b.id, b.input) for b in final.content] == [
        ("tool_use", "call_1", {"path": "a.txt"}),
        ("tool_use", "call_2", {"path": "b.txt"}),
    ]


def test_reasoning_becomes_thinking_and_is_replayed(
    client: anthropic.Anthropic, upstream: FakeUpstream
):
    details = [{"type": "reasoning.text", "text": "Let me think.", "index": 0}]
    signed = [{"type": "reasoning.text", "text": "", "signature": "sig-123", "index": 0}]
    upstream.enqueue(
        replies.sse(
            [
                oc.chunk({"reasoning": "Let me think.", "reasoning_details": details}),
                oc.chunk({"reasoning_details": signed}),
                *oc.text_chunks("Answer.", 1),
                oc.finish_chunk(),
                oc.usage_chunk(),
            ]
        )
    )
    with client.messages.stream(
        model="claude-opus-4-8",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=USER_HI,
    ) as stream:
        final = stream.get_final_message()
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think."
    assert thinking.signature == "sig-123"
    assert text.text == "Answer."
    assert upstream.last.json["reasoning"] == {"max_tokens": 2000}
    upstream.enqueue(replies.completion("ok"))
    client.messages.create(
        model="claude-opus-4-8",
        max_tokens=4000,
        messages=[
            *USER_HI,
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in final.content],
            },
            {"role": "user", "content": "and?"},
        ],
    )
    assistant = upstream.last.json["messages"][1]
    assert assistant["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "text": "Let me think.",
            "index": 0,
            "signature": "sig-123",
            "format": "anthropic-claude-v1",
        }
    ]
    assert assistant["content"] == "Answer."


def test_claude_code_shapes_are_accepted(router, upstream: FakeUpstream):
    """role:system inside messages, system blocks with cache_control (and `scope`), adaptive
    thinking, effort, context_management, beta header and ?beta=true."""
    upstream.enqueue(replies.completion("fine"))
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 64000,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1"},
            {
                "type": "text",
                "text": "You are Claude.",
                "cache_control": {"type": "ephemeral", "scope": "global"},
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "system", "content": "agent list"},
        ],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "some_future_field": {"x": 1},
    }
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,mid-conversation-system-2026-04-07",
        "x-api-key": "anything",
    }
    response = httpx.post(f"{router.url}/v1/messages?beta=true", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["content"] == [{"type": "text", "text": "fine"}]
    dropped = response.headers["x-anthropic-router-dropped"].split(",")
    assert "context_management" in dropped and "field:some_future_field" in dropped
    assert response.headers["request-id"].startswith("req_")
    sent = upstream.last.json
    assert sent["reasoning"] == {"effort": "high"}
    assert sent["messages"][0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1"},
            {"type": "text", "text": "You are Claude.", "cache_control": {"type": "ephemeral"}},
        ],
    }
    assert sent["messages"][2] == {"role": "system", "content": "agent list"}


def test_images_sent_and_oversize_replaced(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"IMAGE_MAX_SIZE": "100"})
    upstream.enqueue(replies.completion("I see"))
    small = "iVBORw0KGgo="
    big = "A" * 400
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": small}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": big}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {"type": "text", "text": "what is this?"},
    ]
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as sdk:
        raw = sdk.messages.with_raw_response.create(
            model="openai/gpt-4o", max_tokens=10, messages=[{"role": "user", "content": content}]
        )
    assert raw.headers["x-anthropic-router-dropped"] == "image"
    parts = upstream.last.json["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{small}"}}
    assert parts[1]["type"] == "text" and "could not be processed" in parts[1]["text"]
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
    assert upstream.last.json["model"] == "openai/gpt-4o"
    assert "image replaced by a placeholder" in router.logs()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m", "messages": USER_HI}, "max_tokens"),
        ({"max_tokens": 5, "messages": USER_HI}, "model"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        ({"model": "m", "max_tokens": "5", "messages": USER_HI}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user"}]}, "messages.0.content"),
        ({"model": "m", "max_tokens": 5, "messages": USER_HI, "tools": [{}]}, "tools.0.name"),
        ({"model": "m", "max_tokens": 5, "messages": USER_HI, "temperature": "hot"}, "temperature"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(router, upstream: FakeUpstream, body, field):
    response = httpx.post(f"{router.url}/v1/messages", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(field)
    assert response.headers["request-id"] == error["request_id"]
    assert upstream.requests == []


def test_invalid_json_and_oversize_body(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"MAX_REQUEST_BODY": "1000"})
    response = httpx.post(f"{router.url}/v1/messages", content=b"{not json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    big = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 2000}]}
    response = httpx.post(f"{router.url}/v1/messages", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert upstream.requests == []


def test_sdk_error_classes_for_upstream_errors(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"UPSTREAM_MAX_RETRIES": "0"})
    cases = [
        (replies.error(429, "slow down", headers={"retry-after": "7"}), anthropic.RateLimitError),
        (replies.error(401, "bad key"), anthropic.AuthenticationError),
        (replies.error(402, "no credits"), anthropic.APIStatusError),
        (replies.error(403, "flagged"), anthropic.PermissionDeniedError),
        (replies.error(404, "no such model"), anthropic.NotFoundError),
        (replies.error(503, "no provider"), anthropic.APIStatusError),
        (replies.raw(502, b"<html>bad gateway</html>", "text/html"), anthropic.InternalServerError),
    ]
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as sdk:
        for reply, error_class in cases:
            upstream.enqueue(reply)
            with pytest.raises(error_class) as caught:
                sdk.messages.create(model="claude-opus-4-8", max_tokens=5, messages=USER_HI)
            assert caught.value.request_id and caught.value.request_id.startswith("req_")
            assert "test-upstream-key" not in str(caught.value)
    statuses = []
    limited = replies.error(429, "z", headers={"retry-after": "7"})
    for reply in (replies.error(402, "x"), replies.error(503, "y"), limited):
        upstream.enqueue(reply)
        response = httpx.post(
            f"{router.url}/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": USER_HI},
        )
        statuses.append((response.status_code, response.json()["error"]["type"]))
        if response.status_code == 429:
            assert response.headers["retry-after"] == "7"
    assert statuses == [
        (402, "billing_error"),
        (529, "overloaded_error"),
        (429, "rate_limit_error"),
    ]


def test_context_length_error_reads_as_prompt_too_long(client, upstream: FakeUpstream):
    upstream.enqueue(
        replies.error(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 250000 tokens.",
            code="context_length_exceeded",
        )
    )
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-opus-4-8", max_tokens=5, messages=USER_HI)
    assert caught.value.body["error"]["message"].startswith(
        "prompt is too long: 250000 tokens > 128000 maximum"
    )


def test_retry_on_5xx_before_first_byte(client, upstream: FakeUpstream):
    upstream.enqueue(replies.error(500, "boom"), replies.completion("recovered"))
    message = client.messages.create(model="claude-opus-4-8", max_tokens=5, messages=USER_HI)
    assert message.content[0].text == "recovered"
    assert len(upstream.requests) == 2


def test_mid_stream_error_reaches_the_sdk(client, upstream: FakeUpstream):
    error_chunk = {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "error": {"code": 502, "message": "provider died"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    upstream.enqueue(replies.sse([*oc.text_chunks("partial", 1), error_chunk]))
    stream = client.messages.stream(model="claude-opus-4-8", max_tokens=5, messages=USER_HI)
    with pytest.raises(anthropic.APIStatusError) as caught, stream as s:
        s.get_final_message()
    assert "provider died" in str(caught.value)


def test_truncated_stream_is_an_error_not_a_short_answer(client, upstream: FakeUpstream):
    upstream.enqueue(replies.truncated_sse(oc.text_chunks("half an ans", 2)))
    stream = client.messages.stream(model="claude-opus-4-8", max_tokens=5, messages=USER_HI)
    with pytest.raises(anthropic.APIStatusError), stream as s:
        s.get_final_message()


def test_client_auth(router_factory):
    router = router_factory(env={"PROXY_API_KEY": "key-one,key-two"})
    url = f"{router.url}/v1/messages"
    body = {"model": "claude-opus-4-8", "max_tokens": 5, "messages": USER_HI}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"x-api-key": "wrong"}).status_code == 401
    denied = httpx.post(url, json=body, headers={"authorization": "Bearer key-three"})
    assert denied.json()["error"]["type"] == "authentication_error"
    assert httpx.post(url, json=body, headers={"x-api-key": "key-two"}).status_code == 200
    with anthropic.Anthropic(base_url=router.url, auth_token="key-one", api_key=None) as sdk:
        assert sdk.messages.create(**body).content  # Authorization: Bearer
    assert httpx.get(f"{router.url}/health").status_code == 200  # health stays open
    assert "key-one" not in router.logs() and "key-two" not in router.logs()


def test_models_list_and_pagination(client: anthropic.Anthropic):
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == ["claude-opus-4-8", "claude-sonnet-5"]
    assert page.has_more
    ids = [m.id for m in client.models.list(limit=100).data]
    assert "openai/gpt-4o-mini" in ids and "claude-haiku-4-5" in ids
    assert client.models.retrieve("openai/gpt-4o-mini").display_name == "OpenAI: GPT-4o-mini"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("nope/nothing")


def test_root_health_and_head(router):
    assert httpx.head(f"{router.url}/").status_code == 200
    assert httpx.get(f"{router.url}/").json()["status"] == "ok"
    assert httpx.get(f"{router.url}/health").json()["status"] == "ok"
    missing = httpx.get(f"{router.url}/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_seed_defaults_and_per_request_extensions(router_factory, upstream: FakeUpstream):
    env = {
        "OPENROUTER_MIN_P": "0.1",
        "OPENROUTER_TOP_A": "0.2",
        "OPENROUTER_PROVIDER": '{"order": ["anthropic"], "allow_fallbacks": false}',
        "OPENROUTER_MODELS": "anthropic/claude-sonnet-4.5,openai/gpt-4o",
        "OPENAI_FREQUENCY_PENALTY": "0.5",
        "OPENAI_PRESENCE_PENALTY": "0.25",
    }
    router = router_factory(env=env)
    with anthropic.Anthropic(base_url=router.url, api_key="k", max_retries=0) as sdk:
        sdk.messages.create(
            model="claude-opus-4-8",
            max_tokens=5,
            messages=USER_HI,
            extra_body={"top_a": 0.9, "transforms": ["middle-out"], "seed": 7},
        )
    sent = upstream.last.json
    assert sent["min_p"] == 0.1 and sent["top_a"] == 0.9  # the client's own value wins
    assert sent["provider"] == {"order": ["anthropic"], "allow_fallbacks": False}
    assert sent["models"] == ["anthropic/claude-sonnet-4.5", "openai/gpt-4o"]
    assert sent["transforms"] == ["middle-out"] and sent["seed"] == 7
    assert sent["frequency_penalty"] == 0.5 and sent["presence_penalty"] == 0.25


def test_extensions_toggled_off_are_reported(router_factory, upstream: FakeUpstream):
    router = router_factory(
        env={"OPENROUTER_EXTENSIONS_ENABLE": "false", "OPENROUTER_MIN_P": "0.1"}
    )
    body = {"model": "claude-opus-4-8", "max_tokens": 5, "messages": USER_HI, "top_a": 0.5}
    response = httpx.post(f"{router.url}/v1/messages", json=body)
    assert response.status_code == 200
    assert "field:top_a" in response.headers["x-anthropic-router-dropped"]
    assert "min_p" not in upstream.last.json and "top_a" not in upstream.last.json


def test_model_map_file(router_factory, upstream: FakeUpstream, tmp_path):
    mapping = tmp_path / "models.yaml"
    mapping.write_text("models:\n  my-fast: openai/gpt-4o-mini\n  'claude-*-haiku*': x/cheap\n")
    router = router_factory(env={"MODEL_MAP_FILE": str(mapping), "BIG_MODEL": "x/big"})
    url = f"{router.url}/v1/messages"
    for model, expected in [
        ("my-fast", "openai/gpt-4o-mini"),
        ("claude-3-5-haiku-20241022", "x/cheap"),
        ("claude-opus-4-8", "x/big"),
        ("meta-llama/llama-3.1-8b-instruct", "meta-llama/llama-3.1-8b-instruct"),
    ]:
        httpx.post(url, json={"model": model, "max_tokens": 5, "messages": USER_HI})
        assert upstream.last.json["model"] == expected


def test_base_url_with_path_prefix(router, upstream: FakeUpstream):
    body = {"model": "claude-opus-4-8", "max_tokens": 5, "messages": USER_HI}
    response = httpx.post(f"{router.url}/some/prefix/v1/messages?beta=true", json=body)
    assert response.status_code == 200
    assert upstream.last.path == "/api/v1/chat/completions"


async def test_async_client_stream(async_client: anthropic.AsyncAnthropic, upstream: FakeUpstream):
    upstream.enqueue(
        replies.sse([*oc.text_chunks("async hello", 3), oc.finish_chunk(), oc.usage_chunk()])
    )
    async with async_client.messages.stream(
        model="claude-opus-4-8", max_tokens=5, messages=USER_HI
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "async hello"


def test_count_tokens_offline_tokenizer(client: anthropic.Anthropic, upstream: FakeUpstream):
    short = client.messages.count_tokens(model="claude-opus-4-8", messages=USER_HI)
    tools = [
        {"name": "Bash", "description": "Run a shell command", "input_schema": {"type": "object"}}
    ]
    longer = client.messages.count_tokens(
        model="claude-opus-4-8",
        system="You are a careful assistant. " * 20,
        tools=tools,
        messages=[
            *USER_HI,
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and more " * 50},
        ],
    )
    assert 0 < short.input_tokens < 20
    assert longer.input_tokens > short.input_tokens + 150
    assert upstream.requests == []  # counted locally, nothing sent upstream


def test_forward_client_key_opt_in(router_factory, upstream: FakeUpstream):
    router = router_factory(env={"OPENROUTER_API_KEY": None, "FORWARD_CLIENT_KEY": "true"})
    body = {"model": "claude-opus-4-8", "max_tokens": 5, "messages": USER_HI}
    httpx.post(f"{router.url}/v1/messages", json=body, headers={"x-api-key": "client-own-key"})
    assert upstream.last.headers["authorization"] == "Bearer client-own-key"
    httpx.post(f"{router.url}/v1/messages", json=body)
    assert "authorization" not in upstream.last.headers


def test_upstream_key_never_taken_from_client_by_default(router, upstream: FakeUpstream):
    body = {"model": "claude-opus-4-8", "max_tokens": 5, "messages": USER_HI}
    httpx.post(f"{router.url}/v1/messages", json=body, headers={"x-api-key": "client-own-key"})
    assert upstream.last.headers["authorization"] == f"Bearer {UPSTREAM_API_KEY}"
