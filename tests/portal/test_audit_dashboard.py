"""The audit dashboard through Flask's test client: every filter narrows, bad filters get
field errors (an export is refused with 400), search, pagination, the timeline, an event
in full, verify now (intact, then a tampered event named), CSV/JSON exports (audited,
capped) and who may see what."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select, update

from appliance.audit import chain
from appliance.audit.events import AuditAction, event_row
from appliance.models import AuditEvent, AuditShipError
from appliance.portal import audit_views
from appliance.portal.app import create_app
from appliance.services import Services
from tests.conftest import scratch_services, unique
from tests.portal.helpers import csrf_token, sign_in

T0 = datetime(2020, 3, 4, 10, 0, tzinfo=UTC)
RANGE = "since=2020-03-04T00:00&until=2020-03-08T00:00"
EVENT_RE = re.compile(r'<tr data-action="[^"]*" data-target="[^"]*" data-event="([^"]+)"')


@pytest.fixture(params=["postgresql", "sqlite"])
def services(request: pytest.FixtureRequest) -> Services:
    """The session's PostgreSQL home, or a fresh SQLite one (the filters are portable)."""
    name = "pg_services" if request.param == "postgresql" else "sqlite_services"
    found: Services = request.getfixturevalue(name)
    return found


@pytest.fixture()
def fresh_pg(tmp_path: Path) -> Iterator[Services]:
    """A home on a PostgreSQL database of its own (its chain can be tampered with)."""
    with scratch_services(tmp_path / "home", "appliance_dash") as services:
        yield services


def client_as(services: Services, roles: list[str]) -> tuple[Flask, FlaskClient]:
    app = create_app(services=services)
    client = app.test_client()
    sign_in(client, services, roles)
    return app, client


def seed(services: Services) -> dict[str, str]:
    """Five events in March 2020 of a unique tag: {letter: event id}, plus the tag."""
    tag = unique("dash")
    key, m1, m2 = f"sk-app-{tag[-8:]}", f"{tag}-m1", f"{tag}-m2"
    api = AuditAction.API_CHAT_COMPLETION
    specs = {
        "a": (api, "success", f"{tag}-alice", T0, {"api_key_prefix": key, "model": m1,
              "privacy": {"input": {"CN_PHONE": {"mask": 2}}}}),
        "b": (api, "failure", f"{tag}-alice", T0 + timedelta(minutes=5), {"api_key_prefix": key,
              "model": m2, "privacy": {"output": {"EMAIL": 1}}}),
        "c": (AuditAction.KEY_CREATE, "success", f"{tag}-bob", T0 + timedelta(hours=2),
              {"target": "k1", "note": "Zürich 中文 100%_off"}),
        "d": (api, "failure", f"{tag}-bob", T0 + timedelta(days=1), {"model": m1,
              "privacy": {"blocked": "CN_RESIDENT_ID"}}),
        "e": (api, "unknown", f"{tag}-alice", T0 + timedelta(days=3), {"model": m2}),
    }  # fmt: skip
    rows, ids = [], {"tag": tag, "key": key, "m1": m1}
    for letter, (action, outcome, actor, when, fields) in specs.items():
        row = event_row(action, outcome=outcome, actor=actor, **fields)
        row["timestamp"] = when
        rows.append(row)
        ids[letter] = row["event_id"]
    with services.db.session() as session:
        session.execute(insert(chain.EVENTS), rows)
    return ids


def shown(client: FlaskClient, query: str, ids: dict[str, str], within: str = RANGE) -> str:
    """The letters of the seeded events the filtered list shows, in page order."""
    response = client.get(f"/audit?{within}&{query}")
    assert response.status_code == 200, response.text
    by_id = {v: k for k, v in ids.items()}
    return "".join(by_id.get(e, "?") for e in EVENT_RE.findall(response.text))


# Filters, search, pagination, timeline ------------------------------------------------


