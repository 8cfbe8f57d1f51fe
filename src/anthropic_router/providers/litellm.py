"""LiteLLM's provider adapters behind the same provider interface (optional extra).

Used by PROXY_BACKEND=LITELLM_OPENROUTER (`openrouter/<id>` with OpenRouter's base URL and
key) and by routing-file targets with `backend: litellm` (`gemini/...`, `bedrock/...`, with
LiteLLM's usual credentials and `api_base` in `params`). The body is our OpenAI chat body;
LiteLLM's answer is read back as OpenAI JSON, and stream chunks are re-framed as SSE bytes so
the app's one stream pipeline serves every backend.

`litellm` is imported only when a LiteLLM route is configured: it takes seconds and ~150 MB.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from anthropic_router.config import Settings
from anthropic_router.errors import ApiError, ConfigError
from anthropic_router.providers.errors import error_from_response, stream_timeout

JSON = dict[str, Any]

# Fields of our body that `litellm.acompletion` takes as named arguments; OpenRouter's own
# fields ride in `extra_body` for `openrouter/` models, and are dropped (reported upstream of
# here) for the others.
_OPENROUTER_ONLY = frozenset(
    {
        "provider", "models", "route", "transforms", "plugins", "min_p", "top_a",
        "repetition_penalty", "reasoning", "include_reasoning", "usage", "debug", "trace",
        "session_id",
    }
)  # fmt: skip


# Always handled by LiteLLM itself, whatever the provider.
_ALWAYS_TAKEN = frozenset({"model", "messages", "stream", "stream_options"}) | _OPENROUTER_ONLY
# OpenAI fields OpenRouter takes but LiteLLM's OpenRouter adapter does not list (it would drop
# them): sent through `extra_body`, LiteLLM's pass-through of provider fields.
_OPENROUTER_PASSED = frozenset({"user"})


def load_litellm() -> Any:
    """Import litellm quietly and offline; a clear start-up error when the extra is missing."""
    # Without this, importing litellm downloads a price list from GitHub (and retries).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        module: Any = importlib.import_module("litellm")
    except ImportError as exc:
        raise ConfigError(
            "a LiteLLM route is configured but litellm is not installed: "
            "pip install 'anthropic-router[litellm]'"
        ) from exc
    module.suppress_debug_info = True
    module.telemetry = False
    return module


def build(settings: Settings, params: Mapping[str, Any]) -> LiteLLMProvider:
    return LiteLLMProvider(
        load_litellm(),
        dict(params),
        request_timeout=settings.request_timeout,
        idle_timeout=settings.stream_idle_timeout,
    )


class LiteLLMProvider:
    name = "litellm"

    def __init__(
        self, module: Any, params: JSON, *, request_timeout: float, idle_timeout: float
    ) -> None:
        self._litellm = module
        self._params = params
        self._timeout = request_timeout
        self._idle_timeout = idle_timeout
        self._open = False
        self._supported: dict[str, frozenset[str]] = {}

    def open(self) -> None:
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    async def aclose(self) -> None:
        self._open = False

    async def list_models(self) -> list[JSON]:
        return []

    def unsupported(self, body: JSON) -> list[str]:
        """Body fields LiteLLM will drop for this model (`drop_params`), named for the
        `dropped` report as `param:<name>`."""
        supported = self._supported.get(str(body.get("model")))
        if supported is None:
            supported = self._supported_params(str(body.get("model")))
            self._supported[str(body.get("model"))] = supported
        if not supported:
            return []  # unknown to LiteLLM: nothing to say
        taken = supported | _ALWAYS_TAKEN
        if str(body.get("model", "")).startswith("openrouter/"):
            taken |= _OPENROUTER_PASSED
        return [f"param:{name}" for name in body if name not in taken]

    def _supported_params(self, model: str) -> frozenset[str]:
        try:
            name, provider, _, _ = self._litellm.get_llm_provider(model)
            found = self._litellm.get_supported_openai_params(
                model=name, custom_llm_provider=provider
            )
        except Exception:  # LiteLLM raises many kinds for models it does not know
            return frozenset()
        return frozenset(found or ())

    async def complete(self, body: JSON, headers: Mapping[str, str]) -> JSON:
        response = await self._call(body, headers, stream=False)
        data = response.model_dump()
        return _normalise_message(data)

    async def open_stream(self, body: JSON, headers: Mapping[str, str]) -> _Stream:
        wrapper = await self._call(body, headers, stream=True)
        return _Stream(wrapper, self._idle_timeout)

    async def _call(self, body: JSON, headers: Mapping[str, str], *, stream: bool) -> Any:
        kwargs = self._kwargs(body, headers, stream)
        try:
            return await self._litellm.acompletion(**kwargs)
        except Exception as exc:
            raise error_from_litellm(exc) from None

    def _kwargs(self, body: JSON, headers: Mapping[str, str], stream: bool) -> JSON:
        kwargs: JSON = {**self._params}
        extra: JSON = {}
        openrouter = str(body.get("model", "")).startswith("openrouter/")
        for name, value in body.items():
            if name in _OPENROUTER_ONLY:
                if openrouter:
                    extra[name] = value
            elif openrouter and name in _OPENROUTER_PASSED:
                extra[name] = value  # e.g. `user` (metadata.user_id), for OpenRouter's abuse checks
            else:
                kwargs[name] = value
        if extra:
            kwargs["extra_body"] = {**kwargs.get("extra_body", {}), **extra}
        kwargs["stream"] = stream
        kwargs.setdefault("timeout", self._timeout)
        kwargs["num_retries"] = 0  # the router retries and falls back itself
        # Parameters a provider does not take are dropped by LiteLLM instead of failing.
        kwargs.setdefault("drop_params", True)
        headers = dict(headers)
        authorization = headers.pop("Authorization", "")
        if authorization.startswith("Bearer "):
            kwargs["api_key"] = authorization.removeprefix("Bearer ")  # FORWARD_CLIENT_KEY
        if headers:
            kwargs["extra_headers"] = {**kwargs.get("extra_headers", {}), **headers}
        return kwargs


class _Stream:
    """LiteLLM's chunk objects as `data: {json}` SSE frames, bounded per chunk by
    STREAM_IDLE_TIMEOUT."""

    def __init__(self, wrapper: Any, idle_timeout: float) -> None:
        self._wrapper = wrapper
        self._idle_timeout = idle_timeout

    async def chunks(self, deadline: float | None = None) -> AsyncIterator[bytes]:
        iterator = self._wrapper.__aiter__()
        loop = asyncio.get_running_loop()
        end = deadline if deadline is not None else float("inf")
        while True:
            at = loop.time() + self._idle_timeout
            try:
                async with asyncio.timeout_at(min(at, end)):
                    chunk = await iterator.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError as exc:
                raise stream_timeout(at >= end) from exc
            except ApiError:
                raise
            except Exception as exc:
                raise error_from_litellm(exc) from None
            data = _normalise_chunk(chunk.model_dump())
            yield b"data: " + orjson.dumps(data) + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        close = getattr(self._wrapper, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing a cancelled upstream: nothing left to report
                return


def _normalise_message(data: JSON) -> JSON:
    for choice in data.get("choices") or []:
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            _thinking_blocks_to_details(choice["message"])
    return data


def _normalise_chunk(data: JSON) -> JSON:
    for choice in data.get("choices") or []:
        if isinstance(choice, dict) and isinstance(choice.get("delta"), dict):
            _thinking_blocks_to_details(choice["delta"])
    return data


def _thinking_blocks_to_details(message: JSON) -> None:
    """LiteLLM carries Claude's signed thinking as `thinking_blocks`, and OpenRouter's
    `reasoning_details` under `provider_specific_fields`; the converter reads
    `reasoning_details`, which keep the signature the client must send back."""
    extra = message.get("provider_specific_fields")
    if isinstance(extra, dict) and isinstance(extra.get("reasoning_details"), list):
        message.setdefault("reasoning_details", extra["reasoning_details"])
    blocks = message.pop("thinking_blocks", None)
    if message.get("reasoning_details"):
        return
    if not isinstance(blocks, list) or not blocks:
        return
    details = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data", "")})
            continue
        detail = {"type": "reasoning.text", "text": block.get("thinking") or "", "index": index}
        if block.get("signature"):
            detail["signature"] = block["signature"]
        details.append(detail)
    message["reasoning_details"] = details


def error_from_litellm(exc: BaseException) -> ApiError:
    """LiteLLM's exceptions carry the upstream's HTTP status; map them like any upstream's."""
    if isinstance(exc, ApiError):
        return exc
    name = type(exc).__name__
    if name in ("Timeout", "APITimeoutError"):
        return ApiError("timeout_error", "upstream timed out (via LiteLLM)", retryable=True)
    if name == "APIConnectionError":
        status = 502
    else:
        code = getattr(exc, "status_code", None)
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
    message = str(getattr(exc, "message", None) or exc).strip()[:1000] or name
    body = orjson.dumps({"error": {"message": message}})
    # LiteLLM keeps the upstream's headers (retry-after) here, not in `headers`.
    headers = getattr(exc, "litellm_response_headers", None) or getattr(exc, "headers", None)
    error = error_from_response(status, body, headers or {})
    if name == "APIConnectionError":
        error.retryable = True
    return error
