"""What fine-tuning needs of the appliance's services, as a Protocol.

``appliance.services.Services`` (which builds the fine-tune policy, so it imports this
package) is one; the package does not import it back.
"""

from __future__ import annotations

from typing import Protocol

from appliance.config import Settings
from appliance.db import Database
from appliance.finetune.policy import FinetunePolicy
from appliance.privacy.policy import PrivacyPolicy


class FinetuneServices(Protocol):
    settings: Settings
    db: Database
    privacy: PrivacyPolicy  # scans the training data
    finetune: FinetunePolicy

    def derived_key(self, purpose: str) -> bytes: ...
