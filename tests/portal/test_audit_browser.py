"""The audit dashboard in headless Chromium: a compliance officer filters the trail, opens
an event, verifies the chain and downloads a CSV export (fixtures from test_browser)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import insert, select

from appliance.audit import chain
from appliance.audit.events import AuditAction, event_row
from appliance.models import AuditEvent, utcnow
from appliance.services import Services
from tests.conftest import unique
from tests.portal.helpers import PASSWORD, make_user
from tests.portal.test_browser import (  # noqa: F401 (fixtures used by name)
    browser,
    page,
    portal_url,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser


def seed(services: Services) -> str:
    """API calls and admin actions of one tag over two hours; returns the tag."""
    tag = unique("ui")
    now = utcnow()
    rows = []
    for i in range(40):
        failed = i % 7 == 3
        row = event_row(
            AuditAction.API_CHAT_COMPLETION if i % 5 else AuditAction.KEY_CREATE,
            outcome="failure" if failed else ("unknown" if i % 13 == 12 else "success"),
            actor=f"{tag}-{'alice' if i % 2 else 'bob'}",
            api_key_prefix=f"sk-app-{tag[-8:]}" if i % 5 else None,
            model="deepseek-r1-distill" if i % 5 else None,
            target=f"key-{i}" if not i % 5 else None,
            status_code=(502 if failed else 200) if i % 5 else None,
            prompt_tokens=30 + i if i % 5 else None,
            privacy={"input": {"CN_PHONE": {"mask": 1 + i % 3}}} if i % 4 == 1 else None,
        )
        # Two hours that end a day ago: the dashboard's busiest keys (last 24 hours, shared
        # by every test of the session) stay as other tests expect them.
        row["timestamp"] = now - timedelta(hours=26, minutes=118 - 3 * i)
        rows.append(row)
    with services.db.session() as session:
        session.execute(insert(chain.EVENTS), rows)
    chain.seal(services.db)
    return tag


def test_auditor_filters_opens_an_event_verifies_and_exports(
    page: Page,  # noqa: F811
    portal_url: str,  # noqa: F811
    pg_services: Services,
    tmp_path: Path,
) -> None:
    tag = seed(pg_services)
    page.goto(f"{portal_url}/login")
    sign_in(page, make_user(pg_services, ["auditor"]), PASSWORD)
    page.get_by_test_id("nav-audit").click()
    expect(page).to_have_url(f"{portal_url}/audit")

    # A bad value is a field error, not a failure.
    page.fill("#q", "x" * 200)
    page.fill("#since", "2030-01-02T00:00")
    page.fill("#until", "2030-01-01T00:00")
    page.get_by_test_id("apply-filters").click()
    expect(page.get_by_test_id("error-until")).to_have_text(
        "Must not be before the start of the range."
    )
    page.get_by_test_id("clear-filters").click()

    filters = page.get_by_test_id("audit-filters")
    filters.locator("#q").fill(tag)
    filters.locator("#privacy").select_option("CN_PHONE")
    filters.locator("#actor").fill(f"{tag}-alice")
    page.get_by_test_id("apply-filters").click()
    rows = page.locator("table[data-testid=audit] tbody tr[data-event]")
    expect(rows).to_have_count(10)
    expect(page.get_by_test_id("timeline").locator("rect.seg-success").first).to_be_visible()
    filters = page.get_by_test_id("audit-filters")
    filters.locator("#privacy").select_option("")
    filters.locator("#actor").fill("")
    page.get_by_test_id("apply-filters").click()
    expect(rows).to_have_count(40)
    expect(page.get_by_test_id("timeline").locator("rect.seg-failure").first).to_be_visible()
    screenshot(page, "audit-dashboard")

    # One event in full.
    first = rows.first.get_attribute("data-event")
    page.get_by_test_id(f"open-{first}").click()
    expect(page.get_by_test_id("event-id")).to_have_text(str(first))
    with pg_services.db.session() as session:
        pos = session.scalar(select(AuditEvent.chain_pos).where(AuditEvent.event_id == first))
    expect(page.get_by_test_id("chain-pos")).to_have_text(str(pos))
    expect(page.get_by_test_id("event-ecs")).to_contain_text('"dataset": "appliance.audit"')
    screenshot(page, "audit-event")

    # Verify now: the whole chain is recomputed and the result recorded.
    page.go_back()
    page.get_by_test_id("integrity-link").click()
    page.get_by_test_id("verify-now").click()
    expect(page.get_by_role("status")).to_contain_text("The chain is intact")
    expect(page.get_by_test_id("verify-state")).to_have_attribute("data-state", "intact")
    expect(page.locator("tr[data-sink=file]")).to_be_visible()
    screenshot(page, "audit-integrity")

    # A CSV export of the filtered events, downloaded.
    page.goto(f"{portal_url}/audit?q={tag}&outcome=failure")
    with page.expect_download() as download:
        page.get_by_test_id("export-csv").click()
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    table = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert len(table) == 6 and {r["event.outcome"] for r in table} == {"failure"}
    assert all(r["user.name"].startswith(tag) for r in table)
