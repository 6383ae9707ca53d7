"""The portal in a real browser: headless Chromium driven by Playwright over a live server.

CI installs Debian's chromium; without it these tests fail (they never skip), saying so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from appliance.bootstrap import InitResult
from appliance.portal.app import create_app
from appliance.portal.auth import INVALID_LOGIN
from appliance.services import Services
from tests.conftest import LiveServer, unique
from tests.portal.helpers import PASSWORD, make_user

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def portal_url(pg_home: tuple[Services, InitResult]) -> Iterator[str]:
    server = LiveServer(create_app(services=pg_home[0]))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `apt-get install chromium` (CI installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert errors == [], f"browser console errors (a CSP violation?): {errors}"


def sign_in(page: Page, username: str, password: str) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_sign_in_see_health_and_sign_out(
    page: Page, portal_url: str, pg_services: Services, tmp_path: Path
) -> None:
    username = make_user(pg_services, ["operator"])

    page.goto(f"{portal_url}/")
    expect(page).to_have_url(f"{portal_url}/login")
    expect(page.locator("h1")).to_have_text("Sign in")

    sign_in(page, username, PASSWORD)
    expect(page).to_have_url(f"{portal_url}/")
    expect(page.get_by_test_id("user")).to_have_text(username)
    expect(page.get_by_test_id("nav-user")).to_have_text(username)
    health = page.get_by_test_id("health")
    expect(health).to_be_visible()
    expect(page.get_by_test_id("database").locator(".badge")).to_have_text("ok")
    expect(health.locator("tr[data-service=worker]")).to_be_visible()
    expect(health.locator("tr[data-service=beat]")).to_be_visible()
    # The stylesheet loaded under the CSP: the badge is styled, not plain text.
    badge = page.get_by_test_id("database").locator(".badge")
    assert badge.evaluate("el => getComputedStyle(el).borderRadius") == "10px"

    screenshot = tmp_path / "portal-home.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0
    artifacts = os.environ.get("APPLIANCE_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / "portal-home.png")

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(f"{portal_url}/login")
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    page.goto(f"{portal_url}/")
    expect(page).to_have_url(f"{portal_url}/login")


def test_wrong_password_shows_the_error(page: Page, portal_url: str) -> None:
    page.goto(f"{portal_url}/login")
    sign_in(page, "admin", unique("wrong-password"))
    expect(page.get_by_test_id("login-error")).to_have_text(INVALID_LOGIN)
    expect(page).to_have_url(f"{portal_url}/login")
    expect(page.locator("#password")).to_have_value("")