def test_each_filter_narrows(services: Services) -> None:
    ids = seed(services)
    _, auditor = client_as(services, ["auditor"])
    tag = ids["tag"]
    # Only the seeded events lie in March 2020 with this tag in them.
    assert shown(auditor, f"q={tag}", ids) == "edcba"
    assert shown(auditor, f"q={tag.upper()}", ids) == "edcba"  # case-insensitive
    assert shown(auditor, f"actor={tag}-alice", ids) == "eba"
    assert shown(auditor, f"actor={tag}-ALICE", ids) == ""  # the user filter is exact
    assert shown(auditor, f"key={ids['key']}", ids) == "ba"
    assert shown(auditor, f"model={ids['m1']}", ids) == "da"
    assert shown(auditor, f"q={tag}&action=admin.key", ids) == "c"
    assert shown(auditor, f"q={tag}&action=admin.%25", ids) == ""  # no LIKE wildcards
    assert shown(auditor, f"q={tag}&outcome=failure", ids) == "db"
    assert shown(auditor, f"q={tag}&outcome=unknown", ids) == "e"
    assert shown(auditor, f"q={tag}&privacy=any", ids) == "dba"
    assert shown(auditor, f"q={tag}&privacy=CN_PHONE", ids) == "a"
    assert shown(auditor, f"q={tag}&privacy=EMAIL", ids) == "b"
    assert shown(auditor, f"q={tag}&privacy=CN_RESIDENT_ID", ids) == "d"
    assert shown(auditor, f"q={tag}&privacy=US_SSN", ids) == ""
    # Time: "to 10:00" includes that minute; the range is UTC.
    window = "since=2020-03-04T10:03&until=2020-03-05T10:00"
    assert shown(auditor, f"q={tag}", ids, window) == "dcb"
    assert shown(auditor, f"q={tag}", ids, "until=2020-03-04T09:59") == ""
    # Search: the details' text, non-ASCII included, and LIKE characters taken literally.
    bob = f"actor={tag}-bob"
    assert shown(auditor, bob, ids) == "dc"
    assert shown(auditor, f"{bob}&q=ZÜRICH", ids) == "c"
    assert shown(auditor, f"{bob}&q=中文", ids) == "c"
    assert shown(auditor, f"{bob}&q=100%25_off", ids) == "c"
    assert shown(auditor, f"{bob}&q=100%25%25off", ids) == ""
    assert shown(auditor, f"q={ids['a']}", ids) == "a"  # the event id


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("since=yesterday", "since", "Not a valid datetime value."),
        ("until=2020-13-01T00:00", "until", "Not a valid datetime value."),
        ("outcome=maybe", "outcome", "Not a valid choice."),
        ("privacy=SHOE_SIZE", "privacy", "Not a valid choice."),
        ("q=" + "x" * 201, "q", "Field cannot be longer than 200 characters."),
        ("actor=" + "x" * 129, "actor", "Field cannot be longer than 128 characters."),
        (
            "since=2020-03-05T00:00&until=2020-03-04T00:00",
            "until",
            "Must not be before the start of the range.",
        ),
    ],
)
def test_bad_filters_get_field_errors(
    pg_services: Services, query: str, field: str, message: str
) -> None:
    _, auditor = client_as(pg_services, ["auditor"])
    response = auditor.get(f"/audit?{query}")
    assert response.status_code == 200  # the form again, as every portal form
    assert f'data-testid="error-{field}">{message}<' in response.text
    assert "Traceback" not in response.text and 'data-testid="audit"' not in response.text
    export = auditor.get(f"/audit/export?format=csv&{query}")
    assert export.status_code == 400 and f'data-testid="error-{field}"' in export.text


def test_pagination_keeps_the_filters(pg_services: Services) -> None:
    actor = unique("many")
    rows = [event_row(AuditAction.KEY_CREATE, actor=actor, target=f"k{i}") for i in range(60)]
    with pg_services.db.session() as session:
        session.execute(insert(chain.EVENTS), rows)
    _, auditor = client_as(pg_services, ["auditor"])
    first = auditor.get(f"/audit?actor={actor}")
    assert len(EVENT_RE.findall(first.text)) == 50 and "Page 1 of 2 (60)" in first.text
    assert f"actor={actor}&amp;page=2" in first.text
    second = auditor.get(f"/audit?actor={actor}&page=2")
    assert len(EVENT_RE.findall(second.text)) == 10
    assert set(EVENT_RE.findall(first.text)).isdisjoint(EVENT_RE.findall(second.text))


def test_timeline_counts_the_filtered_events_by_outcome(pg_services: Services) -> None:
    ids = seed(pg_services)
    _, auditor = client_as(pg_services, ["auditor"])
    html = auditor.get(f"/audit?{RANGE}&q={ids['tag']}").text
    assert 'data-testid="timeline"' in html
    segments = re.findall(r'data-series="(\w+)" data-value="(\d+)"', html)
    totals: dict[str, int] = {}
    for series, value in segments:
        totals[series] = totals.get(series, 0) + int(value)
    assert totals == {"success": 2, "failure": 2, "unknown": 1}
    stacks = re.findall(r'<g class="stack" data-label="([^"]+)"', html)
    assert stacks[0] == "2020-03-04" and stacks[-1] == "2020-03-08"  # days: a bar per day
    hours = auditor.get(f"/audit?since=2020-03-04T09:00&until=2020-03-04T13:00&q={ids['tag']}")
    stacks = re.findall(r'<g class="stack" data-label="([^"]+)"', hours.text)
    assert stacks == [f"2020-03-04 {h}" for h in ("09", "10", "11", "12", "13")]
    minutes = auditor.get(f"/audit?since=2020-03-04T10:00&until=2020-03-04T10:59&q={ids['tag']}")
    stacks = re.findall(r'<g class="stack" data-label="([^"]+)"', minutes.text)
    assert len(stacks) == 60 and stacks[0] == "2020-03-04 10:00"
    assert 'data-testid="timeline-clipped"' not in html


