"""ansible-lint at its production profile, and Ansible's own syntax check, over ansible/."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
BIN = ROOT / ".venv" / "bin"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _env() -> dict[str, str]:
    return os.environ | {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "NO_COLOR": "1",
    }


def test_ansible_lint_production_profile_is_clean() -> None:
    done = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
        cwd=ANSIBLE,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-4000:]
    assert "production" in done.stderr + done.stdout


@pytest.mark.parametrize("inventory", ["single", "fleet"])
def test_the_playbook_passes_the_syntax_check(inventory: str) -> None:
    done = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "--syntax-check",
            "-i",
            f"inventories/{inventory}/hosts.yml",
            "site.yml",
        ],
        cwd=ANSIBLE,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_fleet_inventory_places_every_part() -> None:
    """The fleet example's groups and the model registry's vLLM entries, as Ansible sees them."""
    done = subprocess.run(
        [
            str(BIN / "ansible-inventory"),
            "-i",
            "inventories/fleet/hosts.yml",
            "--list",
        ],
        cwd=ANSIBLE,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    inventory = json.loads(done.stdout)
    for group in ("appliance_gateway", "appliance_workers", "gpu_nodes", "databases"):
        assert inventory[group]["hosts"], group
    assert len(inventory["gpu_nodes"]["hosts"]) == 2
