"""`make wheelhouse` holds every wheel the appliance needs: with the package index and
every pip configuration switched off, pip installs the appliance (engine extra included)
from it alone. Needs the wheelhouse (`make wheelhouse`); skipped otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "wheelhouse"
NODE_PYTHON = Path("/usr/bin/python3")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

if not any(WHEELHOUSE.glob("appliance-*.whl")):
    pytest.skip("needs the wheelhouse: make wheelhouse", allow_module_level=True)


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}


def test_only_wheels_and_the_vllm_record() -> None:
    names = [p.name for p in WHEELHOUSE.iterdir() if not p.name.startswith(".")]
    others = [n for n in names if not n.endswith(".whl")]
    assert others == ["vllm-requirements.txt"] or sorted(others) == sorted(
        ["vllm-requirements.txt", "vllm"]
    ), others
    assert any(n.startswith("torch-") and "+cpu" in n for n in names), "torch CPU wheel"
    record = (WHEELHOUSE / "vllm-requirements.txt").read_text(encoding="utf-8")
    defaults = (ROOT / "ansible" / "roles" / "vllm" / "defaults" / "main.yml").read_text()
    (pin,) = [line for line in record.splitlines() if line and not line.startswith("#")]
    assert f'vllm_package: "{pin}"' in defaults


def test_the_appliance_resolves_from_the_wheelhouse_alone(tmp_path: Path) -> None:
    """A fresh virtualenv of the nodes' Python; pip with --no-index resolves everything."""
    python = NODE_PYTHON if NODE_PYTHON.exists() else Path(sys.executable)
    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-index",
            "--find-links",
            str(WHEELHOUSE),
            "--report",
            str(report),
            "appliance[engine]",
        ],
        env=_offline_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    names = {item["metadata"]["name"].lower() for item in installs}
    assert {"appliance", "torch", "transformers", "celery", "gunicorn"} <= names
    assert all(item["download_info"]["url"].startswith("file://") for item in installs)


def test_without_the_wheelhouse_nothing_installs(tmp_path: Path) -> None:
    """The same command with an empty directory fails: the index really is off."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--dry-run",
            "--no-index",
            "--find-links",
            str(tmp_path),
            "flask",
        ],
        env=_offline_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "No matching distribution" in done.stderr
