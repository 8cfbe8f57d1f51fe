"""Any OpenAI chat-completions server (Ollama, vLLM, llama.cpp, LM Studio):
`{OPENAI_COMPATIBLE_BASE_URL}/chat/completions`, with an optional Bearer key."""

from __future__ import annotations

from anthropic_router.config import Settings
from anthropic_router.errors import ConfigError
from anthropic_router.providers.openai_chat import OpenAIChatProvider, timeouts


def build(settings: Settings) -> OpenAIChatProvider:
    if not settings.openai_compatible_base_url:
        raise ConfigError("the openai_compatible backend needs OPENAI_COMPATIBLE_BASE_URL")
    headers: dict[str, str] = {}
    if settings.openai_compatible_api_key is not None:
        key = settings.openai_compatible_api_key.get_secret_value()
        headers["Authorization"] = f"Bearer {key}"
    return OpenAIChatProvider(
        name="openai_compatible",
        base_url=settings.openai_compatible_base_url,
        headers=headers,
        **timeouts(settings),
    )
