"""The fine-tune pages through Flask's test client, on the session's real PostgreSQL database:
who may see and do what, dataset upload (all or nothing), Run now (skips with the reason,
a queued run, a refusal while one is active), promote and rollback through the rollout
code, the run page's chart and reports, and finetune.yaml in the policy editor.

Runs and alias targets are written straight into the database: nothing is trained here.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import TestResponse, encode_multipart

from appliance.audit.events import AuditAction
from appliance.auth.rbac import Permission
from appliance.finetune.policy import AliasPolicy, Data, FinetunePolicy
from appliance.models import (
    AliasTarget,
    AuditEvent,
    FinetuneDataset,
    FinetuneRecord,
    FinetuneRun,
    Model,
    ModelAlias,
)
from appliance.portal.app import create_app
from appliance.portal.finetune_chart import clean_losses, loss_chart
from appliance.portal.finetune_views import CELERY_KEY, ENQUEUE_KEY
from appliance.services import Services
from appliance.upstream.aliases import add_alias, get_alias
from appliance.upstream.registry import add_model
from tests.conftest import unique
from tests.portal.helpers import csrf_token, sign_in

MIN_NEW = 4


@dataclass
class Setup:
    services: Services
    app: Flask
    alias: str
    model: str
    queued: list[int]


@pytest.fixture()
def ft(pg_services: Services, tmp_path: Path) -> Iterator[Setup]:
    """A fine-tuned alias (base model, no upstreams) in a policy of its own; the auditor
    role also reads fine-tunes here, so it stands for a read-only operator."""
    alias, model = unique("ft-alias"), unique("ft-base")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    with pg_services.db.session() as session:
        add_model(session, model, path=tmp_path / "base")
        add_alias(session, alias, [(model, None, 100, "")])
    auditor = pg_services.rbac.roles["auditor"]
    rbac = dataclasses.replace(
        pg_services.rbac,
        roles={
            **pg_services.rbac.roles,
            "auditor": dataclasses.replace(
                auditor, permissions=auditor.permissions | {Permission.ADMIN_FINETUNE_READ}
            ),
        },
    )
    policy = FinetunePolicy(aliases={alias: AliasPolicy(data=Data(min_new_records=MIN_NEW))})
    services = dataclasses.replace(pg_services, rbac=rbac, finetune=policy)
    app = create_app(services=services)
    queued: list[int] = []
    app.extensions[ENQUEUE_KEY] = lambda run_id: queued.append(run_id) or f"task-{run_id}"
    yield Setup(services, app, alias, model, queued)
    with pg_services.db.session() as session:
        session.execute(delete(FinetuneRun).where(FinetuneRun.alias == alias))
        session.execute(delete(FinetuneDataset).where(FinetuneDataset.alias == alias))
        session.execute(delete(FinetuneRecord).where(FinetuneRecord.alias == alias))
        session.execute(delete(ModelAlias).where(ModelAlias.name == alias))
        session.execute(delete(Model).where(Model.name == model))


def client_as(ft: Setup, roles: list[str]) -> tuple[FlaskClient, str]:
    client = ft.app.test_client()
    return client, sign_in(client, ft.services, roles)


def chat(question: str, answer: str) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        }
    )


def jsonl(count: int, start: int = 0) -> bytes:
    lines = [
        chat(f"How do I reset the password of account {i}?", f"Open Settings, Security {i}.")
        for i in range(start, start + count)
    ]
    return ("\n".join(lines) + "\n").encode()


def upload(
    client: FlaskClient, alias: str, content: bytes, source: str = "tickets", name: str = "d.jsonl"
) -> TestResponse:
    """Post the upload form; the body is encoded in memory (the test client would spool a
    large one to a temporary file that nobody closes when the portal refuses it unread)."""
    token = csrf_token(client.get("/finetune").text)
    fields = {"csrf_token": token, "alias": alias, "source": source}
    boundary, body = encode_multipart(
        MultiDict([*fields.items(), ("file", FileStorage(io.BytesIO(content), name))])
    )
    return client.post(
        "/finetune/datasets",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def post(client: FlaskClient, path: str, page: str = "/finetune") -> TestResponse:
    return client.post(path, data={"csrf_token": csrf_token(client.get(page).text)})


def counts(services: Services, alias: str) -> tuple[int, int, int]:
    with services.db.session() as session:
        return (
            session.scalar(
                select(func.count(FinetuneDataset.id)).where(FinetuneDataset.alias == alias)
            )
            or 0,
            session.scalar(
                select(func.count(FinetuneRecord.id)).where(FinetuneRecord.alias == alias)
            )
            or 0,
            session.scalar(
                select(func.count(AuditEvent.seq)).where(
                    AuditEvent.action == AuditAction.FINETUNE_DATASET_IMPORT,
                    AuditEvent.target.like(f"{alias}@%"),
                )
            )
            or 0,
        )


def events(services: Services, action: str, target: str) -> list[AuditEvent]:
    with services.db.session() as session:
        found = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == action, AuditEvent.target == target)
                .order_by(AuditEvent.seq)
            )
        )
        session.expunge_all()
        return found


def add_run(services: Services, alias: str, version: int, **fields: object) -> None:
    with services.db.session() as session:
        session.add(FinetuneRun(alias=alias, version=version, **fields))
        session.commit()


def serve(services: Services, alias: str, model: str, version: int, weight: int) -> str:
    """A serving version's target in the alias, as start_canary leaves it; its adapter name."""
    adapter = f"ft-{alias}-v{version}"
    with services.db.session() as session:
        row = get_alias(session, alias)
        base = session.scalar(select(Model).where(Model.name == model))
        assert base is not None
        for target in row.targets:
            target.weight = target.weight * (100 - weight) // 100 if target.weight else 0
        row.targets.append(
            AliasTarget(model=base, adapter=adapter, weight=weight, version=f"v{version}")
        )
        session.commit()
    return adapter


