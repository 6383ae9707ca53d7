"""What every entry point needs, built once from validated settings and passed down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from appliance.auth.bearer import BearerVerifiers
from appliance.auth.rbac import RbacPolicy, load_rbac
from appliance.auth.tokens import SIGNING_KEY_PURPOSE
from appliance.config import Settings
from appliance.db import Database
from appliance.finetune.policy import FinetunePolicy, load_finetune_policy
from appliance.privacy.conversations import ConversationStore
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy
from appliance.vault.master_key import derive_key, load_master_key


@dataclass
class Services:
    settings: Settings
    db: Database
    rbac: RbacPolicy
    privacy: PrivacyPolicy
    finetune: FinetunePolicy = field(default_factory=FinetunePolicy)

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
    path = settings.effective_policies_dir / "finetune.yaml"
    return load_finetune_policy(path) if path.exists() else FinetunePolicy()


def build_services(settings: Settings) -> Services:
    """Validate the policies and open the database; raises ConfigError/PolicyError."""
    rbac = load_rbac(settings.effective_policies_dir / "rbac.yaml")
    privacy = load_privacy_policy(settings.effective_policies_dir / "desensitization.yaml")
    finetune = finetune_policy(settings)
    return Services(
        settings=settings, db=Database(settings), rbac=rbac, privacy=privacy, finetune=finetune
    )
