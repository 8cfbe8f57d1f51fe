"""The status page in a real browser: Playwright driving Debian's Chromium (headless, never
a downloaded browser). Log in, see a known sequence's numbers appear, no console errors;
a screenshot for the docs. Also the page's protections over plain HTTP."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from support.gateway import ADMIN_KEY, create_key
from support.router import RouterProcess
from support.upstream import FakeUpstream, completion, error, usage_dict

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The docs' screenshot is refreshed only on request (UPDATE_SCREENSHOTS=1): a test run must
# not leave the checkout changed.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "status-page.png"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    database = tmp_path_factory.mktemp("ui") / "ui.db"
    env = {
        "KEYS_ENABLE": "true",
        "ADMIN_API_KEY": ADMIN_KEY,
        "DATABASE_URL": f"sqlite:///{database}",
        "LEDGER_FLUSH_INTERVAL": "0.05",
    }
    with RouterProcess(upstream.url, env) as router:
        router.database_url = f"sqlite:///{database}"  # type: ignore[attr-defined]
        yield router


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), "Chromium missing: run scripts/setup-browser.sh"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _sequence(router: RouterProcess, upstream: FakeUpstream) -> None:
    """Three exchanges of key `ui-alice` (5+7 input... see the asserts) and one error."""
    key = create_key(router.database_url, "ui-alice")  # type: ignore[attr-defined]
    with anthropic.Anthropic(base_url=router.url, api_key=key, max_retries=0) as client:
        for prompt in (100, 200):
            upstream.enqueue(
                completion("x", usage=usage_dict(prompt=prompt, completion=10, cost=0.25))
            )
            client.messages.create(model="claude-opus-4-8", max_tokens=20, messages=HELLO)
        with client.messages.stream(model="claude-opus-4-8", max_tokens=20, messages=HELLO) as s:
            s.get_final_message()  # 12 in, 5 out, priced from the table
        upstream.enqueue(error(429, "slow down"))
        upstream.enqueue(error(429, "slow down"))
        upstream.enqueue(error(429, "slow down"))
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HELLO)


def test_status_page_shows_a_known_sequence(
    gateway: RouterProcess, upstream: FakeUpstream, browser: Any, tmp_path: Path
) -> None:
    _sequence(gateway, upstream)
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{gateway.url}/ui")
    page.fill("#key", "wrong")
    page.click("button[type=submit]")
    assert "Wrong admin key" in page.text_content("[role=alert]")
    problems.clear()  # the refused login is a 401 document, reported by the console
    page.fill("#key", ADMIN_KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("#updated:has-text('updated')")
    page.wait_for_function("document.querySelector('#requests').textContent === '4'")
    model_day = page.locator("#model-day tbody")
    opus = model_day.locator("tr", has_text="claude-opus-4-8")
    opus.wait_for()
    cells = opus.locator("td").all_text_contents()
    assert cells[:4] == ["claude-opus-4-8", "3", "312", "25"]
    assert cells[4].startswith("$0.50")  # 0.25 + 0.25 + the table price of the stream
    key_day = page.locator("#key-day tbody tr", has_text="ui-alice").locator("td")
    assert key_day.all_text_contents()[1] == "4"
    assert (
        page.locator("#errors tbody tr", has_text="rate_limit_error")
        .locator("td")
        .nth(1)
        .text_content()
        == "1"
    )
    recent = page.locator("#recent tbody tr")
    assert recent.count() == 4
    assert "ui-alice" in recent.first.text_content()
    routes = page.locator("#routes tbody").text_content()
    assert "openrouter:anthropic/claude-opus" in routes or "openrouter:" in routes
    assert re.fullmatch(r"\d+(\.\d+)?", page.text_content("#p50"))
    assert page.locator("#chart-rate canvas").count() >= 1
    update = os.environ.get("UPDATE_SCREENSHOTS") == "1"
    shot = DOCS_SCREENSHOT if update else tmp_path / "status-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty canvas
    assert problems == []
    page.click("text=Log out")
    page.wait_for_selector("#key")
    page.close()


def test_page_protections(gateway: RouterProcess) -> None:
    login = httpx.get(f"{gateway.url}/ui", timeout=10)
    assert login.status_code == 200 and "name=key" in login.text
    csp = login.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert login.headers["x-frame-options"] == "DENY"
    assert httpx.get(f"{gateway.url}/ui/api/stats", timeout=10).status_code == 401
    cross = httpx.post(
        f"{gateway.url}/ui/login",
        data={"key": ADMIN_KEY},
        headers={"origin": "https://evil.example"},
        timeout=10,
    )
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    good = httpx.post(f"{gateway.url}/ui/login", data={"key": ADMIN_KEY}, timeout=10)
    assert good.status_code == 303
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    session = cookie.split(";")[0]
    page = httpx.get(f"{gateway.url}/ui", headers={"cookie": session}, timeout=10)
    assert "Log out" in page.text
    forged = httpx.post(
        f"{gateway.url}/ui/logout", data={"csrf": "0" * 64}, headers={"cookie": session}, timeout=10
    )
    assert forged.status_code == 403
    tampered = session[:-1] + ("0" if session[-1] != "0" else "1")
    assert (
        httpx.get(
            f"{gateway.url}/ui/api/stats", headers={"cookie": tampered}, timeout=10
        ).status_code
        == 401
    )
    stats = httpx.get(f"{gateway.url}/ui/api/stats", headers={"cookie": session}, timeout=10)
    assert stats.status_code == 200 and "recent" in stats.json()
    assert httpx.get(f"{gateway.url}/ui/static/../page.py", timeout=10).status_code == 404
    js = httpx.get(f"{gateway.url}/ui/static/uPlot.iife.min.js", timeout=10)
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
