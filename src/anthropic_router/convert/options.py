"""What a conversion needs to know about its target: plain data, chosen by the router."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from anthropic_router.convert.profiles import Capabilities

DEFAULT_IMAGE_FORMATS = frozenset({"jpeg", "png", "gif", "webp"})

# Per-request fields OpenRouter understands beyond OpenAI's; forwarded when a client sends them.
OPENROUTER_FIELDS = frozenset(
    {
        "provider", "models", "route", "transforms", "plugins", "min_p", "top_a",
        "repetition_penalty", "session_id", "prompt_cache_key", "reasoning", "verbosity",
        "include_reasoning", "usage", "debug", "modalities", "trace",
    }
)  # fmt: skip

# OpenAI's advanced sampling and output fields; forwarded when a client sends them.
OPENAI_FIELDS = frozenset(
    {
        "frequency_penalty", "presence_penalty", "seed", "logit_bias", "logprobs",
        "top_logprobs", "response_format", "parallel_tool_calls", "user", "n",
        "reasoning_effort", "max_completion_tokens", "prediction", "store",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """How to shape one upstream request.

    `defaults` are added to the body unless the client sent the same field (seed settings
    such as OPENROUTER_MIN_P). `cache_control` says whether the target honours Anthropic-style
    breakpoints; `signed_thinking_only` drops unsigned thinking from history (Anthropic models
    reject thinking they did not sign).
    """

    upstream_model: str
    cache_control: bool = False
    signed_thinking_only: bool = False
    multimodal: bool = True
    image_max_bytes: int = 10 * 1024 * 1024
    image_formats: frozenset[str] = DEFAULT_IMAGE_FORMATS
    openrouter_fields: bool = True
    openai_fields: bool = True
    max_stop_sequences: int = 4
    defaults: Mapping[str, Any] = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)
