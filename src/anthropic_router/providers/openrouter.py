"""OpenRouter: the OpenAI chat API at `{OPENROUTER_BASE_URL}/chat/completions`."""

from __future__ import annotations

from anthropic_router.config import Settings
from anthropic_router.providers.openai_chat import OpenAIChatProvider, timeouts


def build(settings: Settings) -> OpenAIChatProvider:
    headers: dict[str, str] = {}
    if settings.openrouter_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.openrouter_api_key.get_secret_value()}"
    # Attribution headers: https://openrouter.ai/docs/api-reference/overview (app attribution).
    if settings.openrouter_http_referer:
        headers["HTTP-Referer"] = settings.openrouter_http_referer
    if settings.openrouter_app_title:
        headers["X-Title"] = settings.openrouter_app_title
    return OpenAIChatProvider(
        name="openrouter",
        base_url=settings.openrouter_base_url,
        headers=headers,
        **timeouts(settings),
    )
