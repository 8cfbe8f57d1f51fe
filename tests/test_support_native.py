"""The native fakes of `support.native` against LiteLLM 1.108.7's real adapters, in process.

For each of the seven providers the router reaches through LiteLLM, one text, one tool-call and
one streaming exchange: `litellm.acompletion` is pointed at a loopback FakeUpstream, and both
sides are checked, what the fake received (path, credentials, native body) and what LiteLLM made
of the scripted native answer. The provider table records how LiteLLM must be called to reach
each fake (model string, `api_base` form, credential arguments).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from support import native, replies
from support.upstream import FakeUpstream, Recorded

# Importing litellm without this downloads a price list (and retries for long offline).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

litellm.suppress_debug_info = True  # as the router sets it: no "Provider List" banners
litellm.telemetry = False

pytestmark = [
    pytest.mark.anyio,
    # LiteLLM's own import-time noise, raised lazily during the first calls.
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning"),
]

JSON = dict[str, Any]
SYSTEM = "Be brief."
ASK = "weather in Paris?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ARGS = {"city": "Paris"}
CALL_ID = "call_weather_1"
PIECES = ["Hel", "lo ", "world"]
AWS = {"id": "AKIDEXAMPLE", "secret": "fake-aws-secret-0000", "region": "us-east-1"}
BEDROCK_MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
BEDROCK_PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0"  # ':' percent-encoded


# -- OpenAI-chat replies (OpenAI, Mistral, Azure) ---------------------------------------------


# -- What each provider's request must look like ----------------------------------------------


def openai_shape(body: JSON, stream: bool) -> None:
    """OpenAI chat, as OpenAI, Mistral, Azure and Cohere v2 receive it."""
    assert body["messages"] == MESSAGES
    assert body.get("stream", False) is stream


def anthropic_shape(body: JSON, stream: bool) -> None:
    assert body["model"] == "claude-3-5-sonnet-20240620"
    assert body["system"] == [{"type": "text", "text": SYSTEM}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["max_tokens"] == 50
    assert body.get("stream", False) is stream


def gemini_shape(body: JSON, stream: bool) -> None:
    """Streaming is chosen by the path (`:streamGenerateContent?alt=sse`), not the body."""
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert body["system_instruction"] == {"parts": [{"text": SYSTEM}]}
    assert body["generationConfig"] == {"max_output_tokens": 50}
    assert "stream" not in body and "model" not in body


def bedrock_shape(body: JSON, stream: bool) -> None:
    """Streaming is chosen by the path (`/converse-stream`), not the body."""
    assert body["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert body["system"] == [{"text": SYSTEM}]
    assert body["inferenceConfig"] == {"maxTokens": 50}
    assert "stream" not in body and "modelId" not in body


# -- How each provider authenticates ----------------------------------------------------------


def anthropic_auth(seen: Recorded, url: str) -> None:
    native.header("x-api-key", "test-anthropic-key")(seen, url)
    assert seen.headers["anthropic-version"] == "2023-06-01"


def gemini_auth(seen: Recorded, url: str) -> None:
    native.header("x-goog-api-key", "test-gemini-key")(seen, url)
    assert "key" not in seen.query  # LiteLLM keeps the key out of URLs (and tracebacks)


def sigv4(seen: Recorded, url: str) -> None:
    """Really signed: botocore recomputes the same signature from the same fake credentials,
    and not from any other secret, region or body."""
    assert seen.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AWS['id']}/"
        f"{seen.headers['x-amz-date'][:8]}/{AWS['region']}/bedrock/aws4_request, "
    )
    assert native.sigv4_valid(seen, url, AWS["id"], AWS["secret"], AWS["region"])
    assert not native.sigv4_valid(seen, url, AWS["id"], "another-secret", AWS["region"])
    assert not native.sigv4_valid(seen, url, AWS["id"], AWS["secret"], "eu-west-1")
    tampered = Recorded(**{**vars(seen), "raw": seen.raw + b" "})
    assert not native.sigv4_valid(tampered, url, AWS["id"], AWS["secret"], AWS["region"])


# -- The table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    name: str
    model: str
    kwargs: Callable[[str], JSON]  # the fake's URL -> the acompletion arguments reaching it
    path: str
    stream_path: str
    text: Callable[[str], replies.Reply]
    tool: Callable[[str, str, JSON], replies.Reply]
    stream: Callable[[list[str]], replies.Reply]
    shape: Callable[[JSON, bool], None]
    tool_names: Callable[[JSON], list[str]]
    check_auth: Callable[[Recorded, str], None]
    stream_query: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    keeps_tool_call_id: bool = True  # Gemini has no call ids: LiteLLM makes `call_<hex>` ones
    tool_finish_reason: str = "tool_calls"


PROVIDERS = [
    Provider(
        name="anthropic",
        model="anthropic/claude-3-5-sonnet-20240620",
        # LiteLLM appends /v1/messages unless api_base already ends with it.
        kwargs=lambda url: {"api_base": url, "api_key": "test-anthropic-key"},
        path="/v1/messages",
        stream_path="/v1/messages",
        text=native.anthropic_text,
        tool=native.anthropic_tool,
        stream=native.anthropic_stream,
        shape=anthropic_shape,
        tool_names=lambda body: [tool["name"] for tool in body["tools"]],
        check_auth=anthropic_auth,
    ),
    Provider(
        name="openai",
        model="openai/gpt-4o",
        # The OpenAI SDK appends /chat/completions to api_base as given: keep the /v1.
        kwargs=lambda url: {"api_base": f"{url}/v1", "api_key": "test-openai-key"},
        path="/v1/chat/completions",
        stream_path="/v1/chat/completions",
        text=replies.completion,
        tool=native.openai_tool,
        stream=native.openai_stream,
        shape=openai_shape,
        tool_names=native.openai_tool_names,
        check_auth=native.bearer("test-openai-key"),
    ),
    Provider(
        name="gemini",
        model="gemini/gemini-2.5-flash",
        # With api_base, LiteLLM builds {api_base}/models/{model}:{method} (no version of its
        # own): the /v1beta here makes the path Google AI Studio's.
        kwargs=lambda url: {"api_base": f"{url}/v1beta", "api_key": "test-gemini-key"},
        path="/v1beta/models/gemini-2.5-flash:generateContent",
        stream_path="/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        stream_query={"alt": "sse"},
        text=native.gemini_text,
        tool=lambda call_id, name, arguments: native.gemini_tool(name, arguments),
        stream=native.gemini_stream,
        shape=gemini_shape,
        tool_names=lambda body: [
            f["name"] for t in body["tools"] for f in t["function_declarations"]
        ],
        check_auth=gemini_auth,
        keeps_tool_call_id=False,
    ),
    Provider(
        name="cohere",
        model="cohere/command-r-plus",
        # Cohere v2 (LiteLLM's default route unless the model says v1/): api_base is the whole
        # endpoint URL, used as is.
        kwargs=lambda url: {"api_base": f"{url}/v2/chat", "api_key": "test-cohere-key"},
        path="/v2/chat",
        stream_path="/v2/chat",
        text=native.cohere_text,
        tool=native.cohere_tool,
        stream=native.cohere_stream,
        shape=openai_shape,
        tool_names=native.openai_tool_names,
        check_auth=native.bearer("test-cohere-key"),
        # LiteLLM's v2 adapter ignores Cohere's `finish_reason: TOOL_CALL`.
        tool_finish_reason="stop",
    ),
    Provider(
        name="mistral",
        model="mistral/mistral-large-latest",
        # LiteLLM adds /v1 when api_base does not end with it, then /chat/completions.
        kwargs=lambda url: {"api_base": url, "api_key": "test-mistral-key"},
        path="/v1/chat/completions",
        stream_path="/v1/chat/completions",
        text=replies.completion,
        tool=native.openai_tool,
        stream=native.openai_stream,
        shape=openai_shape,
        tool_names=native.openai_tool_names,
        check_auth=native.bearer("test-mistral-key"),
    ),
    Provider(
        name="azure",
        model="azure/my-gpt-4o",
        kwargs=lambda url: {
            "api_base": url,
            "api_key": "test-azure-key",
            "api_version": "2024-10-21",
        },
        path="/openai/deployments/my-gpt-4o/chat/completions",
        stream_path="/openai/deployments/my-gpt-4o/chat/completions",
        query={"api-version": "2024-10-21"},
        stream_query={"api-version": "2024-10-21"},
        text=replies.completion,
        tool=native.openai_tool,
        stream=native.openai_stream,
        shape=openai_shape,
        tool_names=native.openai_tool_names,
        check_auth=native.header("api-key", "test-azure-key"),
    ),
    Provider(
        name="bedrock",
        model=f"bedrock/converse/{BEDROCK_MODEL_ID}",
        # No api_key: LiteLLM would send it as a Bedrock bearer token instead of signing.
        kwargs=lambda url: {
            "api_base": url,
            "aws_access_key_id": AWS["id"],
            "aws_secret_access_key": AWS["secret"],
            "aws_region_name": AWS["region"],
        },
        path=f"{BEDROCK_PATH}/converse",
        stream_path=f"{BEDROCK_PATH}/converse-stream",
        text=native.bedrock_text,
        tool=native.bedrock_tool,
        stream=native.bedrock_stream,
        shape=bedrock_shape,
        tool_names=lambda body: [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]],
        check_auth=sigv4,
    ),
]
IDS = [provider.name for provider in PROVIDERS]


@pytest.fixture(scope="module", autouse=True)
def _warm_litellm() -> None:
    """LiteLLM imports much of itself (and boto3) on first use: pay that once here, so each
    test's own time is its exchange."""
    litellm.completion(
        model="openai/gpt-4o", messages=MESSAGES, mock_response="warm", api_key="unused"
    )
    importlib.import_module("boto3")


