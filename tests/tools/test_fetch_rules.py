"""Table tests of the web fetch and search security rules: which addresses are public, which
URLs may be fetched, and how domain filters match."""

from __future__ import annotations

import pytest

from anthropic_router.convert.server_tools import SearchResult
from anthropic_router.tools.fetch import address_allowed, check_url, host_allowlisted
from anthropic_router.tools.run import conversation_urls, normalize_url
from anthropic_router.tools.search import ToolFailure, domain_matches, filter_domains


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # shared address space (carrier NAT)
        ("169.254.169.254", False),  # cloud metadata
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:8.8.8.8", True),
        ("not-an-ip", False),
    ],
)
def test_address_allowed(address: str, allowed: bool) -> None:
    assert address_allowed(address) is allowed


@pytest.mark.parametrize(
    ("url", "config", "code"),
    [
        ("ftp://example.org/file", {}, "url_not_accessible"),
        ("file:///etc/passwd", {}, "url_not_accessible"),
        ("https://user:pw@example.org/", {}, "url_not_accessible"),
        ("https://example.org/" + "a" * 250, {}, "url_too_long"),
        ("http://127.0.0.1:8080/", {}, "url_not_accessible"),
        ("http://[::1]/", {}, "url_not_accessible"),
        ("http://169.254.169.254/latest/meta-data/", {}, "url_not_accessible"),
        ("https://evil.example/", {"allowed_domains": ["example.org"]}, "url_not_allowed"),
        ("https://docs.example.org/", {"blocked_domains": ["example.org"]}, "url_not_allowed"),
        ("", {}, "invalid_tool_input"),
    ],
)
def test_check_url_refuses(url: str, config: dict[str, object], code: str) -> None:
    with pytest.raises(ToolFailure) as raised:
        check_url(url, config, allow_private=False)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("url", "allow_private", "allowlist"),
    [
        ("https://example.org/page", False, []),
        ("https://docs.example.org/", False, []),
        ("http://127.0.0.1:8080/", True, []),
        ("http://127.0.0.1:8080/", False, ["127.0.0.1:8080"]),
        ("http://10.0.0.5/wiki", False, ["10.0.0.5"]),
    ],
)
def test_check_url_allows(url: str, allow_private: bool, allowlist: list[str]) -> None:
    assert check_url(url, {"allowed_domains": []}, allow_private, allowlist) == url


def test_allowlist_is_per_port() -> None:
    assert host_allowlisted("127.0.0.1", 8080, ["127.0.0.1:8080"])
    assert not host_allowlisted("127.0.0.1", 8081, ["127.0.0.1:8080"])
    with pytest.raises(ToolFailure):
        check_url("http://127.0.0.1:8081/", {}, False, ["127.0.0.1:8080"])


@pytest.mark.parametrize(
    ("url", "domains", "matches"),
    [
        ("https://example.com/a", ["example.com"], True),
        ("https://www.example.com/a", ["example.com"], True),
        ("https://docs.example.com/a", ["example.com"], True),
        ("https://notexample.com/a", ["example.com"], False),
        ("https://example.com.evil.net/", ["example.com"], False),
        ("https://example.com/blog/post", ["example.com/blog"], True),
        ("https://example.com/shop", ["example.com/blog"], False),
        ("https://EXAMPLE.com/", ["https://example.com"], True),
    ],
)
def test_domain_matches(url: str, domains: list[str], matches: bool) -> None:
    assert domain_matches(url, domains) is matches


def test_filter_domains_drops_non_http_and_filtered() -> None:
    results = [
        SearchResult("https://a.example/1", "A"),
        SearchResult("javascript:alert(1)", "X"),
        SearchResult("https://b.example/2", "B"),
    ]
    kept = filter_domains(results, {"blocked_domains": ["b.example"]})
    assert [r.url for r in kept] == ["https://a.example/1"]
    kept = filter_domains(results, {"allowed_domains": ["b.example"]})
    assert [r.url for r in kept] == ["https://b.example/2"]


def test_conversation_urls() -> None:
    messages = [
        {"role": "user", "content": "Read https://example.org/page, then (https://x.example/a)."},
        {
            "role": "assistant",
            "content": [
                {"type": "web_search_tool_result", "content": [{"url": "https://s.example/r#top"}]}
            ],
        },
    ]
    urls = conversation_urls(messages)
    assert {"https://example.org/page", "https://x.example/a", "https://s.example/r"} <= urls
    assert normalize_url("https://example.org/page/#frag") == "https://example.org/page"
