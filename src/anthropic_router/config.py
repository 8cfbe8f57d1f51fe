"""One typed settings object, read from the environment and `.env` once, at start-up.

Env names are the seed's (PROXY_BACKEND, OPENROUTER_MIN_P, IMAGE_MAX_SIZE, ...): they are the
users' interface. Nothing reads `os.environ` at request time; the routing file's
`os.environ/NAME` secrets are read once, at start-up, when it is loaded.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from anthropic_router.convert.profiles import server_name
from anthropic_router.store import check_url, redact_url


class ProxyBackend(StrEnum):
    OPENROUTER = "OPENROUTER"
    AZURE_DATABRICKS = "AZURE_DATABRICKS"
    LITELLM_OPENROUTER = "LITELLM_OPENROUTER"
    OPENAI_COMPATIBLE = "OPENAI_COMPATIBLE"


# Tier defaults per backend: (BIG_MODEL, SMALL_MODEL). Databricks models are endpoint names.
DEFAULT_MODELS = {
    ProxyBackend.OPENROUTER: ("anthropic/claude-sonnet-4.5", "anthropic/claude-haiku-4.5"),
    ProxyBackend.LITELLM_OPENROUTER: ("anthropic/claude-sonnet-4.5", "anthropic/claude-haiku-4.5"),
    ProxyBackend.AZURE_DATABRICKS: ("databricks-claude-sonnet-4-5", "databricks-claude-haiku-4-5"),
}


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


_SECRET_FIELDS = (
    "openrouter_api_key",
    "proxy_api_key",
    "databricks_pat",
    "databricks_client_secret",
    "openai_compatible_api_key",
    "brave_api_key",
    "tavily_api_key",
    "admin_api_key",
)
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# .env.example's values are `your_openrouter_api_key`, `your_personal_access_token`, ...
_PLACEHOLDER_PREFIX = "your_"


class Settings(BaseSettings):
    """Every setting of the server. Secrets are `SecretStr` so they never print."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(4000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)

    # Unset: detected from the credentials present (see `detect_backend`).
    proxy_backend: ProxyBackend | None = None
    openrouter_api_key: SecretStr | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    openrouter_http_referer: str | None = None
    openrouter_app_title: str | None = "anthropic-router"

    # Azure Databricks model serving: a PAT, or OAuth machine-to-machine credentials.
    databricks_host: str | None = None
    databricks_pat: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DATABRICKS_PAT", "DATABRICKS_TOKEN")
    )
    databricks_client_id: str | None = None
    databricks_client_secret: SecretStr | None = None
    # Claude endpoints take the Anthropic request untranslated on Databricks' native route.
    databricks_native_anthropic: bool = True

    # Any OpenAI chat-completions server (Ollama, vLLM, llama.cpp, LM Studio).
    openai_compatible_base_url: str | None = None
    openai_compatible_api_key: SecretStr | None = None
    # Which server that is, for its capability profile: auto (detected at start-up from
    # /v1/models and version endpoints), generic, llama.cpp, llama-cpp-python, vllm, ollama,
    # lmstudio. A routing-file entry's `server:` wins for that route.
    openai_compatible_server: str = "auto"
    # Seconds each start-up detection probe may take (an unreachable server: generic profile).
    openai_compatible_detect_timeout: float = Field(3.0, gt=0)

    # Tiers: empty means the backend's default (DEFAULT_MODELS); SMALL falls back to BIG.
    big_model: str = ""
    middle_model: str | None = None
    small_model: str = ""
    model_map_file: Path | None = None

    # Seed phase 2: OpenRouter extensions, added to every upstream request when set.
    openrouter_extensions_enable: bool = True
    openrouter_min_p: float | None = Field(None, ge=0, le=1)
    openrouter_top_a: float | None = Field(None, ge=0, le=1)
    openrouter_repetition_penalty: float | None = Field(None, gt=0, le=2)
    openrouter_provider: dict[str, Any] | None = None
    openrouter_models: Annotated[list[str], NoDecode] = []
    openrouter_transforms: Annotated[list[str], NoDecode] = []

    # Seed phase 3: OpenAI advanced parameters, added when set.
    openai_advanced_enable: bool = True
    openai_frequency_penalty: float | None = Field(None, ge=-2, le=2)
    openai_presence_penalty: float | None = Field(None, ge=-2, le=2)
    openai_seed: int | None = None
    openai_logit_bias: dict[str, float] | None = None

    # Seed phase 1: multi-modal content.
    multi_modal_enable: bool = True
    image_max_size: int = Field(10 * 1024 * 1024, gt=0)
    supported_image_formats: Annotated[list[str], NoDecode] = ["jpeg", "png", "gif", "webp"]

    # Timeouts in seconds: whole exchange, TCP connect, wait for the upstream's response
    # headers (time to first byte), and silence between two stream chunks.
    request_timeout: float = Field(600.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    first_byte_timeout: float = Field(300.0, gt=0)
    stream_idle_timeout: float = Field(300.0, gt=0)
    # Past this many concurrent /v1/messages requests, answer 529 overloaded_error at once.
    max_concurrent_requests: int = Field(1000, ge=1)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    stream_ping_interval: float = Field(15.0, gt=0)
    # Freeze the start-up heap out of the garbage collector and collect the young generation
    # less often (docs/11-benchmarks.md: GC was ~60 µs of a request's CPU).
    gc_tuning: bool = True
    upstream_max_retries: int = Field(2, ge=0, le=10)
    max_request_body: int = Field(32 * 1024 * 1024, gt=0)
    # All request bodies being read at once, per process (docs/09: the memory formula).
    max_inflight_body_bytes: int = Field(256 * 1024 * 1024, gt=0)

    proxy_api_key: SecretStr | None = None
    # Opt-in: send each client's own key upstream as its OpenRouter key (then PROXY_API_KEY
    # and OPENROUTER_API_KEY must be unset: the client's key is the only credential).
    forward_client_key: bool = False

    log_level: str = "INFO"
    json_logs: bool = True
    log_file: str | None = None
    log_file_max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    log_file_backups: int = Field(5, ge=0)
    # Opt-in: log request bodies, truncated, with secret-looking fields and values masked.
    log_bodies: bool = False
    metrics_enable: bool = True
    # Answer Claude Code's `max_tokens: 1` probes locally instead of calling the upstream.
    local_side_calls: bool = False

    # The response cache (cache/, docs/16-caching.md); not Anthropic prompt caching. Off
    # unless PROMPT_CACHE_ENABLE or PROMPT_CACHING_ENABLE (the seed's two names) says true;
    # either one false turns it off. Off by default: see `response_cache_enabled`.
    prompt_cache_enable: bool | None = None
    prompt_caching_enable: bool | None = None
    prompt_cache_ttl: float = Field(3600.0, gt=0)
    prompt_cache_max_bytes: int = Field(256 * 1024 * 1024, gt=0)
    prompt_cache_max_entry_bytes: int = Field(8 * 1024 * 1024, gt=0)
    prompt_cache_only_deterministic: bool = False
    prompt_cache_wait_timeout: float = Field(60.0, ge=0)
    prompt_cache_namespace: str = Field("response-cache", min_length=1)

    # The durable store (store/): SQLite file relative to the working directory by default;
    # postgresql://... when several instances share it. Pool and timeout apply to PostgreSQL.
    database_url: str = "sqlite:///anthropic-router.db"
    database_pool_size: int = Field(10, ge=1, le=1000)
    database_connect_timeout: float = Field(5.0, gt=0)
    # Seed phase 4: message batches (the store opens when a feature that needs it is on).
    batch_processing_enable: bool = True
    # Redis (rediskv.py), shared by instances when set; the timeouts keep an outage cheap.
    redis_url: str | None = None
    redis_key_prefix: str = "anthropic-router:"
    redis_socket_timeout: float = Field(0.25, gt=0)
    redis_connect_timeout: float = Field(0.25, gt=0)
    redis_max_connections: int = Field(64, ge=1)
    redis_retry_interval: float = Field(2.0, ge=0)

    # Message batches (batches/, docs/15-batches.md). Requests per batch and bytes per create
    # body (Anthropic's limits), batch requests run at once per instance (apart from
    # MAX_CONCURRENT_REQUESTS), how long results stay, and the lease an instance holds on a
    # request it runs (renewed every third of it; a dead instance's leases are reclaimed).
    batch_max_size: int = Field(100_000, ge=1)
    batch_max_bytes: int = Field(256 * 1024 * 1024, gt=0)
    batch_concurrency: int = Field(8, ge=1, le=1000)
    batch_results_retention_days: float = Field(29.0, gt=0)
    batch_expiry_seconds: float = Field(24 * 3600.0, gt=0)
    batch_lease_seconds: float = Field(60.0, ge=1)
    batch_poll_interval: float = Field(1.0, gt=0)
    batch_sweep_interval: float = Field(5.0, gt=0)
    batch_retry_base_delay: float = Field(5.0, gt=0)
    batch_retry_max_delay: float = Field(600.0, gt=0)
    # Emulated for every model (docs/04-conversion.md): tool-call repair, and the route that
    # writes `compact_20260112` summaries (empty: SMALL_MODEL).
    tool_call_repair: bool = True
    compaction_model: str = ""
    # Context edits applied to every request that does not bring one of the same type (a
    # JSON list of `context_management.edits` entries): for upstreams with small windows.
    context_management_default_edits: list[dict[str, Any]] = []

    @field_validator("context_management_default_edits")
    @classmethod
    def _known_edits(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        known = ("clear_tool_uses_20250919", "clear_thinking_20251015", "compact_20260112")
        for edit in value:
            if edit.get("type") not in known:
                raise ValueError(f"edit type must be one of {', '.join(known)}")
        return value

    # Server tools run by the router (docs/17-server-tools.md): web search, web fetch, MCP.
    server_tools_enable: bool = True
    server_tool_max_iterations: int = Field(10, ge=1, le=100)
    # Anthropic-native targets (Databricks Claude) get server tools untouched.
    server_tools_native_passthrough: bool = True
    web_search_provider: Literal["auto", "searxng", "brave", "tavily", "openrouter", "none"] = (
        "auto"
    )
    web_search_max_results: int = Field(5, ge=1, le=20)
    web_search_timeout: float = Field(15.0, gt=0)
    searxng_url: str | None = None
    brave_api_key: SecretStr | None = None
    brave_base_url: str = "https://api.search.brave.com/res/v1"
    tavily_api_key: SecretStr | None = None
    tavily_base_url: str = "https://api.tavily.com"
    web_search_openrouter_model: str = "openai/gpt-4o-mini"
    # Loopback, private, link-local and metadata addresses are refused unless this is set.
    web_fetch_allow_private: bool = False
    # Narrower: these private hosts (`host` or `host:port`) only, e.g. an intranet wiki.
    web_fetch_private_allowlist: Annotated[list[str], NoDecode] = []
    web_fetch_timeout: float = Field(20.0, gt=0)
    web_fetch_max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    web_fetch_max_redirects: int = Field(5, ge=0, le=20)
    web_fetch_max_content_tokens: int = Field(100_000, gt=0)
    mcp_server_allowlist: Annotated[list[str], NoDecode] = []
    mcp_connect_timeout: float = Field(10.0, gt=0)
    mcp_call_timeout: float = Field(60.0, gt=0)

    # The gateway (gateway/, ui/; docs/18-operations.md): client keys from the store with
    # budgets and rate limits, the usage ledger, the Admin-API-shaped reports, /ui.
    keys_enable: bool = False
    keys_cache_ttl: float = Field(5.0, ge=0)  # revocation reaches every instance within it
    admin_api_key: SecretStr | None = None  # reports and /ui; both are off when unset
    ledger_enable: bool | None = None  # None: on when KEYS_ENABLE or ADMIN_API_KEY is set
    ledger_retention_days: int = Field(90, ge=0)  # 0 keeps every row
    ledger_queue_size: int = Field(10_000, ge=1)
    ledger_flush_interval: float = Field(1.0, gt=0)

    _backend_reason: str = PrivateAttr("PROXY_BACKEND")

    @field_validator(
        "openrouter_models",
        "openrouter_transforms",
        "supported_image_formats",
        "mcp_server_allowlist",
        "web_fetch_private_allowlist",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("supported_image_formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        return [fmt.lower().removeprefix("image/").replace("jpg", "jpeg") for fmt in value]

    @field_validator(*_SECRET_FIELDS, mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        """`OPENROUTER_API_KEY=` (a line left empty in .env) means unset, not an empty key."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper() in _LOG_LEVELS:
            return value.strip().upper()
        raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")

    @field_validator("proxy_backend", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "openrouter_base_url",
        "openai_compatible_base_url",
        "searxng_url",
        "brave_base_url",
        "tavily_base_url",
    )
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("openai_compatible_server")
    @classmethod
    def _server(cls, value: str) -> str:
        return "auto" if value.strip().lower() == "auto" else server_name(value)

    @model_validator(mode="after")
    def _check_gateway(self) -> Settings:
        if self.keys_enable and self.forward_client_key:
            # A store key is the router's, not an OpenRouter key to pass on.
            raise ValueError("KEYS_ENABLE=true cannot be combined with FORWARD_CLIENT_KEY=true")
        return self

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return check_url(value.strip())

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected redis://HOST:PORT/DB, rediss://... or unix://PATH")
        return value.strip()

    @field_validator("databricks_host")
    @classmethod
    def _databricks_url(cls, value: str | None) -> str | None:
        """`adb-123.4.azuredatabricks.net` means https; an explicit scheme is kept."""
        if not value or not value.strip():
            return None
        value = value.strip().rstrip("/")
        return value if "://" in value else f"https://{value}"

    @model_validator(mode="after")
    def _check_backend(self) -> Settings:
        if self.forward_client_key and (self.openrouter_api_key or self.proxy_api_key):
            raise ValueError(
                "FORWARD_CLIENT_KEY=true needs OPENROUTER_API_KEY and PROXY_API_KEY unset"
            )
        backend, reason = detect_backend(self)
        self.proxy_backend = backend
        self._backend_reason = reason
        if self.databricks_client_id and self.databricks_client_secret is None:
            raise ValueError("DATABRICKS_CLIENT_ID is set but DATABRICKS_CLIENT_SECRET is not")
        if backend is ProxyBackend.AZURE_DATABRICKS and not self.databricks_configured:
            raise ValueError(
                "PROXY_BACKEND=AZURE_DATABRICKS needs DATABRICKS_HOST and DATABRICKS_PAT "
                "(or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET)"
            )
        if backend is ProxyBackend.OPENAI_COMPATIBLE:
            if not self.openai_compatible_base_url:
                raise ValueError("PROXY_BACKEND=OPENAI_COMPATIBLE needs OPENAI_COMPATIBLE_BASE_URL")
            if not self.big_model:
                raise ValueError(
                    "PROXY_BACKEND=OPENAI_COMPATIBLE needs BIG_MODEL (a model the server has)"
                )
        default_big, default_small = DEFAULT_MODELS.get(backend, (self.big_model, ""))
        self.big_model = self.big_model or default_big
        self.small_model = self.small_model or default_small or self.big_model
        return self

    @property
    def backend(self) -> ProxyBackend:
        """The effective backend (PROXY_BACKEND, or what detection chose)."""
        return self.proxy_backend or ProxyBackend.OPENROUTER

    @property
    def backend_reason(self) -> str:
        return self._backend_reason

    @property
    def databricks_configured(self) -> bool:
        return bool(self.databricks_host) and (
            self.databricks_pat is not None or self.databricks_client_id is not None
        )

    @property
    def client_keys(self) -> list[bytes]:
        if self.proxy_api_key is None:
            return []
        raw = self.proxy_api_key.get_secret_value()
        return [key.strip().encode() for key in raw.split(",") if key.strip()]

    @property
    def ledger_enabled(self) -> bool:
        if self.ledger_enable is not None:
            return self.ledger_enable
        return self.keys_enable or self.admin_api_key is not None

    @property
    def gateway_enabled(self) -> bool:
        """Whether any gateway feature is on (keys, ledger, reports, /ui)."""
        return self.keys_enable or self.ledger_enabled or self.admin_api_key is not None

    @property
    def response_cache_enabled(self) -> bool:
        """Off unless asked for: a cache replays one sampled answer to every identical
        request, which an API never does, and an agent that re-sends a request after a bad
        answer would get the same bad answer back. Whoever wants replays says so."""
        toggles = (self.prompt_cache_enable, self.prompt_caching_enable)
        return True in toggles and False not in toggles

    @property
    def store_enabled(self) -> bool:
        """Whether a feature that keeps state in the store (DATABASE_URL) is on."""
        return self.batch_processing_enable or self.gateway_enabled

    @property
    def effective_middle_model(self) -> str:
        return self.middle_model or self.big_model

    def warnings(self) -> list[str]:
        """Settings that start but will likely fail at request time."""
        found = []
        uses_openrouter = self.backend in (ProxyBackend.OPENROUTER, ProxyBackend.LITELLM_OPENROUTER)
        if uses_openrouter and self.openrouter_api_key is None and not self.forward_client_key:
            found.append("OPENROUTER_API_KEY is not set: OpenRouter will answer 401")
        if self.forward_client_key and not uses_openrouter:
            found.append(
                "FORWARD_CLIENT_KEY only applies to OpenRouter targets; "
                f"{self.backend.value} uses its own credentials"
            )
        found += self._server_tool_warnings()
        for name in _SECRET_FIELDS:
            value = getattr(self, name)
            if value is not None and value.get_secret_value().startswith(_PLACEHOLDER_PREFIX):
                found.append(
                    f"{name.upper()} still holds the .env.example placeholder; set the real value"
                )
        if self.host not in ("127.0.0.1", "localhost", "::1") and self.proxy_api_key is None:
            found.append(
                f"HOST={self.host} is reachable from other machines and PROXY_API_KEY is unset"
            )
        return found

    def _server_tool_warnings(self) -> list[str]:
        needs = {
            "searxng": ("SEARXNG_URL", self.searxng_url),
            "brave": ("BRAVE_API_KEY", self.brave_api_key),
            "tavily": ("TAVILY_API_KEY", self.tavily_api_key),
        }.get(self.web_search_provider)
        if needs is not None and needs[1] is None:
            return [f"WEB_SEARCH_PROVIDER={self.web_search_provider} needs {needs[0]}"]
        return []

    def public_view(self) -> dict[str, Any]:
        """The effective configuration with every secret replaced by whether it is set."""
        data = self.model_dump(mode="json")
        for name in _SECRETS:
            data[name] = "<set>" if getattr(self, name) is not None else None
        data["database_url"] = redact_url(self.database_url)
        data["redis_url"] = self.redis_url and redact_url(self.redis_url)
        data["middle_model"] = self.effective_middle_model
        data["proxy_backend"] = self.backend.value
        data["backend_reason"] = self.backend_reason
        return data


_SECRETS = _SECRET_FIELDS


def detect_backend(settings: Settings) -> tuple[ProxyBackend, str]:
    """PROXY_BACKEND when set; else the seed's backward-compatible detection from which
    credentials are present; else OPENROUTER. Returns the backend and why it was chosen."""
    if settings.proxy_backend is not None:
        return settings.proxy_backend, f"PROXY_BACKEND={settings.proxy_backend.value}"
    if settings.openrouter_api_key is not None or settings.forward_client_key:
        return ProxyBackend.OPENROUTER, "PROXY_BACKEND unset; OPENROUTER_API_KEY is set"
    if settings.databricks_configured:
        return (
            ProxyBackend.AZURE_DATABRICKS,
            "PROXY_BACKEND unset; only Databricks credentials (DATABRICKS_HOST) are set",
        )
    if settings.openai_compatible_base_url:
        return (
            ProxyBackend.OPENAI_COMPATIBLE,
            "PROXY_BACKEND unset; only OPENAI_COMPATIBLE_BASE_URL is set",
        )
    return ProxyBackend.OPENROUTER, "PROXY_BACKEND unset; OPENROUTER is the default"