@pytest.fixture(autouse=True)
def _no_ambient_bedrock_token(monkeypatch: pytest.MonkeyPatch) -> None:
    # LiteLLM prefers this bearer token over SigV4 when it is set in the environment.
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)


async def call(provider: Provider, upstream: FakeUpstream, **extra: Any) -> Any:
    kwargs = {"max_tokens": 50, "num_retries": 0, "timeout": 10, **extra}
    return await litellm.acompletion(
        model=provider.model, **provider.kwargs(upstream.url), **kwargs
    )


@pytest.mark.parametrize("provider", PROVIDERS, ids=IDS)
async def test_text(upstream: FakeUpstream, provider: Provider) -> None:
    upstream.enqueue(provider.text("hello there"))

    response = await call(provider, upstream, messages=MESSAGES)

    [seen] = upstream.requests
    assert (seen.method, seen.path, seen.query) == ("POST", provider.path, provider.query)
    provider.check_auth(seen, upstream.url)
    provider.shape(seen.json, False)
    [choice] = response.choices
    assert (choice.message.content, choice.finish_reason) == ("hello there", "stop")
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS, ids=IDS)
async def test_tool_call(upstream: FakeUpstream, provider: Provider) -> None:
    upstream.enqueue(provider.tool(CALL_ID, "get_weather", ARGS))

    response = await call(
        provider, upstream, messages=[{"role": "user", "content": ASK}], tools=[WEATHER_TOOL]
    )

    [seen] = upstream.requests
    assert (seen.path, seen.query) == (provider.path, provider.query)
    provider.check_auth(seen, upstream.url)
    assert provider.tool_names(seen.json) == ["get_weather"]
    assert ASK in seen.raw.decode()
    [choice] = response.choices
    [call_] = choice.message.tool_calls
    assert call_.function.name == "get_weather"
    assert json.loads(call_.function.arguments) == ARGS
    if provider.keeps_tool_call_id:
        assert call_.id == CALL_ID
    else:
        assert call_.id.startswith("call_")
    assert not choice.message.content
    assert choice.finish_reason == provider.tool_finish_reason


