"""The Celery app and its wiring only; the work itself lives in the domain modules.

Production uses Redis as broker and result backend; the embedded default uses Kombu's
SQLAlchemy transport on a SQLite file in the home directory, with a pool of threads
(``polling_pool``).

Beat sends ``HEARTBEAT_TASK`` every ``heartbeat_interval_s``: beat writes its own heartbeat
as it sends it, the worker its heartbeat as it runs it (and ``heartbeats.PULSE`` while a
longer task runs). See ``appliance.heartbeats``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab

from appliance.audit import service as audit_service
from appliance.audit.shipping import ShippingError
from appliance.config import Settings
from appliance.db import Database
from appliance.finetune import rollout as finetune_rollout
from appliance.finetune import service as finetune
from appliance.finetune.policy import FinetunePolicy
from appliance.heartbeats import BEAT, PULSE, WORKER, beat, here
from appliance.services import Services, build_services, finetune_policy
from appliance.upstream.credentials import UpstreamCredentials
from appliance.upstream.health import refresh_upstream_health

log = logging.getLogger(__name__)
HEARTBEAT_TASK = "appliance.heartbeat"
HEALTH_TASK = "appliance.upstream.refresh_health"
PURGE_CONVERSATIONS_TASK = "appliance.privacy.purge_conversations"
AUDIT_SEAL_TASK = "appliance.audit.seal"
AUDIT_SHIP_TASK = "appliance.audit.ship"
FINETUNE_RUN_TASK = "appliance.finetune.run"
FINETUNE_SCHEDULE_TASK = "appliance.finetune.scheduled"
FINETUNE_RECOVER_TASK = "appliance.finetune.recover"
FINETUNE_CANARY_TASK = "appliance.finetune.decide_canaries"
FINETUNE_PURGE_TASK = "appliance.finetune.purge_captured"
TRAIN_QUEUE = "train"  # consumed only by GPU nodes in production
# The embedded worker's threads: a fine-tune can take one while the periodic tasks (the
# heartbeat, sealing, shipping) keep the other.
POLLING_POOL_THREADS = 2
_BUILDING = threading.Lock()  # threads of one worker build its Services once
BEAT_HEADER = "celery_beat_task"  # what Celery's beat puts in the headers of what it sends


class ServicesTask(Task):
    """A task with the process's Services, built on first use (after the worker forks)."""

    abstract = True

    @property
    def services(self) -> Services:
        services: Services | None = getattr(self.app, "appliance_services", None)
        if services is None:
            with _BUILDING:
                services = getattr(self.app, "appliance_services", None)
                if services is None:
                    services = build_services(self.app.conf["appliance_settings"])
                    services.watch_policies("worker")  # an edited policy applies within seconds
                    self.app.appliance_services = services
        return services

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A task running longer than a heartbeat interval keeps the worker's heartbeat fresh.
        interval_s = self.app.conf["appliance_settings"].heartbeat_interval_s
        with PULSE.running(self.name, lambda: self.services.db, interval_s):
            return super().__call__(*args, **kwargs)


class HeartbeatTask(ServicesTask):
    """Beat's heartbeat is written where beat sends this task (``apply_async`` runs in beat's
    process), the worker's where the worker runs it: each says that its own process works."""

    abstract = True

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        if (kwargs.get("headers") or {}).get(BEAT_HEADER):  # sent by beat's scheduler
            try:
                beat(self._sender_db(), BEAT, **here())
            except Exception:  # the task is sent all the same; the next interval tries again
                log.warning("could not write beat's heartbeat", exc_info=True)
        return super().apply_async(*args, **kwargs)

    def _sender_db(self) -> Database:
        db: Database | None = getattr(self.app, "appliance_sender_db", None)
        if db is None:
            db = self.app.appliance_sender_db = Database(self.app.conf["appliance_settings"])
        return db


def polling_pool(settings: Settings) -> dict[str, Any]:
    """The pool of a worker on Kombu's SQLAlchemy transport (the embedded default): threads.

    That transport is polled, so Celery runs its synchronous loop, where a prefork pool's
    children share one job pipe and the lock on its read end. A child killed while it holds
    the lock (waiting for its next job, where an idle child always is) leaves it held: its
    replacement waits on it for ever, and nothing runs again until a manual restart. Threads
    share no such lock; the process they live in is the one `appliance serve` watches and
    restarts. Redis (production) keeps prefork: its loop gives each child its own pipes.
    """
    if not settings.effective_broker_url.startswith(("sqla+", "sqlalchemy+")):
        return {}
    return {"worker_pool": "threads", "worker_concurrency": POLLING_POOL_THREADS}


def finetune_schedule(policy: FinetunePolicy) -> dict[str, dict[str, Any]]:
    """One beat entry per fine-tuned alias, on its policy's cron schedule."""
    entries = {}
    for alias, entry in policy.aliases.items():
        minute, hour, day, month, weekday = entry.schedule.split()
        entries[f"finetune:{alias}"] = {
            "task": FINETUNE_SCHEDULE_TASK,
            "schedule": crontab(minute, hour, weekday, day, month),
            "args": [alias],
        }
    return entries


def enqueue_run(app: Celery, run_id: int) -> str:
    """Send a fine-tune run to the ``train`` queue; returns the task id."""
    return str(app.send_task(FINETUNE_RUN_TASK, args=[run_id], queue=TRAIN_QUEUE).id)


