"""An SSRF-safe web fetch for the `web_fetch` server tool.

A client (or a model it steers) chooses the URL, and the router fetches it from inside the
operator's network, so:
- only http and https; URLs of at most 250 characters (Anthropic's `url_too_long`);
- every address the host resolves to is checked against loopback, private, shared,
  link-local (cloud metadata), multicast and reserved ranges, at connect time by the
  connector's resolver (so DNS rebinding between a check and the connect cannot slip
  through) and for literal IP hosts before the request; WEB_FETCH_ALLOW_PRIVATE lifts this
  (tests on loopback, an intranet deployment) and is off by default;
- redirects are followed by hand, each hop checked the same way and counted;
- size (WEB_FETCH_MAX_BYTES) and time (WEB_FETCH_TIMEOUT) limits; no cookies, no proxy
  variables from the environment;
- content types HTML (made readable text by trafilatura), plain text, Markdown, JSON, XML
  and PDF; anything else is `unsupported_content_type`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from anthropic_router.config import Settings
from anthropic_router.tools.search import ToolFailure, domain_matches

if TYPE_CHECKING:  # aiohttp is imported when the first web fetch opens its session
    import aiohttp

JSON = dict[str, Any]

MAX_URL_LENGTH = 250
_USER_AGENT = "anthropic-router-web-fetch/1 (+https://github.com/anthropic-router)"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TEXT_TYPES = ("text/plain", "text/markdown", "application/json", "text/csv", "text/xml")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Ranges Python's ipaddress flags do not all cover: shared address space (RFC 6598) and
# the IPv6 form of AWS's metadata address.
_EXTRA_BLOCKED = (ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("fd00:ec2::/32"))


def address_allowed(address: str) -> bool:
    """Whether a resolved address is on the public internet."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in _EXTRA_BLOCKED):
        return False
    return ip.is_global and not ip.is_multicast


class BlockedAddress(OSError):
    """The host resolves only to addresses the router refuses to connect to."""


def host_allowlisted(host: str, port: int | None, allowlist: list[str]) -> bool:
    """WEB_FETCH_PRIVATE_ALLOWLIST: `host` or `host:port` entries exempt from the address
    check (an intranet site; the tests' loopback web server)."""
    host = host.lower().strip("[]")
    return host in allowlist or f"{host}:{port}" in allowlist


def open_session(settings: Settings) -> aiohttp.ClientSession:
    """The session web fetches go through (one per app; closed at shutdown)."""
    import aiohttp
    from aiohttp.resolver import ThreadedResolver

    from anthropic_router.tools.resolver import GuardedResolver

    resolver: aiohttp.abc.AbstractResolver = (
        ThreadedResolver()
        if settings.web_fetch_allow_private
        else GuardedResolver(settings.web_fetch_private_allowlist)
    )
    connector = aiohttp.TCPConnector(resolver=resolver, limit=64, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        headers={"User-Agent": _USER_AGENT},
    )


@dataclass(slots=True)
class Page:
    """A fetched URL: its final address, what it is and its content."""

    url: str
    content_type: str
    text: str = ""
    pdf: bytes = b""
    title: str | None = None


def check_url(
    url: str, config: JSON, allow_private: bool, allowlist: list[str] | None = None
) -> str:
    """The URL if the tool may fetch it, else ToolFailure with Anthropic's code."""
    if not isinstance(url, str) or not url:
        raise ToolFailure("invalid_tool_input", "no url")
    if len(url) > MAX_URL_LENGTH:
        raise ToolFailure("url_too_long")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolFailure("url_not_accessible", "only http and https URLs can be fetched")
    if parts.username or parts.password:
        raise ToolFailure("url_not_accessible", "URLs with credentials are refused")
    allowed, blocked = config.get("allowed_domains") or [], config.get("blocked_domains") or []
    if (allowed and not domain_matches(url, allowed)) or (blocked and domain_matches(url, blocked)):
        raise ToolFailure("url_not_allowed")
    private_ok = allow_private or host_allowlisted(parts.hostname, parts.port, allowlist or [])
    if not private_ok and _is_ip_literal(parts.hostname) and not address_allowed(parts.hostname):
        raise ToolFailure("url_not_accessible", "private and reserved addresses are refused")
    return url


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def fetch(session: aiohttp.ClientSession, settings: Settings, url: str, config: JSON) -> Page:
    """The page at `url`, following checked redirects, within the limits."""
    import aiohttp  # loaded already: the session is one

    try:
        async with asyncio.timeout(settings.web_fetch_timeout):
            return await _follow(session, settings, url, config)
    except TimeoutError:
        raise ToolFailure("url_not_accessible", "the fetch timed out") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, BlockedAddress) or isinstance(
            getattr(exc, "__cause__", None), BlockedAddress
        ):
            raise ToolFailure("url_not_accessible", str(exc.os_error)) from None
        raise ToolFailure("url_not_accessible", "could not connect") from None
    except aiohttp.ClientError as exc:
        raise ToolFailure("url_not_accessible", type(exc).__name__) from None


async def _follow(
    session: aiohttp.ClientSession, settings: Settings, url: str, config: JSON
) -> Page:
    allow_private = settings.web_fetch_allow_private
    for _ in range(settings.web_fetch_max_redirects + 1):
        check_url(url, config, allow_private, settings.web_fetch_private_allowlist)
        async with session.get(url, allow_redirects=False) as response:
            if response.status in _REDIRECTS and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status == 429:
                raise ToolFailure("too_many_requests")
            if response.status >= 400:
                raise ToolFailure("url_not_accessible", f"HTTP {response.status}")
            body = await _read_limited(response, settings.web_fetch_max_bytes)
            content_type = response.content_type.lower()
            charset = response.charset or "utf-8"
        return await _page(str(url), content_type, body, charset)
    raise ToolFailure("url_not_accessible", "too many redirects")


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise ToolFailure("content_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise ToolFailure("content_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _page(url: str, content_type: str, body: bytes, charset: str) -> Page:
    if content_type == "application/pdf" or body.startswith(b"%PDF-"):
        return Page(url, "application/pdf", pdf=body)
    text = body.decode(charset, errors="replace")
    if content_type in _HTML_TYPES:
        # trafilatura parses with lxml: milliseconds to a second on big pages, off the loop.
        readable = await asyncio.to_thread(html_to_text, text)
        return Page(url, content_type, text=readable, title=html_title(text))
    if content_type in _TEXT_TYPES or content_type.startswith("text/"):
        return Page(url, content_type, text=text)
    raise ToolFailure("unsupported_content_type", content_type or "no content type")


def html_to_text(html: str) -> str:
    """The readable text of a page: trafilatura's main-content extraction as Markdown,
    or its whole-page text when the page has no article-like part."""
    import trafilatura

    extracted = trafilatura.extract(
        html, output_format="markdown", include_links=True, include_tables=True, favor_recall=True
    )
    if extracted and extracted.strip():
        return str(extracted)
    return str(trafilatura.html2txt(html) or "")


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def html_title(html: str) -> str | None:
    import html as html_module

    match = _TITLE.search(html[:200_000])
    if not match:
        return None
    title = " ".join(html_module.unescape(match.group(1)).split())
    return title or None


def pdf_text(data: bytes) -> str:
    """The text of a PDF for the model (the client gets the PDF itself)."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages).strip()
    except (PdfReadError, ValueError, KeyError, TypeError):
        return ""
