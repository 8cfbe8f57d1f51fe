"""Web search providers: SearXNG (JSON API), Brave Search, Tavily and OpenRouter's web
plugin. Each turns a query into `SearchResult`s; the router then applies the client's
domain filters itself, whatever the provider did with them.

A failure is a `ToolFailure` carrying the Anthropic error code the client sees
(`unavailable`, `too_many_requests`, ...), never an empty result that looks like "nothing
found".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from anthropic_router.config import ProxyBackend, Settings
from anthropic_router.convert.server_tools import SearchResult

if TYPE_CHECKING:  # imported by the first search (tools/loop.py opens the session)
    import aiohttp

JSON = dict[str, Any]

MAX_QUERY_LENGTH = 400  # Anthropic's `query_too_long` boundary is not published; be generous


class ToolFailure(Exception):
    """A tool call that failed with an Anthropic error code."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail or code


@dataclass(frozen=True, slots=True)
class Ask:
    """One search as a provider gets it: the query, the tool's config and how to ask."""

    session: aiohttp.ClientSession
    settings: Settings
    query: str
    config: JSON
    count: int
    timeout: aiohttp.ClientTimeout
    client_key: str | None


def provider_name(settings: Settings) -> str | None:
    """The provider WEB_SEARCH_PROVIDER chooses; `auto` takes the first configured one."""
    chosen = settings.web_search_provider
    if chosen == "none":
        return None
    if chosen != "auto":
        return chosen
    if settings.searxng_url:
        return "searxng"
    if settings.brave_api_key is not None:
        return "brave"
    if settings.tavily_api_key is not None:
        return "tavily"
    openrouter = settings.backend in (ProxyBackend.OPENROUTER, ProxyBackend.LITELLM_OPENROUTER)
    if openrouter and (settings.openrouter_api_key is not None or settings.forward_client_key):
        return "openrouter"
    return None


async def search(
    session: aiohttp.ClientSession,
    settings: Settings,
    query: str,
    config: JSON,
    client_key: str | None = None,
) -> list[SearchResult]:
    """Results for `query` under the tool's `config` (domains, user_location)."""
    import aiohttp  # loaded already: the session is one

    if not query.strip():
        raise ToolFailure("invalid_tool_input", "empty query")
    if len(query) > MAX_QUERY_LENGTH:
        raise ToolFailure("query_too_long")
    name = provider_name(settings)
    if name is None:
        raise ToolFailure("unavailable", "no web search provider is configured")
    count = settings.web_search_max_results
    timeout = aiohttp.ClientTimeout(total=settings.web_search_timeout)
    try:
        ask = Ask(session, settings, query, config, count, timeout, client_key)
        results = await _PROVIDERS[name](ask)
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, ValueError) as exc:
        raise ToolFailure("unavailable", f"{name}: {type(exc).__name__}") from None
    return filter_domains(results, config)[:count]


async def _get_json(ask: Ask, method: str, url: str, **kw: Any) -> Any:
    async with ask.session.request(method, url, timeout=ask.timeout, **kw) as response:
        if response.status == 429:
            raise ToolFailure("too_many_requests")
        if response.status >= 400:
            raise ToolFailure("unavailable", f"provider answered HTTP {response.status}")
        return orjson.loads(await response.read())


async def _searxng(ask: Ask) -> list[SearchResult]:
    params = {"q": _site_query(ask.query, ask.config), "format": "json"}
    data = await _get_json(ask, "GET", f"{ask.settings.searxng_url}/search", params=params)
    return _results(data.get("results"), "publishedDate")


async def _brave(ask: Ask) -> list[SearchResult]:
    settings, config = ask.settings, ask.config
    key = settings.brave_api_key.get_secret_value() if settings.brave_api_key else ""
    params: JSON = {"q": _site_query(ask.query, config), "count": str(min(ask.count * 2, 20))}
    country = (config.get("user_location") or {}).get("country")
    if isinstance(country, str) and len(country) == 2:
        params["country"] = country.lower()
    headers = {"X-Subscription-Token": key, "Accept": "application/json"}
    url = f"{settings.brave_base_url}/web/search"
    data = await _get_json(ask, "GET", url, params=params, headers=headers)
    web = data.get("web") if isinstance(data.get("web"), dict) else {}
    return [
        SearchResult(
            str(item.get("url", "")),
            str(item.get("title") or item.get("url", "")),
            _strip_tags(str(item.get("description") or "")),
            item.get("page_age") or item.get("age") or None,
        )
        for item in _items(web.get("results"))
    ]