def test_without_a_start_the_timeline_draws_the_last_30_days(pg_services: Services) -> None:
    actor = unique("long")
    rows = [event_row(AuditAction.KEY_CREATE, actor=actor) for _ in range(3)]
    for row, days in zip(rows, (90, 20, 0), strict=True):
        row["timestamp"] -= timedelta(days=days)
    with pg_services.db.session() as session:
        session.execute(insert(chain.EVENTS), rows)
    _, auditor = client_as(pg_services, ["auditor"])
    html = auditor.get(f"/audit?actor={actor}").text
    assert len(EVENT_RE.findall(html)) == 3 and 'data-testid="timeline-clipped"' in html
    stacks = re.findall(r'<g class="stack" data-label="[^"]+" data-value="(\d+)"', html)
    assert len(stacks) == 31 and sum(map(int, stacks)) == 2
    since = (rows[0]["timestamp"] - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    html = auditor.get(f"/audit?actor={actor}&since={since}").text
    stacks = re.findall(r'<g class="stack" data-label="[^"]+" data-value="(\d+)"', html)
    assert sum(map(int, stacks)) == 3 and 'data-testid="timeline-clipped"' not in html
    assert "<script" not in html


# One event ------------------------------------------------------------------------------


def test_event_detail_shows_every_field_the_chain_and_privacy(pg_services: Services) -> None:
    ids = seed(pg_services)
    sealed_row = event_row(
        AuditAction.API_CHAT_COMPLETION, actor="sealer", content_sealed="QUJDREVGR0hJSktM" * 4
    )
    with pg_services.db.session() as session:
        session.execute(insert(chain.EVENTS), [sealed_row])
    chain.seal(pg_services.db)
    _, auditor = client_as(pg_services, ["auditor"])
    page = auditor.get(f"/audit/{ids['a']}")
    assert page.status_code == 200
    with pg_services.db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.event_id == ids["a"])).one()
    assert f'data-testid="chain-pos">{event.chain_pos}<' in page.text
    assert str(event.chain_hash) in page.text
    for name in ("action", "outcome", "actor", "api_key_prefix", "model", "category"):
        assert f'data-field="{name}">{getattr(event, name)}<' in page.text
    assert '<tr data-type="CN_PHONE"><td>input</td><td>CN_PHONE</td><td>mask</td>' in page.text
    assert "&#34;dataset&#34;: &#34;appliance.audit&#34;" in page.text and ids["a"] in page.text
    assert 'data-testid="sealed-note"' not in page.text

    sealed = auditor.get(f"/audit/{sealed_row['event_id']}")
    assert 'data-testid="sealed-note"' in sealed.text
    assert "appliance audit content" in sealed.text
    assert "QUJDREVGR0hJSktM" not in sealed.text  # not even the ciphertext
    missing = auditor.get(f"/audit/{uuid.uuid4()}")
    assert missing.status_code == 404 and "Traceback" not in missing.text
    assert auditor.get("/audit/" + "x" * 300).status_code == 404


# Integrity: verify now, sinks -----------------------------------------------------------


def verify_now(client: FlaskClient) -> str:
    page = client.get("/audit/integrity")
    response = client.post("/audit/verify", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 302 and response.headers["Location"] == "/audit/integrity"
    return client.get("/audit/integrity").text


def last_verify(services: Services) -> AuditEvent:
    with services.db.session() as session:
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == AuditAction.AUDIT_VERIFY)
            .order_by(AuditEvent.seq.desc())
        ).first()
        assert event is not None
        return event


def test_verify_now_then_a_tampered_event_is_named(fresh_pg: Services) -> None:
    _, auditor = client_as(fresh_pg, ["auditor"])
    before = auditor.get("/audit/integrity").text
    assert 'data-state="never"' in before
    seed(fresh_pg)
    chain.seal(fresh_pg.db)
    head, _ = chain.head(fresh_pg.db)

    page = verify_now(auditor)
    assert f"The chain is intact: {head} events" in page
    assert 'data-testid="verify-state" data-state="intact"' in page
    event = last_verify(fresh_pg)
    assert event.outcome == "success" and event.details["events"] == head
    assert event.details["problem"] is None and event.actor
    assert f'data-testid="chain-head">{head}<' in auditor.get("/audit").text

    with fresh_pg.db.session() as session:
        target = session.scalar(select(AuditEvent.event_id).where(AuditEvent.chain_pos == 3))
        session.execute(update(AuditEvent).where(AuditEvent.chain_pos == 3).values(actor="eve"))
    page = verify_now(auditor)
    assert f"The chain is broken (edited) at position 3, {target}" in page
    assert (
        'data-state="broken"' in page and 'data-testid="last-problem">edited at position 3' in page
    )
    event = last_verify(fresh_pg)
    assert event.outcome == "failure"
    assert (event.details["problem"], event.details["pos"], event.details["where"]) == (
        "edited",
        3,
        target,
    )
    assert 'data-state="broken"' in auditor.get("/audit").text


