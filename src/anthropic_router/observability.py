"""Request ids, the per-exchange record, and JSON logging.

One record per exchange (like mitmproxy's flow): it collects what happened and is logged once,
as one line, when the exchange ends. Message content and keys are never part of it.
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger("anthropic_router")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


@dataclass(slots=True)
class Exchange:
    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    client_model: str | None = None
    upstream_model: str | None = None
    route_reason: str | None = None
    rule: str | None = None  # the routing file's `rules:` entry that matched
    backend: str | None = None
    stream: bool = False
    error_type: str | None = None
    error_message: str | None = None
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    usage_estimated: bool = False  # the upstream sent no usage: `usage` is the router's count
    retries: int = 0
    client_key_id: str | None = None
    key_name: str | None = None  # a store key's name (gateway/keys.py)
    cost_usd: float | None = None
    fallback: str | None = None
    dropped: list[str] = field(default_factory=list)
    batch_id: str | None = None  # a message batch's request: its batch and custom_id
    custom_id: str | None = None
    # Tool-call repairs, inputs that failed their schema, context edits (context.py, repair.py)
    repaired: list[str] = field(default_factory=list)
    invalid_tool_inputs: int = 0
    context_edits: list[str] = field(default_factory=list)
    cache: str | None = None  # the response cache's result: hit, miss, bypass
    timings: dict[str, float] = field(default_factory=dict)
    # Server tools run by the router: {"tool", "outcome", "ms"} per call.
    server_tools: list[dict[str, Any]] = field(default_factory=list)

    def mark(self, phase: str) -> None:
        """Record milliseconds since the exchange started under `phase`."""
        self.timings[phase] = round((time.perf_counter() - self.started) * 1000, 3)

    def record(self) -> dict[str, Any]:
        self.mark("total")
        data = {
            "event": "exchange",
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "client_model": self.client_model,
            "upstream_model": self.upstream_model,
            "route": self.route_reason,
            "rule": self.rule,
            "backend": self.backend,
            "stream": self.stream,
            "error_type": self.error_type,
            "error": self.error_message,
            "stop_reason": self.stop_reason,
            "usage": self.usage,
            "usage_estimated": self.usage_estimated or None,
            "retries": self.retries,
            "client_key_id": self.client_key_id,
            "key_name": self.key_name,
            "cost_usd": self.cost_usd,
            "fallback": self.fallback,
            "dropped": self.dropped or None,
            "batch_id": self.batch_id,
            "custom_id": self.custom_id,
            "repaired": self.repaired or None,
            "invalid_tool_inputs": self.invalid_tool_inputs or None,
            "context_edits": self.context_edits or None,
            "cache": self.cache,
            "ms": self.timings,
            "server_tools": self.server_tools or None,
        }
        return {key: value for key, value in data.items() if value is not None}


def log_exchange(exchange: Exchange, metrics_enabled: bool = True) -> None:
    """The one log line of an exchange; the same record feeds the metrics."""
    record = exchange.record()
    if metrics_enabled:
        from anthropic_router import metrics

        metrics.observe(record)
    if log.isEnabledFor(logging.INFO):
        log.info("exchange", extra={"fields": record})


def key_id(key: str | None) -> str | None:
    """A short, stable, non-reversible id for a client key: enough to tell keys apart."""
    if not key:
        return None
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]


_SECRET_FIELDS = re.compile(r"(?i)(api[_-]?key|authorization|token|secret|password|cookie)")
_SECRET_VALUES = re.compile(r"(sk-[A-Za-z0-9_-]{8,}|dapi[0-9a-f]{8,}|Bearer\s+\S+)")


def mask_secrets(value: Any) -> Any:
    """A copy of a JSON value with secret-looking fields and values masked (LOG_BODIES)."""
    if isinstance(value, dict):
        return {
            k: "***" if _SECRET_FIELDS.search(str(k)) else mask_secrets(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return _SECRET_VALUES.sub("***", value)
    return value


def body_for_log(body: Any, limit: int = 4000) -> str:
    text = orjson.dumps(mask_secrets(body), default=str).decode()
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,  # which worker, with --workers N
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra = " ".join(f"{k}={v}" for k, v in fields.items()) if isinstance(fields, dict) else ""
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.getMessage()} {extra}"
        return line.rstrip() + (
            ("\n" + self.formatException(record.exc_info)) if record.exc_info else ""
        )


def configure_logging(
    level: str,
    json_logs: bool,
    log_file: str | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
) -> None:
    """Console (JSON or human) on stderr, plus an optional rotating JSON log file."""
    # What the formatters never print, not collected per record: the logging HOWTO's
    # "Optimization" switches. Caller lookup (a stack walk) was most of a record's cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    setattr(logging, "logAsyncioTasks", False)  # noqa: B010  (Python 3.12+; unused before)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(JsonFormatter() if json_logs else ConsoleFormatter())
    handlers: list[logging.Handler] = [console]
    if log_file:
        rotating = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        rotating.setFormatter(JsonFormatter())
        handlers.append(rotating)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
