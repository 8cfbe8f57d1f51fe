"""`GET /v1/organizations/usage_report/messages` and `GET /v1/organizations/cost_report`
from the usage ledger, in the shapes of Anthropic's Admin API (Usage and Cost API), so
tooling written for it works against the router. Authenticated like that API: `x-api-key`
is ADMIN_API_KEY; both are off (404) when it is unset.

Buckets are whole UTC minutes, hours or days (`1m`, `1h`, `1d`; the cost report has only
`1d`), every bucket of the page listed, empty ones with `results: []`. Paging is by bucket:
`limit` buckets a page, `next_page` an opaque token for the next bucket's start.

What the router adds or cannot know: `workspace_id` and `inference_geo` are always null;
`model` is the model the client asked for; a cost the ledger could not price is unknown,
not zero: its requests are counted in `unpriced_requests` and a group with no priced
request has `amount: null`.
"""

from __future__ import annotations

import base64
import hmac
import time
from typing import Any
from urllib.parse import parse_qs

from anthropic_router.errors import ApiError, invalid_request, not_found
from anthropic_router.gateway.keys import iso_time, parse_iso_time
from anthropic_router.http import Scope, Send, header, send_json

WIDTHS = {"1m": 1, "1h": 60, "1d": 1440}  # minutes per bucket
LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, maximum) buckets
USAGE_GROUPS = {
    "api_key_id": "key_id",
    "model": "route",
    "service_tier": "service_tier",
    "context_window": (
        "CASE WHEN input_tokens + cache_read_tokens + cache_creation_tokens > 200000"
        " THEN '200k-1M' ELSE '0-200k' END"
    ),
    "workspace_id": None,
    "inference_geo": None,
}
COST_GROUPS = {
    "workspace_id": None,
    "description": "route",
    "api_key_id": "key_id",
    "model": "route",
}
FILTERS = {"api_key_ids": "key_id", "models": "route", "service_tiers": "service_tier"}


async def serve_report(gateway: Any, scope: Scope, send: Send, path: str) -> bool:
    """Serve one report (True), or raise the Anthropic error for this request."""
    admin = gateway.settings.admin_api_key
    reports = {
        "/v1/organizations/usage_report/messages": usage_report,
        "/v1/organizations/cost_report": cost_report,
    }
    if admin is None or path not in reports or scope["method"] != "GET":
        raise not_found(f"no route for {scope['method']} {scope['path']}")
    presented = (header(scope, b"x-api-key") or "").encode()
    if not hmac.compare_digest(presented, admin.get_secret_value().encode()):
        raise ApiError("authentication_error", "invalid or missing admin API key (x-api-key)")
    if gateway.ledger is None:
        raise invalid_request("the usage ledger is off (LEDGER_ENABLE=false): no reports")
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    body = await reports[path](gateway.store, query)
    await send_json(send, 200, body, [])
    return True


def _list(query: dict[str, list[str]], name: str) -> list[str]:
    """`name[]=a&name[]=b`, `name=a&name=b` or `name=a,b` alike."""
    values = query.get(f"{name}[]", []) + query.get(name, [])
    return [item for value in values for item in value.split(",") if item]


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _moment(text: str, name: str) -> float:
    try:
        return parse_iso_time(text)
    except ValueError:
        raise invalid_request(f"{name}: expected an RFC 3339 timestamp, got {text!r}") from None