def test_integrity_shows_sinks_lag_and_refused_documents(fresh_pg: Services) -> None:
    ids = seed(fresh_pg)
    sealed = chain.seal(fresh_pg.db)
    with fresh_pg.db.session() as session:
        session.add(AuditShipError(sink="file", event_id=ids["b"], chain_pos=3, error="mapping"))
    _, auditor = client_as(fresh_pg, ["auditor"])
    page = auditor.get("/audit/integrity").text
    assert '<tr data-sink="file">' in page
    assert f'data-testid="lag-file"><span class="error-text">{sealed.last_pos}<' in page
    assert 'data-testid="refused-file">1<' in page and ids["b"] in page and "mapping" in page
    assert f'data-testid="unsealed">{chain.unsealed_count(fresh_pg.db)}<' in page


# Export ---------------------------------------------------------------------------------


def test_exports_are_filtered_streamed_and_audited(pg_services: Services) -> None:
    ids = seed(pg_services)
    _, auditor = client_as(pg_services, ["auditor"])
    query = f"{RANGE}&q={ids['tag']}&privacy=any"
    response = auditor.get(f"/audit/export?format=csv&{query}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["event.id"] for r in table] == [ids["a"], ids["b"], ids["d"]]  # oldest first
    assert json.loads(table[0]["privacy"]) == {"input": {"CN_PHONE": {"mask": 2}}}
    event = last_event(pg_services, AuditAction.AUDIT_EXPORT)
    assert event.details["format"] == "csv" and event.details["events"] == 3
    filters = event.details["filters"]
    assert filters["privacy"] == "any" and filters["search_chars"] == len(ids["tag"])
    assert filters["since"].startswith("2020-03-04T00:00") and ids["tag"] not in str(filters)

    lines = auditor.get(f"/audit/export?format=jsonl&{query}&outcome=failure").text.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["event"]["id"] for d in docs] == [ids["b"], ids["d"]]
    assert docs[1]["privacy"] == {"blocked": "CN_RESIDENT_ID"}
    assert last_event(pg_services, AuditAction.AUDIT_EXPORT).details["format"] == "jsonl"
    assert auditor.get(f"/audit/export?format=xml&{query}").status_code == 400


def test_an_export_is_capped_and_says_so(
    pg_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed(pg_services)
    monkeypatch.setattr(audit_views, "EXPORT_CAP", 2)
    _, auditor = client_as(pg_services, ["auditor"])
    query = f"{RANGE}&q={ids['tag']}"
    assert 'data-testid="export-cap"' in auditor.get(f"/audit?{query}").text
    response = auditor.get(f"/audit/export?format=jsonl&{query}")
    assert response.headers["X-Export-Truncated"] == "2 of 5"
    assert [json.loads(x)["event"]["id"] for x in response.text.splitlines()] == [
        ids["a"],
        ids["b"],
    ]
    details = last_event(pg_services, AuditAction.AUDIT_EXPORT).details
    assert (details["events"], details["matched"], details["truncated"]) == (2, 5, True)


def last_event(services: Services, action: str) -> AuditEvent:
    with services.db.session() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq.desc())
        ).first()
        assert event is not None
        return event


# Who may see what -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["developer", "operator", "admin"])
def test_other_roles_are_refused(pg_services: Services, role: str) -> None:
    ids = seed(pg_services)
    _, client = client_as(pg_services, [role])
    token = csrf_token(client.get("/account").text)
    for response in (
        client.get("/audit"),
        client.get(f"/audit/{ids['a']}"),
        client.get("/audit/integrity"),
        client.get("/audit/export?format=csv"),
        client.post("/audit/verify", data={"csrf_token": token}),
    ):
        assert response.status_code == 403
    assert 'data-testid="nav-audit"' not in client.get("/account").text


def test_the_auditor_sees_the_export_links(pg_services: Services) -> None:
    _, auditor = client_as(pg_services, ["auditor"])
    html = auditor.get("/audit?outcome=failure").text
    assert 'data-testid="nav-audit"' in html
    assert "/audit/export?format=csv&amp;outcome=failure" in html
