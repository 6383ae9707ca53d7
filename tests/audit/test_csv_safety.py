"""CSV formula injection: every cell the appliance writes into a CSV that a spreadsheet
would read as a formula (OWASP: one starting with ``= + - @``, tab or CR) is prefixed with
a single quote; a byte-order mark for Excel only when asked; otherwise the bytes are
exactly what they were.

End to end: a failed portal login (and an event targeting a user) whose name is a
``=HYPERLINK(...)`` formula, exported through ``appliance audit export --format csv``
(a subprocess, as an auditor runs it) and through the portal's export, parsed back with
Python's csv module.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.audit.ecs import CSV_COLUMNS, csv_lines
from appliance.audit.events import AuditAction, event_row, record
from appliance.portal.app import create_app
from appliance.services import Services
from tests import timing
from tests.portal.helpers import login, sign_in

PAYLOAD = '=HYPERLINK("http://evil.example/","open")'
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def export_csv(rows: list[dict[str, Any]], **options: Any) -> str:
    return "".join(csv_lines(rows, **options))


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


# The writer -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", DANGEROUS, ids=["eq", "plus", "minus", "at", "tab", "cr"])
def test_each_dangerous_prefix_is_neutralised(prefix: str) -> None:
    value = f"{prefix}cmd|' /C calc'!A0"
    row = event_row(AuditAction.LOGIN_FAILED, outcome="failure", actor=value, target=value)
    (parsed,) = parse(export_csv([row]))
    assert parsed["user.name"] == "'" + value
    assert parsed["appliance.target"] == "'" + value
    assert parsed["event.action"] == "auth.login.failed"  # the safe cells are untouched


def test_the_shared_function_follows_owasp() -> None:
    from appliance.csvsafe import neutralise

    for prefix in DANGEROUS:
        assert neutralise(f"{prefix}1+1") == f"'{prefix}1+1"
    for safe in ("", "alice", "1+1", " =1", "'=1", "a=b", "\n=1", "中文"):
        assert neutralise(safe) == safe


def test_safe_output_is_byte_identical_and_the_header_is_ecs() -> None:
    rows = [
        event_row(AuditAction.LOGIN_FAILED, outcome="failure", actor="alice 中文", target="a,b"),
        event_row(AuditAction.KEY_CREATE, actor='say "hi"', target="k1", note="x"),
    ]
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row["timestamp"].isoformat(timespec="microseconds").replace("+00:00", "Z"),
                row["event_id"],
                row["action"],
                row["outcome"],
                row["actor"],
                *[""] * 9,
                row["target"],
                "",
            ]
        )
    assert export_csv(rows) == expected.getvalue()
    assert export_csv(rows).startswith("@timestamp,event.id,")  # our header, as ECS names it
    assert export_csv([]) == "".join(csv_lines([]))


def test_the_bom_variant_starts_with_a_bom_once() -> None:
    row = event_row(AuditAction.LOGIN_FAILED, outcome="failure", actor=PAYLOAD)
    plain, with_bom = export_csv([row, row]), export_csv([row, row], bom=True)
    assert with_bom == BOM + plain and with_bom.count(BOM) == 1
    assert export_csv([], bom=True) == BOM + export_csv([])


# End to end: a failed portal login, exported by the CLI and by the portal -------------------


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        env=env,
        capture_output=True,
        timeout=timing.scaled(120),
    )


def hostile_events(services: Services) -> FlaskClient:
    """A failed portal login as PAYLOAD and an admin event targeting PAYLOAD; returns an
    auditor's portal client."""
    app = create_app(services=services)
    attacker = app.test_client()
    response = login(attacker, PAYLOAD, "not-the-password")
    assert response.status_code == 200 and "data-testid" in response.text  # refused, form again
    with services.db.session() as session:
        record(session, AuditAction.USER_UNLOCK, actor="admin", target=PAYLOAD)
    auditor = app.test_client()
    sign_in(auditor, services, ["auditor"])
    return auditor


def hostile_rows(text: str) -> tuple[dict[str, str], dict[str, str]]:
    table = parse(text)
    (failed,) = [r for r in table if r["event.action"] == str(AuditAction.LOGIN_FAILED)]
    (unlock,) = [r for r in table if r["event.action"] == str(AuditAction.USER_UNLOCK)]
    return failed, unlock


def test_a_formula_user_name_is_neutralised_in_every_export(sqlite_services: Services) -> None:
    auditor = hostile_events(sqlite_services)
    home = sqlite_services.settings.home

    result = cli(home, "audit", "export", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert not result.stdout.startswith(BOM.encode())
    failed, unlock = hostile_rows(result.stdout.decode("utf-8"))
    assert failed["user.name"] == "'" + PAYLOAD and failed["event.outcome"] == "failure"
    assert unlock["appliance.target"] == "'" + PAYLOAD and unlock["user.name"] == "admin"

    response = auditor.get("/audit/export?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert not response.data.startswith(BOM.encode())
    failed, unlock = hostile_rows(response.data.decode("utf-8"))
    assert failed["user.name"] == "'" + PAYLOAD
    assert unlock["appliance.target"] == "'" + PAYLOAD
    # The JSON lines export is data, not a spreadsheet: the name stays as it was typed.
    assert PAYLOAD.replace('"', '\\"') in auditor.get("/audit/export?format=jsonl").text


def test_the_bom_option_of_the_cli_and_the_portal(sqlite_services: Services) -> None:
    auditor = hostile_events(sqlite_services)
    home = sqlite_services.settings.home

    result = cli(home, "audit", "export", "--format", "csv", "--bom")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"\xef\xbb\xbf@timestamp,")  # UTF-8, whatever the locale
    failed, _ = hostile_rows(result.stdout.decode("utf-8-sig"))
    assert failed["user.name"] == "'" + PAYLOAD

    assert 'href="/audit/export?format=csv&amp;bom=1"' in auditor.get("/audit").text
    response = auditor.get("/audit/export?format=csv&bom=1")
    assert response.status_code == 200
    assert response.data.startswith(b"\xef\xbb\xbf@timestamp,")
    assert response.data.decode("utf-8").startswith(BOM)
    failed, unlock = hostile_rows(response.data.decode("utf-8-sig"))
    assert failed["user.name"] == "'" + PAYLOAD and unlock["appliance.target"] == "'" + PAYLOAD

    refused = cli(home, "audit", "export", "--format", "jsonl", "--bom")
    assert refused.returncode != 0 and b"--bom" in refused.stderr
    assert auditor.get("/audit/export?format=jsonl&bom=1").status_code == 400
    assert auditor.get("/audit/export?format=csv&bom=maybe").status_code == 400
