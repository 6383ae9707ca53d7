"""Policies are live (issue 18, item 3): an edit on disk or a save in the portal is in force
in every process within seconds; an invalid file never replaces a valid one in force.

The unit tests drive one ``PolicyWatch`` over SQLite; the served test runs the embedded
default (two API workers, the portal, the Celery worker, beat) and edits its files.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from celery.schedules import crontab
from sqlalchemy import select

from appliance.audit.events import AuditAction
from appliance.beat import PolicyScheduler
from appliance.config import SHIPPED_POLICIES
from appliance.db import Database
from appliance.models import AuditEvent, PolicyInForce
from appliance.policywatch import PolicyWatch, file_digest, live_processes, pending, version_of
from appliance.portal.app import create_app
from appliance.services import Services, build_services
from appliance.tasks import create_celery
from tests import timing
from tests.conftest import free_port, make_settings
from tests.portal.helpers import csrf_token, sign_in
from tests.test_cli import last_line, run

BLOCK_EMAIL = ("  EMAIL: pseudonymize\n", "  EMAIL: block\n")


@pytest.fixture()
def live(tmp_path: Path) -> Iterator[Services]:
    """Services over SQLite whose policies are a copy of the shipped ones in the home."""
    home = tmp_path / "home"
    shutil.copytree(SHIPPED_POLICIES, home / "policies")
    settings = make_settings(home)
    run_init = run(home, "init")
    assert run_init.returncode == 0, run_init.stderr
    services = build_services(settings)
    yield services
    if services.watch is not None:
        services.watch.stop()
    services.db.dispose()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def events(db: Database, action: AuditAction) -> list[AuditEvent]:
    with db.session() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )


def watch_of(services: Services, kind: str = "api") -> PolicyWatch:
    return PolicyWatch(
        services,
        services.settings.effective_policies_dir,
        services.policy_versions,
        services.db,
        kind,
        interval_s=0.1,
    )


def test_an_edit_on_disk_is_put_in_force_audited_and_reported(live: Services) -> None:
    path = live.settings.effective_policies_dir / "desensitization.yaml"
    before = live.privacy
    watch = watch_of(live)
    assert watch.check() == []  # nothing changed since the services were built
    assert live.privacy is before

    edit(path, *BLOCK_EMAIL)
    assert watch.check() == ["desensitization.yaml"]
    assert live.privacy.actions["EMAIL"] == "block"
    assert live.rbac is not None and live.privacy is not before

    sha = file_digest(path)
    (event,) = events(live.db, AuditAction.POLICY_IN_FORCE)
    assert event.target == "desensitization.yaml"
    details = event.details
    assert details["version"] == version_of(sha) and details["process_kind"] == "api"
    assert details["previous"] == version_of(live.policy_versions["desensitization.yaml"])
    (process,) = live_processes(live.db)
    assert process.kind == "api" and process.pid == os.getpid()
    assert process.versions["desensitization.yaml"] == sha
    assert pending(live.db, path.parent, "desensitization.yaml") == []
    assert watch.check() == []  # once in force, not again
    assert len(events(live.db, AuditAction.POLICY_IN_FORCE)) == 1


def test_an_invalid_file_never_replaces_the_policy_in_force(live: Services) -> None:
    path = live.settings.effective_policies_dir / "desensitization.yaml"
    good = path.read_text(encoding="utf-8")
    in_force = live.privacy
    watch = watch_of(live)

    edit(path, "  EMAIL: pseudonymize\n", "  EMAIL: shred\n")
    assert watch.check() == []
    assert watch.check() == []
    assert live.privacy is in_force  # the valid policy stays
    (refused,) = events(live.db, AuditAction.POLICY_INVALID)  # audited once, not per check
    assert refused.outcome == "failure" and refused.target == "desensitization.yaml"
    assert "desensitization.yaml:" in refused.details["error"]  # the error names the line
    assert "shred" in refused.details["error"] or "EMAIL" in refused.details["error"]
    (process,) = live_processes(live.db)
    assert process.errors["desensitization.yaml"]["error"] == refused.details["error"]
    behind = pending(live.db, path.parent, "desensitization.yaml")
    assert [p.process for p in behind] == [process.process]

    path.write_text(good, encoding="utf-8")  # undone: the error goes, nothing is reloaded
    assert watch.check() == []
    (process,) = live_processes(live.db)
    assert process.errors == {} and pending(live.db, path.parent, "desensitization.yaml") == []

    path.unlink()  # a required policy removed: refused, the one in force stays
    assert watch.check() == [] and live.privacy is in_force
    assert len(events(live.db, AuditAction.POLICY_INVALID)) == 2


def test_the_first_save_on_a_home_without_policies_is_live(tmp_path: Path) -> None:
    """A new home reads the shipped policies until the first save copies them into the
    home (the pentest's finding: the watch kept looking at the shipped directory)."""
    home = tmp_path / "home"
    assert run(home, "init").returncode == 0
    services = build_services(make_settings(home))
    assert services.settings.effective_policies_dir == SHIPPED_POLICIES
    watch = services.watch_policies("api")
    try:
        shutil.copytree(SHIPPED_POLICIES, home / "policies")  # what the portal's save does
        assert watch.check() == []  # the same files, the same versions
        edit(home / "policies" / "desensitization.yaml", *BLOCK_EMAIL)
        assert watch.check() == ["desensitization.yaml"]
        assert services.privacy.actions["EMAIL"] == "block"
    finally:
        watch.stop()
        services.db.dispose()


def test_the_watch_thread_applies_an_edit_within_the_interval(live: Services) -> None:
    path = live.settings.effective_policies_dir / "desensitization.yaml"
    watch = live.watch_policies("worker")
    assert watch.interval_s == 1.0  # the default: live well within 5 s
    edit(path, *BLOCK_EMAIL)
    deadline = time.monotonic() + 5
    while live.privacy.actions.get("EMAIL") != "block":
        assert time.monotonic() < deadline, "not in force after 5 s"
        time.sleep(0.05)
    watch.stop()
    assert live_processes(live.db) == []  # a clean stop removes the process's row


def test_beat_follows_the_finetune_policy(live: Services, tmp_path: Path) -> None:
    path = live.settings.effective_policies_dir / "finetune.yaml"
    app = create_celery(live.settings)
    scheduler = PolicyScheduler(app, schedule_filename=str(tmp_path / "beat-schedule"))
    try:
        assert not [name for name in scheduler.schedule if name.startswith("finetune:")]
        original = path.read_text(encoding="utf-8")
        edit(path, "aliases: {}\n", 'aliases:\n  support-bot:\n    schedule: "15 2 * * *"\n')
        scheduler.watch.interval_s = 0  # type: ignore[union-attr]
        scheduler.tick()
        entry = scheduler.schedule["finetune:support-bot"]
        assert entry.schedule == crontab("15", "2", "*", "*", "*")
        assert entry.args == ["support-bot"]
        (process,) = [p for p in live_processes(live.db) if p.kind == "beat"]
        assert process.versions["finetune.yaml"] == file_digest(path)

        edit(path, '"15 2 * * *"', '"45 4 * * 1"')
        scheduler.tick()
        assert scheduler.schedule["finetune:support-bot"].schedule == crontab(
            "45", "4", "1", "*", "*"
        )
        path.write_text(original, encoding="utf-8")  # the alias is taken out again
        scheduler.tick()
        assert "finetune:support-bot" not in scheduler.schedule
    finally:
        scheduler.close()


def test_run_now_waits_for_the_worker_to_apply_a_new_alias(live: Services, tmp_path: Path) -> None:
    """The field report: a new alias saved, "Run now" offered, the run failed in the worker
    because the worker still had the old policy. Now the portal says to wait."""
    path = live.settings.effective_policies_dir / "finetune.yaml"
    app = create_app(services=live)
    client = app.test_client()
    sign_in(client, live, ["operator"])
    worker = dataclasses.replace(live)  # the Celery worker's Services, with its own watch
    worker_watch = watch_of(worker, "worker")
    worker_watch.report()

    edit(path, "aliases: {}\n", 'aliases:\n  support-bot:\n    schedule: "15 2 * * *"\n')
    watch_of(live, "portal").check()  # the portal has it in force; the worker not yet
    token = csrf_token(client.get("/finetune").text)
    response = client.post("/finetune/support-bot/run", data={"csrf_token": token})
    page = client.get(response.headers["Location"]).text
    assert "finetune.yaml was changed and is not yet in force in the worker" in page

    worker_watch.check()
    with live.db.session() as session:
        rows = session.scalars(select(PolicyInForce)).all()
        assert {row.kind for row in rows} == {"portal", "worker"}
    assert pending(live.db, path.parent, "finetune.yaml") == []
    token = csrf_token(client.get("/finetune").text)
    response = client.post("/finetune/support-bot/run", data={"csrf_token": token})
    page = client.get(response.headers["Location"]).text
    assert "not yet in force" not in page


# ---------------------------------------------------------------------- served


@pytest.mark.slow
def test_every_served_process_applies_an_edit_within_five_seconds(
    tmp_path: Path, tiny_model: Path
) -> None:
    home = tmp_path / "home"
    last_line(run(home, "init"))
    shutil.copytree(SHIPPED_POLICIES, home / "policies")
    last_line(run(home, "model", "add", "tiny", "--path", str(tiny_model)))
    key = last_line(run(home, "key", "create", "--user", "admin", "--name", "live"))
    api_port, portal_port, engine_port, metrics_port = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(
        APPLIANCE_HOME=str(home),
        APPLIANCE_ENGINE_BASE_PORT=str(engine_port),
        APPLIANCE_HEALTH_INTERVAL_S="1",
        APPLIANCE_METRICS_PORT=str(metrics_port),
    )
    argv = ["serve", "--api-port", str(api_port), "--portal-port", str(portal_port)]
    serve = subprocess.Popen(
        [sys.executable, "-m", "appliance", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    db = Database(make_settings(home))
    try:
        banner = serve.stdout.readline()  # type: ignore[union-attr]
        assert "(ready)" in banner, banner
        kinds = {"api", "portal", "worker", "beat"}
        deadline = time.monotonic() + timing.scaled(60)
        while {p.kind for p in live_processes(db)} != kinds:
            assert time.monotonic() < deadline, live_processes(db)
            time.sleep(0.5)
        assert len([p for p in live_processes(db) if p.kind == "api"]) == 2  # two workers

        def ask() -> httpx.Response:  # a new connection each time: any API worker
            return httpx.post(
                f"http://127.0.0.1:{api_port}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
                json={
                    "model": "tiny",
                    "messages": [{"role": "user", "content": "mail me: li.na@example.com"}],
                    "max_tokens": 2,
                },
                timeout=timing.scaled(30),
            )

        assert ask().status_code == 200
        path = home / "policies" / "desensitization.yaml"
        edit(path, *BLOCK_EMAIL)
        sha = file_digest(path)
        edited = time.monotonic()
        while any(p.versions.get(path.name) != sha for p in live_processes(db)):
            assert time.monotonic() - edited < timing.scaled(5), live_processes(db)
            time.sleep(0.1)
        statuses = [ask().status_code for _ in range(8)]
        assert statuses == [400] * 8  # blocked by every worker
        in_force = events(db, AuditAction.POLICY_IN_FORCE)
        assert {e.details["process_kind"] for e in in_force} == kinds
        assert {e.details["version"] for e in in_force} == {version_of(sha)}

        edit(path, "  EMAIL: block\n", "  EMAIL: [oops\n")  # invalid: block stays in force
        deadline = time.monotonic() + timing.scaled(5)
        while len(events(db, AuditAction.POLICY_INVALID)) < len(kinds) + 1:
            assert time.monotonic() < deadline, events(db, AuditAction.POLICY_INVALID)
            time.sleep(0.1)
        assert ask().status_code == 400
        assert all(path.name in p.errors for p in live_processes(db))
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=timing.scaled(30))
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        serve.stdout.close()  # type: ignore[union-attr]
        db.dispose()


def test_a_content_term_file_edit_is_a_new_version_put_in_force(live: Services) -> None:
    folder = live.settings.effective_policies_dir
    (folder / "codenames.txt").write_text("# code names\nProject BLUEFIN\n", encoding="utf-8")
    edit(
        folder / "content.yaml",
        "categories:\n",
        "categories:\n  - name: codename\n    term_files: [codenames.txt]\n"
        "    action: {input: block, output: mask}\n",
    )
    watch = watch_of(live)
    assert watch.check() == ["content.yaml"]
    from appliance.content.scan import Scanner

    def blocked(text: str) -> bool:
        return Scanner(live.content, "input").scan(text).blocked is not None

    assert blocked("about project bluefin") and not blocked("about Project ORCA")
    (folder / "codenames.txt").write_text("Project BLUEFIN\nProject ORCA\n", encoding="utf-8")
    assert watch.check() == ["content.yaml"]  # only the term file changed
    assert blocked("about Project ORCA")
    (folder / "codenames.txt").write_text("\n" * 3 + "?!\n", encoding="utf-8")  # no letters
    assert watch.check() == []  # invalid: the policy in force stays
    assert blocked("about Project ORCA")
    assert "codenames.txt:4" in watch.failures["content.yaml"].error