async def _tavily(ask: Ask) -> list[SearchResult]:
    settings, config = ask.settings, ask.config
    key = settings.tavily_api_key.get_secret_value() if settings.tavily_api_key else ""
    body: JSON = {"query": ask.query, "max_results": ask.count, "search_depth": "basic"}
    if config.get("allowed_domains"):
        body["include_domains"] = list(config["allowed_domains"])
    if config.get("blocked_domains"):
        body["exclude_domains"] = list(config["blocked_domains"])
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = f"{settings.tavily_base_url}/search"
    data = await _get_json(ask, "POST", url, data=orjson.dumps(body), headers=headers)
    return _results(data.get("results"), "published_date")


async def _openrouter(ask: Ask) -> list[SearchResult]:
    """OpenRouter's web plugin: a small model answers the query with web results, which
    come back as `url_citation` annotations on the message (url, title, content)."""
    settings = ask.settings
    key = settings.openrouter_api_key.get_secret_value() if settings.openrouter_api_key else ""
    key = ask.client_key or key
    plugin: JSON = {"id": "web", "max_results": ask.count}
    body = {
        "model": settings.web_search_openrouter_model,
        "messages": [{"role": "user", "content": _site_query(ask.query, ask.config)}],
        "plugins": [plugin],
    }
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if settings.openrouter_app_title:
        headers["X-Title"] = settings.openrouter_app_title
    url = f"{settings.openrouter_base_url}/chat/completions"
    data = await _get_json(ask, "POST", url, data=orjson.dumps(body), headers=headers)
    choices = data.get("choices") or [{}]
    message = choices[0].get("message") or {} if isinstance(choices[0], dict) else {}
    results = []
    seen: set[str] = set()
    for annotation in _items(message.get("annotations")):
        citation = annotation.get("url_citation") or {}
        url = str(citation.get("url") or "")
        if annotation.get("type") != "url_citation" or not url or url in seen:
            continue
        seen.add(url)
        title = str(citation.get("title") or url)
        results.append(SearchResult(url, title, str(citation.get("content") or ""), None))
    return results


_PROVIDERS = {"searxng": _searxng, "brave": _brave, "tavily": _tavily, "openrouter": _openrouter}


def _items(value: Any) -> list[JSON]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _results(value: Any, date_key: str) -> list[SearchResult]:
    """SearXNG's and Tavily's result lists: url, title, content; they differ only in the
    name of the date field."""
    return [
        SearchResult(
            str(item.get("url", "")),
            str(item.get("title") or item.get("url", "")),
            str(item.get("content") or ""),
            item.get(date_key) or None,
        )
        for item in _items(value)
    ]


def _site_query(query: str, config: JSON) -> str:
    """One allowed domain narrows the query itself (`site:`), which every engine reads;
    with several the router's filter does the work."""
    allowed = config.get("allowed_domains") or []
    if len(allowed) == 1 and isinstance(allowed[0], str):
        return f"{query} site:{allowed[0]}"
    return query


def _strip_tags(text: str) -> str:
    # Brave marks matched words with <strong>.
    return text.replace("<strong>", "").replace("</strong>", "")


def domain_matches(url: str, domains: list[Any]) -> bool:
    """Whether `url`'s host is one of `domains` or below one (`example.com` covers
    `docs.example.com`); a domain with a path (`example.com/blog`) also checks the path."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    for domain in domains:
        if not isinstance(domain, str) or not domain:
            continue
        wanted = domain.lower().removeprefix("https://").removeprefix("http://")
        wanted_host, _, wanted_path = wanted.partition("/")
        wanted_host = wanted_host.removeprefix("www.")
        host_ok = host == wanted_host or host.endswith("." + wanted_host)
        if host_ok and (not wanted_path or parts.path.lstrip("/").startswith(wanted_path)):
            return True
    return False


def filter_domains(results: list[SearchResult], config: JSON) -> list[SearchResult]:
    allowed = config.get("allowed_domains") or []
    blocked = config.get("blocked_domains") or []
    kept = []
    for result in results:
        if not result.url.startswith(("http://", "https://")):
            continue
        if allowed and not domain_matches(result.url, allowed):
            continue
        if blocked and domain_matches(result.url, blocked):
            continue
        kept.append(result)
    return kept