def weights(services: Services, alias: str) -> dict[str, int]:
    with services.db.session() as session:
        return {t.version or "base": t.weight for t in get_alias(session, alias).targets}


def statuses(services: Services, alias: str) -> dict[str, str]:
    with services.db.session() as session:
        rows = session.scalars(select(FinetuneRun).where(FinetuneRun.alias == alias))
        return {run.label: run.status for run in rows}


def flashes(html: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", m)
        for m in re.findall(r'<p class="flash[^"]*" role="status">(.*?)</p>', html, re.S)
    ]


# Who may ---------------------------------------------------------------------------


def test_pages_need_the_finetune_permissions(ft: Setup) -> None:
    add_run(ft.services, ft.alias, 1, status="skipped", trigger="cli", reason="too little")
    run_page = f"/finetune/{ft.alias}/runs/v1"
    developer, _ = client_as(ft, ["developer"])
    home = developer.get("/")
    assert 'data-testid="nav-finetune"' not in home.text
    for path in ["/finetune", run_page, f"{run_page}/status", f"{run_page}/promote"]:
        assert developer.get(path).status_code == 403, path
    token = csrf_token(home.text)
    for path in ["/finetune/datasets", f"/finetune/{ft.alias}/run", f"{run_page}/rollback"]:
        assert developer.post(path, data={"csrf_token": token}).status_code == 403, path

    reader, _ = client_as(ft, ["auditor"])  # admin:finetune:read only (see the fixture)
    page = reader.get("/finetune")
    assert page.status_code == 200
    assert 'data-testid="nav-finetune"' in page.text
    assert f'data-alias="{ft.alias}"' in page.text
    assert 'data-testid="upload-form"' not in page.text and 'data-testid="run-now"' not in page.text
    assert reader.get(run_page).status_code == 200
    assert reader.get(f"{run_page}/status").json["status"] == "skipped"  # type: ignore[index]
    token = csrf_token(page.text)
    for path in ["/finetune/datasets", f"/finetune/{ft.alias}/run", f"{run_page}/rollback"]:
        assert reader.post(path, data={"csrf_token": token}).status_code == 403, path
    assert reader.get(f"{run_page}/promote").status_code == 403
    assert statuses(ft.services, ft.alias) == {"v1": "skipped"}
    assert reader.get(f"/finetune/{ft.alias}/runs/v99").status_code == 404


