"""Azure Databricks model serving (protocol.md section 7).

Chat goes to `POST {host}/serving-endpoints/{endpoint}/invocations` with the OpenAI chat body
minus `model` (the endpoint name is the model). Claude endpoints can instead take the Anthropic
request untranslated at `POST {host}/serving-endpoints/anthropic/v1/messages`; both paths share
one provider because they share the host, the credentials and the connection pool.

Auth is a PAT sent as Bearer, or OAuth machine-to-machine: `POST {host}/oidc/v1/token` with
HTTP Basic client credentials, `grant_type=client_credentials&scope=all-apis`; the token is
cached and refreshed a minute before it expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from anthropic_router.config import Settings
from anthropic_router.errors import ApiError, ConfigError
from anthropic_router.providers.openai_chat import OpenAIChatProvider, timeouts

if TYPE_CHECKING:  # the token fetch runs on the provider's cold-path aiohttp session
    import aiohttp

JSON = dict[str, Any]

NATIVE_ANTHROPIC_PATH = "/serving-endpoints/anthropic/v1/messages"
ANTHROPIC_VERSION = "2023-06-01"
_REFRESH_MARGIN = 60.0


def build(settings: Settings, *, native: bool = False, auth: Any = None) -> OpenAIChatProvider:
    """The chat provider, or (`native`) the one for the Anthropic route. Pass the first
    one's `auth` to the second so both share one OAuth token."""
    host = settings.databricks_host
    if not host:
        raise ConfigError("the databricks backend needs DATABRICKS_HOST")
    headers: dict[str, str] = {}
    if settings.databricks_pat is not None:
        headers["Authorization"] = f"Bearer {settings.databricks_pat.get_secret_value()}"
    elif settings.databricks_client_id and settings.databricks_client_secret is not None:
        auth = auth or OAuthToken(
            f"{host}/oidc/v1/token",
            settings.databricks_client_id,
            settings.databricks_client_secret.get_secret_value(),
        )
    else:
        raise ConfigError(
            "the databricks backend needs DATABRICKS_PAT "
            "(or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET)"
        )
    if native:
        headers["anthropic-version"] = ANTHROPIC_VERSION
    return OpenAIChatProvider(
        name="databricks",
        base_url=host,
        headers=headers,
        **timeouts(settings),
        chat_path=NATIVE_ANTHROPIC_PATH if native else "/serving-endpoints",
        models_path="/api/2.0/serving-endpoints",
        models_key="endpoints",
        endpoint=None if native else (lambda body: invocations(host, body)),
        auth=auth,
    )


def invocations(host: str, body: JSON) -> tuple[str, JSON]:
    """The endpoint name is the model: it goes in the URL and leaves the body."""
    model = str(body.get("model") or "")
    chat = {k: v for k, v in body.items() if k != "model"}
    return f"{host}/serving-endpoints/{quote(model, safe='')}/invocations", chat


class OAuthToken:
    """A client-credentials access token, fetched on first use and before it expires.
    Concurrent requests share one fetch."""

    def __init__(self, token_url: str, client_id: str, client_secret: str) -> None:
        self._url = token_url
        self._credentials = (client_id, client_secret)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self, session: aiohttp.ClientSession) -> Mapping[str, str]:
        if self._token is None or time.monotonic() >= self._expires_at:
            async with self._lock:
                if self._token is None or time.monotonic() >= self._expires_at:
                    await self._fetch(session)
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch(self, session: aiohttp.ClientSession) -> None:
        import aiohttp

        form = {"grant_type": "client_credentials", "scope": "all-apis"}
        basic = aiohttp.BasicAuth(*self._credentials)
        try:
            async with asyncio.timeout(30):
                async with session.post(self._url, data=form, auth=basic) as response:
                    raw = await response.read()
                    status, headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"Databricks OAuth token request failed: {type(exc).__name__}"
            raise ApiError("api_error", message, status=502, retryable=True) from exc
        if status != 200:
            # The router's own credential failed, not the client's: a 502, never a 401 that
            # Claude Code would read as "your API key is invalid".
            retryable = status == 429 or status >= 500
            message = f"Databricks OAuth token request failed ({status}): {_oauth_error(raw)}"
            raise ApiError(
                "api_error",
                message,
                status=502,
                retry_after=headers.get("retry-after"),
                retryable=retryable,
            )
        data = orjson.loads(raw) if raw.startswith(b"{") else {}
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiError(
                "api_error", "Databricks OAuth answered without an access_token", status=502
            )
        lifetime = data.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        self._token = token
        self._expires_at = time.monotonic() + max(seconds - _REFRESH_MARGIN, 1.0)


def _oauth_error(raw: bytes) -> str:
    """RFC 6749 errors: `{"error": "invalid_client", "error_description": "..."}`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace") or "empty response"
    if not isinstance(data, dict):
        return "unexpected response"
    parts = [str(data[k]) for k in ("error", "error_description", "message") if data.get(k)]
    return ": ".join(parts) or "no error description"
