"""LiteLLM's seven providers through the real router and LiteLLM's real adapters: one text,
one tool-call and one streaming exchange each, against a loopback server that speaks the
provider's native API (paths, auth and bodies as LiteLLM 1.108.7 sends them).

One router serves all seven from one routing file (`backend: litellm` routes, credentials
referenced as `os.environ/NAME`), so litellm is imported once for the module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest

from support import native, replies
from support.router import RouterProcess
from support.upstream import FakeUpstream, Recorded

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
USER_HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
ARGS = {"city": "Paris"}
AWS = {"id": "AKIDEXAMPLE", "secret": "fake-aws-secret-0000", "region": "us-east-1"}
KEYS = {
    "TEST_ANTHROPIC_KEY": "test-anthropic-key",
    "TEST_OPENAI_KEY": "test-openai-key",
    "TEST_GEMINI_KEY": "test-gemini-key",
    "TEST_COHERE_KEY": "test-cohere-key",
    "TEST_MISTRAL_KEY": "test-mistral-key",
    "TEST_AZURE_KEY": "test-azure-key",
    "TEST_AWS_ACCESS_KEY_ID": AWS["id"],
    "TEST_AWS_SECRET_ACCESS_KEY": AWS["secret"],
}


@dataclass(frozen=True)
class Provider:
    name: str
    route: str  # the routing-file entry (YAML), `{url}` replaced by the fake's URL
    path: str
    stream_path: str
    text: Callable[[str], replies.Reply]
    tool: Callable[[str, str, JSON], replies.Reply]
    stream: Callable[[list[str]], replies.Reply]
    tool_names: Callable[[JSON], list[str]]
    check_auth: Callable[[Recorded, str], None]

    @property
    def model(self) -> str:
        return f"p-{self.name}"


def sigv4(seen: Recorded, url: str) -> None:
    assert seen.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS['id']}/")
    assert native.sigv4_valid(seen, url, AWS["id"], AWS["secret"], AWS["region"])
    assert not native.sigv4_valid(seen, url, AWS["id"], "some-other-secret", AWS["region"])


BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1%3A0"

PROVIDERS = [
    Provider(
        "anthropic",
        "{backend: litellm, model: anthropic/claude-3-5-sonnet-20240620, "
        "params: {api_base: '{url}', api_key: os.environ/TEST_ANTHROPIC_KEY}}",
        "/v1/messages",
        "/v1/messages",
        native.anthropic_text,
        native.anthropic_tool,
        native.anthropic_stream,
        lambda body: [tool["name"] for tool in body["tools"]],
        native.header("x-api-key", KEYS["TEST_ANTHROPIC_KEY"]),
    ),
    Provider(
        "openai",
        "{backend: litellm, model: openai/gpt-4o, "
        "params: {api_base: '{url}/v1', api_key: os.environ/TEST_OPENAI_KEY}}",
        "/v1/chat/completions",
        "/v1/chat/completions",
        native.openai_text,
        native.openai_tool,
        native.openai_stream,
        native.openai_tool_names,
        native.bearer(KEYS["TEST_OPENAI_KEY"]),
    ),
    Provider(
        "gemini",
        "{backend: litellm, model: gemini/gemini-2.5-flash, "
        "params: {api_base: '{url}/v1beta', api_key: os.environ/TEST_GEMINI_KEY}}",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        native.gemini_text,
        lambda call_id, name, arguments: native.gemini_tool(name, arguments),
        native.gemini_stream,
        lambda body: [f["name"] for t in body["tools"] for f in t["function_declarations"]],
        native.header("x-goog-api-key", KEYS["TEST_GEMINI_KEY"]),
    ),
    Provider(
        "cohere",
        "{backend: litellm, model: cohere_chat/command-r-plus, "
        "params: {api_base: '{url}/v2/chat', api_key: os.environ/TEST_COHERE_KEY}}",
        "/v2/chat",
        "/v2/chat",
        native.cohere_text,
        native.cohere_tool,
        native.cohere_stream,
        native.openai_tool_names,
        native.bearer(KEYS["TEST_COHERE_KEY"]),
    ),
    Provider(
        "mistral",
        "{backend: litellm, model: mistral/mistral-large-latest, "
        "params: {api_base: '{url}/v1', api_key: os.environ/TEST_MISTRAL_KEY}}",
        "/v1/chat/completions",
        "/v1/chat/completions",
        native.openai_text,
        native.openai_tool,
        native.openai_stream,
        native.openai_tool_names,
        native.bearer(KEYS["TEST_MISTRAL_KEY"]),
    ),
    Provider(
        "azure",
        "{backend: litellm, model: azure/my-gpt-4o, params: {api_base: '{url}', "
        "api_version: '2024-10-21', api_key: os.environ/TEST_AZURE_KEY}}",
        "/openai/deployments/my-gpt-4o/chat/completions",
        "/openai/deployments/my-gpt-4o/chat/completions",
        native.openai_text,
        native.openai_tool,
        native.openai_stream,
        native.openai_tool_names,
        native.header("api-key", KEYS["TEST_AZURE_KEY"]),
    ),
    Provider(
        "bedrock",
        "{backend: litellm, model: 'bedrock/converse/anthropic.claude-3-5-sonnet-20240620-v1:0', "
        "params: {api_base: '{url}', aws_region_name: us-east-1, "
        "aws_access_key_id: os.environ/TEST_AWS_ACCESS_KEY_ID, "
        "aws_secret_access_key: os.environ/TEST_AWS_SECRET_ACCESS_KEY}}",
        f"/model/{BEDROCK_MODEL}/converse",
        f"/model/{BEDROCK_MODEL}/converse-stream",
        native.bedrock_text,
        native.bedrock_tool,
        native.bedrock_stream,
        lambda body: [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]],
        sigv4,
    ),
]
IDS = [provider.name for provider in PROVIDERS]


@pytest.fixture(scope="module")
def litellm_router(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    routes = ["routes:"]
    for provider in PROVIDERS:
        routes.append(f"  {provider.model}: {provider.route.replace('{url}', upstream.url)}")
    path = tmp_path_factory.mktemp("litellm") / "routes.yaml"
    path.write_text("\n".join(routes) + "\n")
    env = {"MODEL_MAP_FILE": str(path), "UPSTREAM_MAX_RETRIES": "0", **KEYS}
    with RouterProcess(upstream.url, env, startup_timeout=60) as process:
        yield process


@pytest.fixture
def sdk(litellm_router: RouterProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=litellm_router.url, api_key="k", max_retries=0) as client:
        yield client


def _secrets_absent(seen: Recorded) -> None:
    assert "test-client" not in seen.raw.decode("utf-8", "replace")


@pytest.mark.parametrize("provider", PROVIDERS, ids=IDS)
def test_text(sdk: anthropic.Anthropic, upstream: FakeUpstream, litellm_router, provider: Provider):
    upstream.enqueue(provider.text("hello there"))
    raw = sdk.messages.with_raw_response.create(
        model=provider.model, max_tokens=50, system="Be brief.", messages=USER_HI
    )
    message = raw.parse()
    assert [(b.type, b.text) for b in message.content] == [("text", "hello there")]
    assert message.model == provider.model and message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["x-anthropic-router-backend"] == "litellm"
    seen = upstream.last
    assert seen.path == provider.path
    provider.check_auth(seen, upstream.url)
    assert "hi" in seen.raw.decode() and "Be brief." in seen.raw.decode()
    if provider.name == "gemini":
        assert seen.json["system_instruction"] == {"parts": [{"text": "Be brief."}]}


@pytest.mark.parametrize("provider", PROVIDERS, ids=IDS)
def test_tool_call(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, litellm_router, provider: Provider
):
    upstream.enqueue(provider.tool("call_weather_1", "get_weather", ARGS))
    raw = sdk.messages.with_raw_response.create(
        model=provider.model,
        max_tokens=50,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER],
    )
    message = raw.parse()
    [block] = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "get_weather" and block.input == ARGS
    assert message.stop_reason == "tool_use"
    seen = upstream.last
    assert seen.path == provider.path
    provider.check_auth(seen, upstream.url)
    assert provider.tool_names(seen.json) == ["get_weather"]
    dropped = raw.headers.get("x-anthropic-router-dropped", "").split(",")
    if provider.name == "gemini":
        # The Gemini profile cleans the schema before LiteLLM sees it, and says so.
        assert {"schema:$schema", "schema:additionalProperties"} <= set(dropped)
        [declaration] = seen.json["tools"][0]["function_declarations"]
        assert declaration["parameters"] == {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }
    else:
        assert not any(name.startswith("schema:") for name in dropped)


@pytest.mark.parametrize("provider", PROVIDERS, ids=IDS)
def test_stream(
    sdk: anthropic.Anthropic, upstream: FakeUpstream, litellm_router, provider: Provider
):
    upstream.enqueue(provider.stream(["Hel", "lo ", "world"]))
    with sdk.messages.stream(model=provider.model, max_tokens=50, messages=USER_HI) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.text) for b in final.content] == [("text", "Hello world")]
    assert final.model == provider.model and final.stop_reason == "end_turn"
    seen = upstream.last
    assert seen.path == provider.stream_path
    provider.check_auth(seen, upstream.url)
