"""The status page's figures (`GET /ui/api/stats`): this process's live figures
(ui/stats.py) and, from the store, every instance's tokens and cost per model and per key
over the last hour and day, and the batches in progress."""

from __future__ import annotations

import logging
import time
from typing import Any

from anthropic_router.store import StoreError

log = logging.getLogger("anthropic_router.ui")

USAGE_SQL = (
    "SELECT {column} AS name, COUNT(*) AS requests,"
    " SUM(input_tokens + cache_read_tokens + cache_creation_tokens) AS input_tokens,"
    " SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost,"
    " SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced"
    " FROM usage_ledger WHERE ts >= ? GROUP BY {column} ORDER BY requests DESC LIMIT 50"
)
COLUMNS = {"model": "route", "key": "COALESCE(key_name, key_id, '(no key)')"}
BATCHES_SQL = (
    "SELECT id, status, total, created_at FROM message_batches"
    " WHERE status IN ('in_progress', 'canceling') ORDER BY created_at DESC LIMIT 20"
)


async def stats(app: Any) -> dict[str, Any]:
    gateway = app.gateway
    data: dict[str, Any] = gateway.live.snapshot() if gateway.live is not None else {}
    data["routes"] = _routes(app.router, data.get("targets", {}))
    ledger = gateway.ledger
    if ledger is not None:
        data["ledger"] = {
            "queued": ledger.queued,
            "written": ledger.written,
            "dropped": ledger.dropped,
            "failed": ledger.failed,
        }
        data["usage"] = await _usage(gateway.store)
    data["batches"] = await _batches(app.store)
    return data


async def _usage(store: Any) -> dict[str, list[dict[str, Any]]]:
    now = time.time()
    found: dict[str, list[dict[str, Any]]] = {}
    for by, column in COLUMNS.items():
        for period, seconds in (("hour", 3600), ("day", 86400)):
            try:
                rows = await store.fetch(USAGE_SQL.format(column=column), (now - seconds,))
            except StoreError as error:
                log.warning(
                    "status page: ledger query failed", extra={"fields": {"error": str(error)}}
                )
                rows = []
            found[f"{by}-{period}"] = [_usage_row(row) for row in rows]
    return found


def _usage_row(row: dict[str, Any]) -> dict[str, Any]:
    requests, unpriced = int(row["requests"]), int(row["unpriced"] or 0)
    return {
        "name": row["name"],
        "requests": requests,
        "input_tokens": int(row["input_tokens"] or 0),
        "output_tokens": int(row["output_tokens"] or 0),
        # None: no request of the group could be priced (unknown, not zero).
        "cost_usd": float(row["cost"]) if unpriced < requests else None,
        "unpriced": unpriced,
    }


async def _batches(store: Any) -> list[dict[str, Any]]:
    if store is None:
        return []
    try:
        rows = await store.fetch(BATCHES_SQL)
    except StoreError:  # no batches tables in this store (the feature is off or older)
        return []
    return [
        {"id": r["id"], "status": r["status"], "total": r["total"], "created_at": r["created_at"]}
        for r in rows
    ]


def _routes(router: Any, targets: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    names = [*router.aliases, "claude-opus-4-8", "claude-sonnet-4-5", "claude-haiku-4-5"]
    found = []
    for name in dict.fromkeys(names):
        route = router.resolve(name)
        for target in route.targets:
            label = f"{target.backend}:{target.upstream_model}"
            seen = targets.get(label, {})
            found.append(
                {
                    "route": name,
                    "target": label,
                    "requests": seen.get("requests", 0),
                    "error_rate": seen.get("error_rate"),
                }
            )
    return found
