"""An OpenAI chat-completions upstream: the lean HTTP/1.1 client (http1.py) for requests,
one aiohttp session for the cold paths (model lists, probes, OAuth tokens).

OpenRouter, vLLM, Ollama and friends all speak this; what differs (base URL, headers) is data
passed in by the module that builds the provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import orjson

from anthropic_router.config import Settings
from anthropic_router.errors import ApiError
from anthropic_router.providers import http1
from anthropic_router.providers.base import JsonAsStream
from anthropic_router.providers.errors import error_from_response, stream_timeout
from anthropic_router.watchdog import Watchdog

if TYPE_CHECKING:  # imported with the first cold-path session: 0.2 s off start-up
    import aiohttp

JSON = dict[str, Any]

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class _Stream:
    def __init__(self, response: http1.Response, idle_timeout: float) -> None:
        self._response = response
        self._idle_timeout = idle_timeout

    async def chunks(self, deadline: float | None = None) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop)  # one timer per stream, re-armed lazily (watchdog.py)
        response, idle = self._response, self._idle_timeout
        end = deadline if deadline is not None else float("inf")
        try:
            while True:
                at = loop.time() + idle
                try:
                    chunk = await dog.within(response.readany(), at if at < end else end)
                except TimeoutError as exc:
                    raise stream_timeout(at >= end) from exc
                if not chunk:
                    return
                yield chunk
        except http1.UpstreamClosed as exc:
            raise ApiError("api_error", f"upstream connection lost: {exc}") from exc
        finally:
            dog.close()

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end, else the connection is closed.
        self._response.release()


# Per-request auth headers (OAuth tokens that expire); static keys go in `headers`.
AuthHeaders = Callable[["aiohttp.ClientSession"], Awaitable[Mapping[str, str]]]
# Where a body goes: (URL, body to send). Databricks puts the model in the URL, for one.
Endpoint = Callable[[JSON], tuple[str, JSON]]


class Timeouts(TypedDict):
    connect_timeout: float
    first_byte_timeout: float
    read_timeout: float


def timeouts(settings: Settings) -> Timeouts:
    """The provider's timeout arguments from the settings, the same for every upstream."""
    return {
        "connect_timeout": settings.connect_timeout,
        "first_byte_timeout": settings.first_byte_timeout,
        "read_timeout": settings.stream_idle_timeout,
    }


