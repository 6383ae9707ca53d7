"""KEK rotation: rewrap every data key under a new KEK; no data is re-encrypted.

Crash-safe: the new key is durable before any manifest names it, each manifest is
replaced atomically, and old keys are destroyed only once no manifest names them, so at
every instant every model opens with the old or the new KEK. Running it again after a
crash finishes the job (under yet another new key). The protocol is in docs/vault.md.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.vault.format import MANIFEST_NAME, Manifest
from appliance.vault.fsutil import write_atomic
from appliance.vault.keys import KeyProvider, Step


class RotatingVault(Protocol):
    """What a rotation needs of the vault (``appliance.vault.store.Vault`` is one)."""

    root: Path
    keys: KeyProvider

    def lock(self, exclusive: bool) -> contextlib.AbstractContextManager[None]: ...

    def names(self) -> list[str]: ...

    def load(self, name: str) -> Manifest: ...

    def rewrap(self, manifest: Manifest, key_id: str) -> None: ...


@dataclass
class RotateReport:
    key_id: str
    rewrapped: list[str]
    unchanged: list[str]
    retired: list[str]


def rotate(vault: RotatingVault, on_step: Step | None = None) -> RotateReport:
    step = on_step or (lambda _step, _detail: None)
    with vault.lock(exclusive=True):
        manifests = {name: vault.load(name) for name in vault.names()}  # all readable first
        new_id = vault.keys.create_key(on_step=step)
        report = RotateReport(new_id, [], [], [])
        for name, manifest in manifests.items():
            if manifest.key_id == new_id:
                report.unchanged.append(name)
                continue
            vault.rewrap(manifest, new_id)
            write_atomic(vault.root / name / MANIFEST_NAME, manifest.to_json())
            report.rewrapped.append(name)
            step("model-rewrapped", name)
        report.retired = vault.keys.retire_keys(keep=new_id, on_step=step)
    return report
