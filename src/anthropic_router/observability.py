"""Request ids, the per-exchange record, and JSON logging.

One record per exchange (like mitmproxy's flow): it collects what happened and is logged once,
as one line, when the exchange ends. Message content and keys are never part of it.
"""

from __future__ import annotations

import logging
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
    backend: str | None = None
    stream: bool = False
    error_type: str | None = None
    error_message: str | None = None
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    retries: int = 0
    dropped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

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
            "backend": self.backend,
            "stream": self.stream,
            "error_type": self.error_type,
            "error": self.error_message,
            "stop_reason": self.stop_reason,
            "usage": self.usage,
            "retries": self.retries,
            "dropped": self.dropped or None,
            "ms": self.timings,
        }
        return {key: value for key, value in data.items() if value is not None}


def log_exchange(exchange: Exchange) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info("exchange", extra={"fields": exchange.record()})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
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


def configure_logging(level: str, json_logs: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
