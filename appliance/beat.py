"""Celery beat's scheduler: the fine-tune schedules follow policies/finetune.yaml live.

``PolicyScheduler`` is Celery's persistent scheduler plus a ``PolicyWatch`` of kind
``beat``, polled from the scheduler's own loop (no thread: the schedule is only changed
where it is read). A new alias's schedule is added, a removed alias's entry dropped and a
changed cron expression applied within ``policy_check_interval_s``.
"""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler

from appliance.finetune.policy import FinetunePolicy
from appliance.policywatch import PolicyWatch
from appliance.services import Services, build_services
from appliance.tasks import finetune_schedule

FINETUNE_ENTRY = "finetune:"  # the prefix of the entries finetune_schedule makes


class PolicyScheduler(PersistentScheduler):
    services: Services | None = None
    watch: PolicyWatch | None = None

    def setup_schedule(self) -> None:
        super().setup_schedule()
        settings = self.app.conf["appliance_settings"]
        self.services = build_services(settings)
        self.watch = PolicyWatch(
            self.services,
            lambda: settings.effective_policies_dir,
            self.services.policy_versions,
            self.services.db,
            "beat",
            interval_s=settings.policy_check_interval_s,
        )
        self.watch.on_change(self._policy_changed)
        self._follow(self.services.finetune)  # what the policy says now, not the shelf
        self.watch.report()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self.watch is not None:
            self.watch.poll()
        delay = super().tick(*args, **kwargs)
        interval = self.watch.interval_s if self.watch is not None else delay
        return min(delay, interval)

    def close(self) -> None:
        if self.watch is not None:
            self.watch.forget()
        super().close()

    def _policy_changed(self, name: str, _before: Any, after: Any) -> None:
        if name == "finetune.yaml":
            self._follow(after)

    def _follow(self, policy: FinetunePolicy) -> None:
        wanted = finetune_schedule(policy)
        for name in [n for n in self.schedule if n.startswith(FINETUNE_ENTRY)]:
            if name not in wanted:
                del self.schedule[name]
        current = {
            name: entry
            for name, entry in wanted.items()
            if name not in self.schedule or self.schedule[name].schedule != entry["schedule"]
        }
        if current:
            self.update_from_dict(current)