@pytest.mark.parametrize("provider", PROVIDERS, ids=IDS)
async def test_stream(upstream: FakeUpstream, provider: Provider) -> None:
    upstream.enqueue(provider.stream(PIECES))

    stream = await call(provider, upstream, messages=MESSAGES, stream=True)
    deltas, finish_reasons = [], []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)

    [seen] = upstream.requests
    assert (seen.path, seen.query) == (provider.stream_path, provider.stream_query)
    provider.check_auth(seen, upstream.url)
    provider.shape(seen.json, True)
    assert "".join(deltas) == "Hello world" and len(deltas) >= len(PIECES)
    assert finish_reasons == ["stop"]


# -- Details the table does not show ----------------------------------------------------------


async def test_anthropic_fake_serves_a_prefixed_messages_path(upstream: FakeUpstream) -> None:
    """Databricks' native Anthropic route: api_base `.../serving-endpoints/anthropic`."""
    upstream.enqueue(native.anthropic_text("from databricks"), path="/v1/messages")

    response = await litellm.acompletion(
        model="anthropic/databricks-claude-sonnet-4-5",
        messages=MESSAGES,
        max_tokens=50,
        api_base=f"{upstream.url}/serving-endpoints/anthropic",
        api_key="dapi-test",
    )

    assert upstream.last.path == "/serving-endpoints/anthropic/v1/messages"
    assert upstream.last.headers["x-api-key"] == "dapi-test"
    assert response.choices[0].message.content == "from databricks"