def create_celery(settings: Settings) -> Celery:
    """The Celery app of these settings; beat runs each alias of policies/finetune.yaml."""
    app = Celery("appliance", task_cls=ServicesTask)
    app.conf.update(
        appliance_settings=settings,
        broker_url=settings.effective_broker_url,
        result_backend=settings.effective_result_backend,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        result_expires=3600,
        # A training task whose worker process dies goes back on the queue (it resumes from
        # its checkpoint); the lease in the database keeps a second copy from running.
        task_reject_on_worker_lost=True,
        task_routes={FINETUNE_RUN_TASK: {"queue": TRAIN_QUEUE}},
        **polling_pool(settings),
        # Beat follows policies/finetune.yaml as it changes (appliance.beat).
        beat_scheduler="appliance.beat:PolicyScheduler",
        beat_schedule={
            **finetune_schedule(finetune_policy(settings)),
            "heartbeat": {
                "task": HEARTBEAT_TASK,
                "schedule": settings.heartbeat_interval_s,
                "options": {"expires": settings.worker_stale_after_s},
            },
            "finetune-recover-stale-runs": {"task": FINETUNE_RECOVER_TASK, "schedule": 60},
            "finetune-decide-canaries": {"task": FINETUNE_CANARY_TASK, "schedule": 60},
            "finetune-purge-captured": {"task": FINETUNE_PURGE_TASK, "schedule": 3600},
            "refresh-upstream-health": {
                "task": HEALTH_TASK,
                "schedule": settings.health_interval_s,
            },
            "purge-expired-conversations": {
                "task": PURGE_CONVERSATIONS_TASK,
                "schedule": 3600,
            },
            "seal-audit-events": {
                "task": AUDIT_SEAL_TASK,
                "schedule": settings.audit_seal_interval_s,
                "options": {"expires": settings.audit_seal_interval_s * 5},
            },
            "ship-audit-events": {
                "task": AUDIT_SHIP_TASK,
                "schedule": settings.audit_ship_interval_s,
                "options": {"expires": settings.audit_ship_interval_s * 5},
            },
        },
    )

    @app.task(name=HEARTBEAT_TASK, bind=True, shared=False, base=HeartbeatTask, ignore_result=True)
    def heartbeat(self: HeartbeatTask) -> None:
        beat(self.services.db, WORKER, **here())

    # from_beat: unused, accepted from messages queued before the heartbeat task.
    @app.task(name=HEALTH_TASK, bind=True, shared=False, ignore_result=False)
    def refresh_health(self: ServicesTask, from_beat: bool = False) -> dict[str, Any]:
        db = self.services.db
        credentials = UpstreamCredentials.of(self.services.settings, self.services.derived_key)
        return {"upstreams": refresh_upstream_health(db, credentials=credentials)}

    @app.task(name=PURGE_CONVERSATIONS_TASK, bind=True, shared=False, ignore_result=False)
    def purge_conversations(self: ServicesTask) -> int:
        return self.services.conversations().purge_expired()

    @app.task(name=AUDIT_SEAL_TASK, bind=True, shared=False, ignore_result=False)
    def seal_audit(self: ServicesTask) -> dict[str, Any]:
        services = self.services
        sealed, checkpoint = audit_service.seal_and_checkpoint(
            services.db, services.settings, services.master_key
        )
        return {"sealed": sealed.events, "head": sealed.last_pos, "checkpoint": bool(checkpoint)}

    @app.task(name=AUDIT_SHIP_TASK, bind=True, shared=False, ignore_result=False)
    def ship_audit(self: ServicesTask) -> dict[str, int]:
        # A failing sink is recorded and backed off inside; the next beat tries again.
        shipped = {}
        db, settings = self.services.db, self.services.settings
        for sink in audit_service.sinks(settings):
            try:
                for done in audit_service.ship_all(db, settings, only=sink.name):
                    shipped[done.sink] = done.events
            except ShippingError as exc:
                log.warning("audit shipping to %s failed: %s", sink.name, exc.message)
        return shipped

    @app.task(name=FINETUNE_RUN_TASK, bind=True, shared=False, ignore_result=False, acks_late=True)
    def run_finetune(self: ServicesTask, run_id: int) -> dict[str, Any]:
        def report(progress: dict[str, Any]) -> None:
            self.update_state(state="PROGRESS", meta={"run_id": run_id, **progress})

        run = finetune.execute_run(self.services, run_id, report=report)
        return {"run_id": run_id, "status": run.status, "reason": run.reason}

    @app.task(name=FINETUNE_SCHEDULE_TASK, bind=True, shared=False, ignore_result=False)
    def scheduled_finetune(self: ServicesTask, alias: str) -> dict[str, Any]:
        run = finetune.request_run(
            self.services,
            alias,
            trigger="schedule",
            actor="beat",
            enqueue=lambda run_id: enqueue_run(app, run_id),
        )
        return {"alias": alias, "version": run.label, "status": run.status, "reason": run.reason}

    @app.task(name=FINETUNE_RECOVER_TASK, bind=True, shared=False, ignore_result=False)
    def recover_finetunes(self: ServicesTask) -> dict[str, Any]:
        # Runs whose worker died resume; adapters a restarted upstream lost are loaded again.
        resumed = finetune.recover_stale(self.services, lambda run_id: enqueue_run(app, run_id))
        return {"resumed": resumed, "adapters": finetune_rollout.reload_serving(self.services)}

    @app.task(name=FINETUNE_CANARY_TASK, bind=True, shared=False, ignore_result=False)
    def decide_canaries(self: ServicesTask) -> list[str]:
        return finetune_rollout.decide_canaries(self.services, self.services.finetune.aliases)

    @app.task(name=FINETUNE_PURGE_TASK, bind=True, shared=False, ignore_result=False)
    def purge_captured(self: ServicesTask) -> int:
        return finetune.purge_captured(self.services)

    return app
