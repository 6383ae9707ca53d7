"""Beat's fine-tune entries: one per alias on its cron schedule, the train queue, and the
scheduled task itself on the embedded default (SQLite), run in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

from celery.schedules import crontab

from appliance.config import SHIPPED_POLICIES
from appliance.finetune.policy import FinetunePolicy, load_finetune_policy
from appliance.finetune.runs import list_runs
from appliance.services import Services
from appliance.tasks import (
    FINETUNE_RECOVER_TASK,
    FINETUNE_RUN_TASK,
    FINETUNE_SCHEDULE_TASK,
    TRAIN_QUEUE,
    create_celery,
    finetune_schedule,
)
from appliance.upstream.aliases import add_alias
from appliance.upstream.registry import add_model
from tests.conftest import make_settings

POLICY = """
defaults: {schedule: "0 3 * * 0"}
aliases:
  weekly-bot: {}
  nightly-bot: {schedule: "30 1 * * *"}
"""


def test_each_alias_gets_a_beat_entry_on_its_own_schedule(tmp_path: Path) -> None:
    (tmp_path / "finetune.yaml").write_text(POLICY)
    entries = finetune_schedule(load_finetune_policy(tmp_path / "finetune.yaml"))
    assert set(entries) == {"finetune:weekly-bot", "finetune:nightly-bot"}
    weekly, nightly = entries["finetune:weekly-bot"], entries["finetune:nightly-bot"]
    assert weekly["task"] == FINETUNE_SCHEDULE_TASK and weekly["args"] == ["weekly-bot"]
    assert weekly["schedule"] == crontab("0", "3", "0", "*", "*")
    assert nightly["schedule"] == crontab("30", "1", "*", "*", "*")
    assert finetune_schedule(FinetunePolicy()) == {}


def test_the_celery_app_routes_training_to_the_train_queue(tmp_path: Path) -> None:
    (tmp_path / "finetune.yaml").write_text(POLICY)
    settings = make_settings(tmp_path / "home", policies_dir=str(tmp_path))
    app = create_celery(settings)
    assert app.conf.task_routes[FINETUNE_RUN_TASK] == {"queue": TRAIN_QUEUE}
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    beat = app.conf.beat_schedule
    assert "finetune:nightly-bot" in beat
    assert beat["finetune-recover-stale-runs"]["task"] == FINETUNE_RECOVER_TASK


def test_the_scheduled_task_skips_without_new_data(
    sqlite_services: Services, tmp_path: Path, tiny_model: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(SHIPPED_POLICIES, policies)
    (policies / "finetune.yaml").write_text(POLICY)
    settings = make_settings(sqlite_services.settings.home, policies_dir=str(policies))
    with sqlite_services.db.session() as session:
        add_model(session, "tiny-sched", path=tiny_model)
        add_alias(session, "nightly-bot", [("tiny-sched", None, 100, "base")])
        session.commit()
    app = create_celery(settings)
    result = app.tasks[FINETUNE_SCHEDULE_TASK].apply(args=["nightly-bot"]).get()
    assert result["status"] == "skipped" and result["version"] == "v1"
    assert "too little new data: 0 new records" in result["reason"]
    with sqlite_services.db.session() as session:
        (run,) = list_runs(session, "nightly-bot")
        assert (run.trigger, run.requested_by, run.status) == ("schedule", "beat", "skipped")
