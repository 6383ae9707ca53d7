"""What every entry point needs, built once from validated settings and passed down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from appliance.auth.bearer import BearerVerifiers
from appliance.auth.rbac import RbacPolicy
from appliance.auth.tokens import SIGNING_KEY_PURPOSE
from appliance.config import Settings
from appliance.content.policy import ContentPolicy, empty_policy
from appliance.db import Database
from appliance.finetune.policy import FinetunePolicy
from appliance.policywatch import BY_NAME, POLICY_FILES, PolicyWatch, load_policy
from appliance.privacy.conversations import ConversationStore
from appliance.privacy.policy import PrivacyPolicy
from appliance.vault.master_key import derive_key, load_master_key


@dataclass
class Services:
    settings: Settings
    db: Database
    rbac: RbacPolicy
    privacy: PrivacyPolicy
    finetune: FinetunePolicy = field(default_factory=FinetunePolicy)
    content: ContentPolicy = field(default_factory=empty_policy)
    # The SHA-256 of the file each policy above was loaded from (build_services fills it).
    policy_versions: dict[str, str] = field(default_factory=dict)
    watch: PolicyWatch | None = field(default=None, repr=False)

    def watch_policies(self, kind: str) -> PolicyWatch:
        """Keep this process's policies in step with the files (``policywatch``): a thread
        that applies an edit within seconds. ``kind``: api, portal, worker or beat."""
        if self.watch is None:
            self.watch = PolicyWatch(
                self,
                lambda: self.settings.effective_policies_dir,  # moves at the first save
                self.policy_versions,
                self.db,
                kind,
                interval_s=self.settings.policy_check_interval_s,
            )
        return self.watch.start()

    @cached_property
    def master_key(self) -> bytes:
        return load_master_key(self.settings.master_key_path)

    def derived_key(self, purpose: str) -> bytes:
        return derive_key(self.master_key, purpose)

    def conversations(self) -> ConversationStore:
        """Sealed pseudonyms of conversations, under their own derived key."""
        return ConversationStore(
            self.db, self.derived_key("privacy-conversation"), self.privacy.conversation_ttl
        )

    def bearer_verifiers(
        self, *, clock: Callable[[], float] = time.time, key_state_ttl_s: float = 0.5
    ) -> BearerVerifiers:
        """Bearer authentication's per-process state, its token signing key derived here."""
        return BearerVerifiers.build(
            self.settings,
            self.rbac,
            self.derived_key(SIGNING_KEY_PURPOSE),
            clock=clock,
            key_state_ttl_s=key_state_ttl_s,
        )


def finetune_policy(settings: Settings) -> FinetunePolicy:
    """policies/finetune.yaml; fine-tuning is optional: without the file nothing is tuned."""
    policy, _ = load_policy(BY_NAME["finetune.yaml"], settings.effective_policies_dir)
    return policy


def build_services(settings: Settings) -> Services:
    """Validate the policies and open the database; raises ConfigError/PolicyError."""
    loaded, versions = {}, {}
    for spec in POLICY_FILES:
        loaded[spec.attribute], versions[spec.name] = load_policy(
            spec, settings.effective_policies_dir
        )
    return Services(settings=settings, db=Database(settings), policy_versions=versions, **loaded)