async def test_gemini_model_unknown_to_litellm_gets_no_system_instruction(
    upstream: FakeUpstream,
) -> None:
    """LiteLLM sends `system_instruction` only for models its bundled price map says support
    system messages; `gemini-2.0-flash` is not in 1.108.7's map, so the system prompt becomes
    the first part of the first user turn."""
    upstream.enqueue(native.gemini_text("ok"))

    await litellm.acompletion(
        model="gemini/gemini-2.0-flash",
        messages=MESSAGES,
        api_base=f"{upstream.url}/v1beta",
        api_key="test-gemini-key",
    )

    assert upstream.last.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert "system_instruction" not in upstream.last.json
    assert upstream.last.json["contents"] == [
        {"role": "user", "parts": [{"text": SYSTEM}, {"text": "hi"}]}
    ]


async def test_bedrock_without_converse_prefix_and_runtime_endpoint(
    upstream: FakeUpstream,
) -> None:
    """`bedrock/<claude id>` routes to Converse too; `aws_bedrock_runtime_endpoint` is the
    other way to point it at the fake."""
    upstream.enqueue(native.bedrock_text("signed"))

    response = await litellm.acompletion(
        model=f"bedrock/{BEDROCK_MODEL_ID}",
        messages=MESSAGES,
        aws_bedrock_runtime_endpoint=upstream.url,
        aws_access_key_id=AWS["id"],
        aws_secret_access_key=AWS["secret"],
        aws_region_name=AWS["region"],
    )

    assert upstream.last.path == f"{BEDROCK_PATH}/converse"
    sigv4(upstream.last, upstream.url)
    assert response.choices[0].message.content == "signed"


async def test_bedrock_api_key_is_sent_as_bearer_token(upstream: FakeUpstream) -> None:
    """With `api_key`, LiteLLM skips SigV4: a router passing one would not sign."""
    upstream.enqueue(native.bedrock_text("bearer"))

    await litellm.acompletion(
        model=f"bedrock/converse/{BEDROCK_MODEL_ID}",
        messages=MESSAGES,
        api_base=upstream.url,
        api_key="test-bedrock-token",
        aws_region_name=AWS["region"],
    )

    assert upstream.last.headers["authorization"] == "Bearer test-bedrock-token"
    assert not native.sigv4_valid(upstream.last, upstream.url, AWS["id"], AWS["secret"], "x")


async def test_cohere_sse_framing_is_not_parsed_by_litellm(upstream: FakeUpstream) -> None:
    """LiteLLM 1.108.7 reads Cohere v2 streams as one JSON object per line, which is why
    `native.cohere_stream` sends them so: SSE `event:`/`data:` framing fails mid-stream."""
    event = {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "x"}}}}
    upstream.enqueue(replies.sse([f"event: content-delta\ndata: {json.dumps(event)}\n\n"]))
    cohere = PROVIDERS[IDS.index("cohere")]

    stream = await call(cohere, upstream, messages=MESSAGES, stream=True)
    with pytest.raises(litellm.exceptions.MidStreamFallbackError, match="Error parsing chunk"):
        async for _ in stream:
            pass


def test_eventstream_frames_decode_with_botocore() -> None:
    """The encoder's prelude and message CRCs hold: botocore's decoder (LiteLLM's too)
    validates them and yields the headers and payload back."""
    frames = [
        native.eventstream_message("messageStart", {"role": "assistant"}),
        native.eventstream_message("contentBlockDelta", {"delta": {"text": "é"}}),
    ]
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(frames))

    decoded = [(m.headers, json.loads(m.payload)) for m in buffer]

    assert decoded == [
        (
            {
                ":event-type": "messageStart",
                ":content-type": "application/json",
                ":message-type": "event",
            },
            {"role": "assistant"},
        ),
        (
            {
                ":event-type": "contentBlockDelta",
                ":content-type": "application/json",
                ":message-type": "event",
            },
            {"delta": {"text": "é"}},
        ),
    ]