# Datasets ----------------------------------------------------------------------------


def test_uploading_a_valid_file_imports_desensitized_records_and_audits(ft: Setup) -> None:
    operator, operator_name = client_as(ft, ["operator"])
    content = jsonl(2) + (chat("Mail alice@example.com please", "I wrote to her.") + "\n").encode()
    response = upload(operator, ft.alias, content, name="../../tickets.jsonl")
    assert response.status_code == 302, response.text
    page = operator.get(response.headers["Location"])
    assert any(f"Imported {ft.alias} dataset 1: 3 records" in f for f in flashes(page.text))
    row = re.search(rf'<tr data-dataset="{re.escape(ft.alias)}@1">(.*?)</tr>', page.text, re.S)
    assert row and "tickets.jsonl" in row.group(1) and "<code>tickets</code>" in row.group(1)
    with ft.services.db.session() as session:
        (dataset,) = session.scalars(
            select(FinetuneDataset).where(FinetuneDataset.alias == ft.alias)
        ).all()
        assert (dataset.records, dataset.filename, dataset.created_by) == (
            3,
            "tickets.jsonl",
            operator_name,
        )
        stored = json.dumps(
            [
                r.record
                for r in session.scalars(
                    select(FinetuneRecord).where(FinetuneRecord.alias == ft.alias)
                )
            ]
        )
    assert "alice@example.com" not in stored and "reset the password" in stored
    (event,) = events(ft.services, AuditAction.FINETUNE_DATASET_IMPORT, f"{ft.alias}@dataset-1")
    assert (event.actor, event.outcome) == (operator_name, "success")
    assert event.request_id == response.headers["X-Request-Id"]
    assert event.details["records"] == 3 and event.details["source"] == "tickets"