class OpenAIChatProvider:
    """Also serves Anthropic-shaped upstreams (Databricks' native Claude route): the
    transport is the same, only the URL and what the app does with the bytes differ."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        headers: Mapping[str, str],
        connect_timeout: float,
        first_byte_timeout: float,
        read_timeout: float,
        chat_path: str = "/chat/completions",
        models_path: str = "/models",
        endpoint: Endpoint | None = None,
        auth: AuthHeaders | None = None,
        models_key: str = "data",
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.models_url = self.base_url + models_path
        self._chat_url = base_url.rstrip("/") + chat_path
        self._models_url = base_url.rstrip("/") + models_path
        self._endpoint = endpoint or (lambda body: (self._chat_url, body))
        self.auth = auth
        self._models_key = models_key
        self._headers = {"Content-Type": "application/json", **headers}
        self._first_byte_timeout = first_byte_timeout
        self._idle_timeout = read_timeout
        self._connect_timeout = connect_timeout
        # The hot path (complete, open_stream) runs on the lean client; aiohttp serves the
        # cold ones (model lists, probes, OAuth tokens), created when first needed.
        self._session: aiohttp.ClientSession | None = None
        self._pools: dict[str, http1.Pool] = {}
        self._targets: dict[str, tuple[http1.Pool, bytes]] = {}
        self._static_names = {name.lower() for name in self._headers}
        self._opened = False

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self._connect_timeout,
                sock_connect=self._connect_timeout,
                # No sock_read: it would also bound the wait for headers (FIRST_BYTE_TIMEOUT's
                # job); silence between body chunks is bounded per read (`_read_cold`).
                sock_read=None,
            )
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
            )
        return self._session

    def open(self) -> None:
        """Ready the connection pools (called at start-up, inside the event loop)."""
        self._opened = True
        self._target(self._chat_url)

    @property
    def is_open(self) -> bool:
        return self._opened

    async def complete(self, body: JSON, headers: Mapping[str, str]) -> JSON:
        response = await self._post(body, headers)
        try:
            raw = await _read(response, self._idle_timeout)
        finally:
            response.release()
        if response.status != 200:
            raise error_from_response(response.status, raw, response.headers)
        return _parse_completion(raw)

    async def open_stream(self, body: JSON, headers: Mapping[str, str]) -> _Stream:
        response = await self._post(body, headers)
        if response.status != 200:
            try:
                raw = await _read(response, self._idle_timeout)
            finally:
                response.release()
            raise error_from_response(response.status, raw, response.headers)
        if "json" in response.headers.get("content-type", ""):
            try:
                completion = _parse_completion(await _read(response, self._idle_timeout))
            finally:
                response.release()
            raise JsonAsStream(completion)
        return _Stream(response, self._idle_timeout)

    def unsupported(self, body: JSON) -> list[str]:
        return []  # sends the body as converted; the conversion reports what it dropped

    async def list_models(self) -> list[JSON]:
        import aiohttp

        try:
            headers = {**self._headers, **(await self.auth(self.session) if self.auth else {})}
            async with self.session.get(self._models_url, headers=headers) as response:
                if response.status != 200:
                    return []
                data = orjson.loads(await _read_cold(response, self._idle_timeout))
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, ApiError):
            return []
        models = data.get(self._models_key) if isinstance(data, dict) else None
        found = []
        for model in models if isinstance(models, list) else []:
            if isinstance(model, dict) and "id" not in model and isinstance(model.get("name"), str):
                model = {**model, "id": model["name"]}  # Databricks lists endpoints by name
            if isinstance(model, dict) and isinstance(model.get("id"), str):
                found.append(model)
        return found

    async def get_json(self, url: str) -> Any:
        """GET `url` with this upstream's headers: the JSON body of a 200, else None (for
        start-up probes, which must never fail start-up)."""
        import aiohttp

        try:
            headers = {**self._headers, **(await self.auth(self.session) if self.auth else {})}
            async with self.session.get(url, headers=headers) as response:
                if response.status != 200:
                    return None
                return orjson.loads(await _read_cold(response, self._idle_timeout))
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, ApiError):
            return None

    async def aclose(self) -> None:
        self._opened = False
        for pool in self._pools.values():
            pool.close()
        if self._session is not None:
            await self._session.close()

    def _target(self, url: str) -> tuple[http1.Pool, bytes]:
        """The pool for `url`'s origin and the request head its requests share (request
        line, Host and the static headers), built once per URL."""
        known = self._targets.get(url)
        if known is None:
            origin = http1.Origin(url)
            key = f"{origin.host_header}|{origin.ssl is not None}"
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = http1.Pool(origin, connect_timeout=self._connect_timeout)
            target = http1.target_of(url)
            head = http1.encode_head("POST", target, origin.host_header, self._headers)
            known = (pool, head)
            if len(self._targets) < 1024:  # Databricks: one URL per model; bounded anyway
                self._targets[url] = known
        return known

    async def _post(self, body: JSON, extra_headers: Mapping[str, str]) -> http1.Response:
        """POST `body`; `extra_headers` (request id, an opted-in client key, OAuth tokens)
        override the static ones. Connection failures become retryable Anthropic errors."""
        auth = await self.auth(self.session) if self.auth else {}
        url, body = self._endpoint(body)
        pool, head = self._target(url)
        extra = {**auth, **extra_headers} if auth else extra_headers
        if extra:
            if any(name.lower() in self._static_names for name in extra):
                merged = {**self._headers, **extra}
                target = http1.target_of(url)
                head = http1.encode_head("POST", target, pool.origin.host_header, merged)
            else:
                head += http1.encode_headers(extra)
        try:
            return await pool.request(head, orjson.dumps(body), self._first_byte_timeout)
        except http1.ConnectTimeout as exc:
            message = "could not connect to the upstream in time (CONNECT_TIMEOUT)"
            raise ApiError("timeout_error", message, retryable=True) from exc
        except TimeoutError as exc:
            message = "upstream sent no response headers in time (FIRST_BYTE_TIMEOUT)"
            raise ApiError("timeout_error", message, retryable=True) from exc
        except http1.UpstreamClosed as exc:
            message = f"upstream connection failed: {exc}"
            raise ApiError("api_error", message, status=502, retryable=True) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake
            raise ApiError(
                "api_error", "could not connect to the upstream", status=502, retryable=True
            ) from exc


async def _read(response: http1.Response, idle_timeout: float) -> bytes:
    """The whole body, each wait for more bounded by `idle_timeout`."""
    loop = asyncio.get_running_loop()
    dog = Watchdog(loop)
    try:
        chunks: list[bytes] = []
        size = 0
        while chunk := await dog.within(response.readany(), loop.time() + idle_timeout):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise ApiError("api_error", "upstream response is too large", status=502)
            chunks.append(chunk)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except TimeoutError as exc:
        message = "upstream went silent while sending its answer (STREAM_IDLE_TIMEOUT)"
        raise ApiError("timeout_error", message, retryable=True) from exc
    except http1.UpstreamClosed as exc:
        message = f"upstream connection lost: {exc}"
        raise ApiError("api_error", message, status=502, retryable=True) from exc
    finally:
        dog.close()
    return body


async def _read_cold(response: aiohttp.ClientResponse, idle_timeout: float) -> bytes:
    """An aiohttp body (model lists, probes), bounded in size and silence."""
    chunks: list[bytes] = []
    size = 0
    while True:
        async with asyncio.timeout(idle_timeout):
            chunk = await response.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ApiError("api_error", "upstream response is too large", status=502)
        chunks.append(chunk)


def _parse_completion(raw: bytes) -> JSON:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        snippet = "an HTML page" if raw.lstrip().startswith(b"<") else "a non-JSON body"
        raise ApiError("api_error", f"upstream answered with {snippet}", status=502) from None
    if not isinstance(data, dict):
        raise ApiError("api_error", "upstream answered with a non-object JSON body", status=502)
    return data
