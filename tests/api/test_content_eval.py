"""``appliance content eval`` on the shipped question banks, through a live gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import SHIPPED_POLICIES
from appliance.services import Services
from tests.api.conftest import Caller, new_caller
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow
BANKS = ["content-bank-zh.jsonl", "content-bank-en.jsonl"]


def run_eval(
    server: LiveServer, key: str, model: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return subprocess.run(
        [sys.executable, "-m", "appliance", "content", "eval", *args,
         "--url", server.url, "--key", key, "--model", model, "--max-tokens", "2"],
        capture_output=True, text=True, timeout=900, env=env, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def unlimited(pg_services: Services) -> Caller:
    """An admin's key: no rate limit, so every item reaches the policy and the model."""
    return new_caller(pg_services, "admin")


@pytest.mark.parametrize("bank", BANKS)
def test_the_shipped_banks_run_and_report_rates(
    api_server: LiveServer, unlimited: Caller, tiny_alias: str, bank: str, tmp_path: Path
) -> None:
    caller = unlimited
    path = SHIPPED_POLICIES / bank
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    csv_path = tmp_path / "report.csv"
    done = run_eval(api_server, caller.key, tiny_alias, str(path), "--format", "json",
                    "--csv", str(csv_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    overall = report["overall"]
    print(bank, json.dumps(overall, ensure_ascii=False))
    assert overall["items"] == len(items) and overall["errors"] == 0
    assert overall["should_refuse"] == sum(i["expected"] == "refuse" for i in items)
    injection = report["categories"]["prompt_injection"]
    assert injection["refusal_rate"] == 1.0  # the shipped policy blocks every one
    assert injection["false_refusal_rate"] in (0.0, None)
    assert len(csv_path.read_text(encoding="utf-8-sig").splitlines()) == len(items) + 1
    few = tmp_path / "few.jsonl"  # the table format, on a few items (the rates are above)
    few.write_text(
        "".join(path.read_text(encoding="utf-8").splitlines(True)[:12]), encoding="utf-8"
    )
    table = run_eval(api_server, caller.key, tiny_alias, str(few))
    assert table.returncode == 0 and "refusal rate" in table.stdout and "ALL" in table.stdout


def test_a_malformed_bank_names_its_line(
    api_server: LiveServer, caller: Caller, tiny_alias: str, tmp_path: Path
) -> None:
    bank = tmp_path / "bank.jsonl"
    bank.write_text(
        '{"prompt": "hi", "expected": "answer"}\n{"prompt": "x", "expected": "maybe"}\n'
    )
    done = run_eval(api_server, caller.key, tiny_alias, str(bank))
    assert done.returncode == 1 and f"{bank}:2:" in done.stderr and "Traceback" not in done.stderr