class Window:
    """The page of buckets a request asks for, in minutes since the epoch."""

    def __init__(self, query: dict[str, list[str]], widths: tuple[str, ...]) -> None:
        width = _one(query, "bucket_width") or "1d"
        if width not in widths:
            raise invalid_request(f"bucket_width: expected one of {', '.join(widths)}")
        self.width = width
        self.step = WIDTHS[width]
        default, maximum = LIMITS[width]
        limit_text = _one(query, "limit")
        try:
            self.limit = int(limit_text) if limit_text else default
        except ValueError:
            raise invalid_request("limit: expected an integer") from None
        if not 1 <= self.limit <= maximum:
            raise invalid_request(f"limit: must be between 1 and {maximum} for {width} buckets")
        starting = _one(query, "starting_at")
        if not starting:
            raise invalid_request("starting_at: required (an RFC 3339 timestamp)")
        first = self._snap(_moment(starting, "starting_at"))
        page = _one(query, "page")
        if page:
            first = max(first, _page_start(page))
        ending = _one(query, "ending_at")
        # Buckets that end by `ending_at`; without it, up to the current (partial) bucket.
        if ending:
            end = self._snap(_moment(ending, "ending_at"))
        else:
            end = self._snap(time.time()) + self.step
        self.end = max(end, first + self.step)
        self.first = first
        self.stop = min(self.end, first + self.limit * self.step)

    def _snap(self, seconds: float) -> int:
        minute = int(seconds // 60)
        return minute - minute % self.step

    def buckets(self) -> list[int]:
        return list(range(self.first, self.stop, self.step))

    def paging(self) -> dict[str, Any]:
        more = self.stop < self.end
        token = (
            "page_" + base64.urlsafe_b64encode(_iso(self.stop).encode()).decode() if more else None
        )
        return {"has_more": more, "next_page": token}


def _page_start(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.removeprefix("page_").encode()).decode()
        return int(_moment(text, "page") // 60)
    except (ValueError, ApiError):
        raise invalid_request("page: not a next_page token from this API") from None


def _iso(minute: int) -> str:
    return iso_time(minute * 60.0) or ""


def _where(query: dict[str, list[str]], window: Window) -> tuple[str, list[Any]]:
    clauses = ["minute >= ?", "minute < ?"]
    params: list[Any] = [window.first, window.stop]
    for name, column in FILTERS.items():
        values = _list(query, name)
        if values:
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            params += values
    return " AND ".join(clauses), params


def _groups(query: dict[str, list[str]], allowed: dict[str, str | None]) -> list[str]:
    names = _list(query, "group_by")
    for name in names:
        if name not in allowed:
            raise invalid_request(f"group_by: unknown {name!r}; expected {', '.join(allowed)}")
    return list(dict.fromkeys(names))


async def _rows(
    store: Any, query: dict[str, list[str]], window: Window, groups: list[str],
    allowed: dict[str, str | None], sums: str,
) -> list[dict[str, Any]]:  # fmt: skip
    columns = [f"{allowed[g]} AS g_{g}" for g in groups if allowed[g]]
    select = ", ".join([f"minute / {window.step} AS bucket", *columns, sums])
    where, params = _where(query, window)
    group = ", ".join(["bucket", *(f"g_{g}" for g in groups if allowed[g])])
    sql = f"SELECT {select} FROM usage_ledger WHERE {where} GROUP BY {group} ORDER BY {group}"
    rows: list[dict[str, Any]] = await store.fetch(sql, params)
    return rows


USAGE_SUMS = (
    "SUM(input_tokens) AS input, SUM(output_tokens) AS output,"
    " SUM(cache_read_tokens) AS cache_read, SUM(cache_creation_tokens) AS cache_write,"
    " SUM(cache_creation_1h_tokens) AS cache_write_1h, SUM(web_search_requests) AS searches"
)
COST_SUMS = (
    "SUM(cost_usd) AS cost, COUNT(*) AS requests,"
    " SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced"
)


def _page(window: Window, rows: list[dict[str, Any]], result: Any) -> dict[str, Any]:
    by_bucket: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_bucket.setdefault(int(row["bucket"]) * window.step, []).append(result(row))
    data = [
        {
            "starting_at": _iso(start),
            "ending_at": _iso(start + window.step),
            "results": by_bucket.get(start, []),
        }
        for start in window.buckets()
    ]
    return {"data": data, **window.paging()}


async def usage_report(store: Any, query: dict[str, list[str]]) -> dict[str, Any]:
    window = Window(query, ("1m", "1h", "1d"))
    groups = _groups(query, USAGE_GROUPS)
    rows = await _rows(store, query, window, groups, USAGE_GROUPS, USAGE_SUMS)

    def result(row: dict[str, Any]) -> dict[str, Any]:
        one_hour = int(row["cache_write_1h"] or 0)
        return {
            **{name: row.get(f"g_{name}") for name in USAGE_GROUPS},
            "uncached_input_tokens": int(row["input"] or 0),
            "cache_creation": {
                "ephemeral_1h_input_tokens": one_hour,
                "ephemeral_5m_input_tokens": int(row["cache_write"] or 0) - one_hour,
            },
            "cache_read_input_tokens": int(row["cache_read"] or 0),
            "output_tokens": int(row["output"] or 0),
            "server_tool_use": {"web_search_requests": int(row["searches"] or 0)},
        }

    return _page(window, rows, result)


async def cost_report(store: Any, query: dict[str, list[str]]) -> dict[str, Any]:
    window = Window(query, ("1d",))
    groups = _groups(query, COST_GROUPS)
    by_description = "description" in groups
    if by_description and "model" in groups:
        groups.remove("model")  # the description is per model already
    rows = await _rows(store, query, window, groups, COST_GROUPS, COST_SUMS)

    def result(row: dict[str, Any]) -> dict[str, Any]:
        model = row.get("g_description") or row.get("g_model")
        priced = int(row["requests"]) - int(row["unpriced"])
        return {
            "currency": "USD",
            # Lowest currency units (cents) as a decimal string, as Anthropic's API does.
            "amount": _cents(row["cost"]) if priced else None,
            "workspace_id": None,
            "description": f"{model} Usage" if by_description else None,
            "cost_type": "tokens" if by_description else None,
            "context_window": None,
            "model": model,
            "service_tier": None,
            "token_type": None,
            "inference_geo": None,
            "api_key_id": row.get("g_api_key_id"),
            "unpriced_requests": int(row["unpriced"]),
        }

    return _page(window, rows, result)


def _cents(cost: Any) -> str:
    text = f"{float(cost or 0) * 100:.6f}".rstrip("0").rstrip(".")
    return text or "0"