def test_an_invalid_upload_shows_form_errors_and_changes_nothing(ft: Setup) -> None:
    operator, _ = client_as(ft, ["operator"])
    assert upload(operator, ft.alias, jsonl(1)).status_code == 302
    before = counts(ft.services, ft.alias)
    assert before == (1, 1, 1)

    bad_line = jsonl(3) + b"{not json\n"
    response = upload(operator, ft.alias, bad_line)
    assert response.status_code == 200
    assert "d.jsonl: line 4: not JSON" in response.text
    assert 'data-testid="error-file"' in response.text

    no_answer = (json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n").encode()
    assert "ends with the assistant" in upload(operator, ft.alias, no_answer).text
    assert "not UTF-8" in upload(operator, ft.alias, b"\xff\xfe\n").text
    assert "no records" in upload(operator, ft.alias, b"\n\n").text
    assert 'data-testid="error-source"' in upload(operator, ft.alias, jsonl(1), "Bad Source!").text
    assert "Not a valid choice" in upload(operator, "not-fine-tuned", jsonl(1)).text
    missing = operator.post(
        "/finetune/datasets",
        data={"csrf_token": csrf_token(operator.get("/finetune").text), "alias": ft.alias},
        content_type="multipart/form-data",
    )
    assert 'data-testid="error-file"' in missing.text

    huge = jsonl(1) * (ft.services.settings.max_body_bytes // len(jsonl(1)) + 10)
    too_large = upload(operator, ft.alias, huge)
    assert too_large.status_code == 413
    assert "larger than the portal accepts" in too_large.text
    assert 'data-testid="error-file"' in too_large.text
    assert counts(ft.services, ft.alias) == before
    assert "Traceback" not in too_large.text


# Run now ---------------------------------------------------------------------------


def test_run_now_skips_with_the_reason_then_queues_then_refuses_a_second(ft: Setup) -> None:
    operator, operator_name = client_as(ft, ["operator"])
    upload(operator, ft.alias, jsonl(2))

    skipped = post(operator, f"/finetune/{ft.alias}/run")
    assert skipped.status_code == 302
    page = operator.get(skipped.headers["Location"])
    reason = f"too little new data: 2 new records so far, the policy needs {MIN_NEW}"
    assert f"{ft.alias} v1 skipped: {reason}" in flashes(page.text)
    row = re.search(rf'<tr data-run="{re.escape(ft.alias)}@v1">(.*?)</tr>', page.text, re.S)
    assert row and 'data-state="skipped"' in row.group(1) and reason in row.group(1)
    assert "portal" in row.group(1)
    (skip,) = events(ft.services, AuditAction.FINETUNE_RUN_SKIP, f"{ft.alias}@v1")
    assert skip.actor == operator_name
    assert ft.queued == []

    upload(operator, ft.alias, jsonl(MIN_NEW, start=10))
    queued = post(operator, f"/finetune/{ft.alias}/run")
    assert queued.headers["Location"] == f"/finetune/{ft.alias}/runs/v2"
    detail = operator.get(queued.headers["Location"])
    assert f"{ft.alias} v2 is queued for training." in flashes(detail.text)
    assert 'data-testid="auto-refresh"' in detail.text and "finetune.js" in detail.text
    with ft.services.db.session() as session:
        run = session.scalars(
            select(FinetuneRun).where(FinetuneRun.alias == ft.alias, FinetuneRun.version == 2)
        ).one()
        assert (run.status, run.trigger, run.requested_by) == ("queued", "portal", operator_name)
        assert ft.queued == [run.id] and run.task_id == f"task-{run.id}"
    assert events(ft.services, AuditAction.FINETUNE_RUN_REQUEST, f"{ft.alias}@v2")

    again = post(operator, f"/finetune/{ft.alias}/run")
    page = operator.get(again.headers["Location"])
    assert f"{ft.alias}: {ft.alias} v2 is already queued" in flashes(page.text)
    assert 'data-testid="run-now" disabled' in page.text
    assert statuses(ft.services, ft.alias) == {"v1": "skipped", "v2": "queued"}


def test_run_now_queues_through_one_celery_app_and_reports_a_dead_broker(
    ft: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance import tasks

    sent: list[tuple[object, int]] = []

    def enqueue_run(app: object, run_id: int) -> str:
        if sent:
            raise ConnectionRefusedError(111, "Connection refused")
        sent.append((app, run_id))
        return "celery-task"

    monkeypatch.setattr(tasks, "enqueue_run", enqueue_run)
    del ft.app.extensions[ENQUEUE_KEY]  # the portal's own: Celery, built on first use
    operator, _ = client_as(ft, ["operator"])
    upload(operator, ft.alias, jsonl(MIN_NEW))
    assert CELERY_KEY not in ft.app.extensions
    assert post(operator, f"/finetune/{ft.alias}/run").status_code == 302
    celery = ft.app.extensions[CELERY_KEY]
    assert celery.conf.task_routes[tasks.FINETUNE_RUN_TASK] == {"queue": tasks.TRAIN_QUEUE}
    with ft.services.db.session() as session:
        run = session.scalars(select(FinetuneRun).where(FinetuneRun.alias == ft.alias)).one()
        assert sent == [(celery, run.id)] and run.task_id == "celery-task"
        run.status = "rejected"
        session.commit()

    failed = post(operator, f"/finetune/{ft.alias}/run")
    message = f"{ft.alias}: the task queue is unreachable"
    assert any(
        f.startswith(message) for f in flashes(operator.get(failed.headers["Location"]).text)
    )
    assert ft.app.extensions[CELERY_KEY] is celery


def test_run_now_for_an_alias_not_in_the_policy_is_a_message(ft: Setup) -> None:
    operator, _ = client_as(ft, ["operator"])
    response = post(operator, "/finetune/not-tuned/run")
    assert response.status_code == 302
    assert any("is not fine-tuned" in f for f in flashes(operator.get("/finetune").text))


# Promote and rollback ----------------------------------------------------------------


def test_promote_and_rollback_go_through_the_rollout(ft: Setup) -> None:
    adapter1 = serve(ft.services, ft.alias, ft.model, 1, 10)
    add_run(ft.services, ft.alias, 1, status="canary", adapter=adapter1, base_model=ft.model)
    operator, operator_name = client_as(ft, ["operator"])

    page = operator.get("/finetune")
    serving = re.search(rf'<tr data-target="{re.escape(ft.alias)}@v1">(.*?)</tr>', page.text, re.S)
    assert serving and "10 %" in serving.group(1) and 'data-state="canary"' in serving.group(1)
    assert 'data-testid="promote-v1"' in serving.group(1)
    assert 'data-testid="rollback-v1"' in serving.group(1)

    promote = f"/finetune/{ft.alias}/runs/v1/promote"
    confirm = operator.get(promote)
    assert confirm.status_code == 200
    assert "All of" in confirm.text and 'data-testid="confirm"' in confirm.text
    assert statuses(ft.services, ft.alias) == {"v1": "canary"}  # asking changes nothing
    done = post(operator, promote, page=promote)
    assert done.status_code == 302
    assert f"{ft.alias} v1 is promoted" in " ".join(flashes(operator.get("/finetune").text))
    assert statuses(ft.services, ft.alias) == {"v1": "promoted"}
    assert weights(ft.services, ft.alias) == {"base": 0, "v1": 100}
    (event,) = events(ft.services, AuditAction.FINETUNE_PROMOTE, f"{ft.alias}@v1")
    assert event.actor == operator_name and event.details["replaces"] == "base"

    adapter2 = serve(ft.services, ft.alias, ft.model, 2, 10)
    add_run(ft.services, ft.alias, 2, status="canary", adapter=adapter2, base_model=ft.model)
    rollback = f"/finetune/{ft.alias}/runs/v2/rollback"
    assert "leaves service" in operator.get(rollback).text
    post(operator, rollback, page=rollback)
    assert statuses(ft.services, ft.alias) == {"v1": "promoted", "v2": "rolled_back"}
    assert weights(ft.services, ft.alias) == {"base": 0, "v1": 100}
    (event,) = events(ft.services, AuditAction.FINETUNE_ROLLBACK, f"{ft.alias}@v2")
    assert event.actor == operator_name and event.details["back_to"] == "v1"

    refused = post(operator, f"/finetune/{ft.alias}/runs/v2/promote", page=promote)
    assert refused.status_code == 302
    message = f"{ft.alias} v2: {ft.alias} v2 is rolled_back; only a canary can be promoted"
    assert message in flashes(operator.get("/finetune").text)
    assert statuses(ft.services, ft.alias) == {"v1": "promoted", "v2": "rolled_back"}
    assert operator.get(f"/finetune/{ft.alias}/runs/v7/promote").status_code == 404


def test_an_alias_taken_out_of_the_policy_still_shows_its_serving_version(ft: Setup) -> None:
    gone = unique("ft-gone")
    add_run(ft.services, gone, 3, status="canary", adapter=f"ft-{gone}-v3")
    try:
        operator, _ = client_as(ft, ["operator"])
        page = operator.get("/finetune").text
        section = re.search(rf'<section class="card" id="alias-{gone}"(.*?)</section>', page, re.S)
        assert section and 'data-testid="not-in-policy"' in section.group(1)
        assert 'data-testid="run-now"' not in section.group(1)
        assert f'<tr data-run="{gone}@v3">' in section.group(1)
        assert f'<option value="{gone}"' not in page  # no uploads for it
        assert operator.get(f"/finetune/{gone}/runs/v3/rollback").status_code == 200
    finally:
        with ft.services.db.session() as session:
            session.execute(delete(FinetuneRun).where(FinetuneRun.alias == gone))


# The run page -------------------------------------------------------------------------


def test_run_page_shows_progress_loss_chart_and_reports(ft: Setup) -> None:
    losses = [[step, 2.5 / (1 + step / 10)] for step in range(1, 41)] + [["x", 1], [41, None]]
    add_run(
        ft.services,
        ft.alias,
        1,
        status="rejected",
        trigger="schedule",
        step=40,
        total_steps=40,
        loss=losses[39][1],
        losses=losses,
        reason="gate failed: perplexity_ratio: 1.08 > 1.0",
        data_report={
            "new": 120,
            "replay": 24,
            "dropped": {"blocked_personal_data": 2, "length": 5, "near_duplicate": 7},
            "kept": 130,
            "heldout": 12,
            "train": 118,
            "sources": {"tickets": 100, "capture:sk-app-1": 44},
            "weights": {"tickets": 1.0, "capture:sk-app-1": 1.5},
        },
        gate_report={
            "passed": False,
            "checks": [
                {
                    "name": "perplexity_ratio",
                    "passed": False,
                    "value": 1.08,
                    "threshold": 1.0,
                    "detail": "1.08 > 1.0",
                },
                {
                    "name": "canary_leak",
                    "passed": True,
                    "value": 0,
                    "threshold": 0,
                    "detail": "no canary came back",
                },
            ],
        },
    )
    add_run(
        ft.services,
        ft.alias,
        2,
        status="training",
        step=7,
        total_steps=50,
        loss=1.2345,
        eta_s=125.0,
        losses=[[5, 1.5], [7, 1.2345]],
    )
    operator, _ = client_as(ft, ["operator"])
    index = operator.get("/finetune").text
    v1 = re.search(rf'<tr data-run="{re.escape(ft.alias)}@v1">(.*?)</tr>', index, re.S)
    assert v1 and 'data-gate="failed"' in v1.group(1) and "40/40" in v1.group(1)
    v2 = re.search(rf'<tr data-run="{re.escape(ft.alias)}@v2">(.*?)</tr>', index, re.S)
    assert v2 and "7/50" in v2.group(1) and "2 min 05 s" in v2.group(1)
    assert "1.2345" in v2.group(1)

    page = operator.get(f"/finetune/{ft.alias}/runs/v1").text
    points = re.search(r'<polyline points="([^"]+)"', page)
    assert points and len(points.group(1).split()) == 40  # the malformed pairs are left out
    assert 'class="x-tick">1<' in page and 'class="x-tick">40<' in page
    assert ">step</text>" in page and ">loss</text>" in page
    dropped = re.search(r'data-testid="data-dropped">(.*?)</table>', page, re.S)
    assert dropped and "near duplicate" in dropped.group(1) and ">7<" in dropped.group(1)
    assert ">14<" in dropped.group(1)  # in all
    assert 'Held out for the gate</td><td class="num">12<' in page
    source = re.search(r'<tr data-source="capture:sk-app-1">(.*?)</tr>', page, re.S)
    assert source and ">44<" in source.group(1) and "1.50" in source.group(1)
    check = re.search(r'<tr data-check="perplexity_ratio">(.*?)</tr>', page, re.S)
    assert check and 'data-state="fail"' in check.group(1) and ">1.08<" in check.group(1)
    assert ">1<" in check.group(1)
    assert 'data-state="pass"' in re.search(
        r'<tr data-check="canary_leak">(.*?)</tr>', page, re.S
    ).group(1)  # type: ignore[union-attr]
    assert "gate failed: perplexity_ratio" in page
    assert "finetune.js" not in page  # a finished run does not refresh itself

    training = operator.get(f"/finetune/{ft.alias}/runs/v2").text
    assert 'data-status-url="/finetune/' in training and "finetune.js" in training
    assert 'about <span data-testid="eta">2 min 05 s</span> left' in training
    assert '<progress max="50" value="7"' in training
    status = operator.get(f"/finetune/{ft.alias}/runs/v2/status")
    assert status.json == {
        "alias": ft.alias,
        "version": "v2",
        "status": "training",
        "active": True,
        "step": 7,
        "total_steps": 50,
        "loss": 1.2345,
        "eta_s": 125.0,
        "reason": None,
        "gate_passed": None,
        "losses": 2,
    }


def test_loss_chart_layout() -> None:
    assert loss_chart([]) is None and loss_chart(None) is None
    assert clean_losses([[1, 2.0], [True, 1], [2, float("nan")], "x", [3]]) == [(1, 2.0)]
    single = loss_chart([[5, 1.0]])
    assert single is not None and len(single.points.split()) == 1
    assert single.x_ticks[0].label == "5"
    many = loss_chart([[i, 10 - i / 1000] for i in range(5000)])
    assert many is not None and many.count == 5000
    assert len(many.points.split()) == 400
    first, last = many.points.split()[0], many.points.split()[-1]
    assert float(first.split(",")[0]) == many.left and float(last.split(",")[0]) == many.right
    assert float(first.split(",")[1]) < float(last.split(",")[1])  # falling loss: line goes down
    assert [t.label for t in many.x_ticks] == ["0", "2500", "4999"]


# The policy editor ---------------------------------------------------------------------


def test_policy_editor_validates_and_applies_finetune_yaml(sqlite_services: Services) -> None:
    """On a scratch home (the save writes its policies directory)."""
    services = sqlite_services
    app = create_app(services=services)
    admin = app.test_client()
    sign_in(admin, services, ["admin"])
    listing = admin.get("/policies").text
    assert re.search(r'<tr data-policy="finetune.yaml">.*?data-state="valid"', listing, re.S)
    view = admin.get("/policies/finetune.yaml")
    assert view.status_code == 200 and "min_new_records" in view.text
    text = services.settings.effective_policies_dir.joinpath("finetune.yaml").read_text()
    base = re.search(r'name="base"[^>]*value="([0-9a-f]{64})"', view.text)
    assert base
    token = csrf_token(view.text)

    bad = admin.post(
        "/policies/finetune.yaml/preview",
        data={
            "csrf_token": token,
            "base": base.group(1),
            "text": "defaults:\n  data:\n    min_new_records: 0\n",
        },
    )
    assert bad.status_code == 200
    assert "finetune.yaml:3" in bad.text and "min_new_records" in bad.text
    refused = admin.post(
        "/policies/finetune.yaml",
        data={"csrf_token": token, "base": base.group(1), "text": "aliases: {x: {lora: {r: 0}}}"},
    )
    assert refused.status_code == 200 and services.finetune.aliases == {}

    edited = text.replace("aliases: {}", "aliases:\n  support-bot:\n    schedule: '0 4 * * 1'")
    assert edited != text
    saved = admin.post(
        "/policies/finetune.yaml",
        data={"csrf_token": token, "base": base.group(1), "text": edited},
    )
    assert saved.status_code == 302
    assert (services.settings.home / "policies" / "finetune.yaml").read_text() == edited
    policy = services.finetune.for_alias("support-bot")
    assert policy is not None and policy.schedule == "0 4 * * 1"
    assert policy.lora.r == 16  # the defaults merged in, as at start-up
    with services.db.session() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.POLICY_CHANGE)
        ).one()
        assert event.target == "finetune.yaml"
