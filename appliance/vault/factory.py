"""The vault a home's settings describe: its directory, its key provider, its chunk size."""

from __future__ import annotations

from appliance.config import Settings
from appliance.vault.keys import build_provider
from appliance.vault.store import Vault


def build_vault(settings: Settings) -> Vault:
    return Vault(settings.effective_vault_dir, build_provider(settings), settings.vault_chunk_size)
