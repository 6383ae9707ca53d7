"""``appliance privacy``: desensitize JSON lines (stdin to stdout, or a dataset file).

    appliance privacy scan --format jsonl [--policy FILE] < in.jsonl > out.jsonl
    appliance privacy scan FILE.jsonl --out OUT.jsonl [--policy FILE]

Each input line is ``{"text": "..."}``; each output line is ``{"findings": [{"start",
"end", "type", "action"}], "text": "<desensitized>"}`` with code point offsets into the
input text (``end`` exclusive). Every line is its own request: pseudonyms restart per line.
A malformed line stops the run with its line number; a dataset's output file is written
whole or not at all.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from appliance.config import load_settings
from appliance.errors import ApplianceError, InvalidRequest
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy
from appliance.privacy.transform import desensitize
from appliance.vault.master_key import derive_key, load_master_key


@click.group("privacy")
def privacy() -> None:
    """Find and desensitize personal data."""


@privacy.command("scan")
@click.argument("source", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="dataset output")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), help="policy YAML")
def scan(source: Path | None, out: Path | None, fmt: str, policy: Path | None) -> None:
    """Desensitize JSON lines {"text": ...} from stdin (or SOURCE, into --out)."""
    try:
        rules, hash_key = _policy_and_key(policy)
        if source is None:
            if out is not None:
                raise InvalidRequest("--out needs a SOURCE file")
            _stream(sys.stdin, sys.stdout, rules, hash_key)
        else:
            if out is None:
                raise InvalidRequest("a SOURCE file needs --out OUT.jsonl")
            counts = _dataset(source, out, rules, hash_key)
            summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
            click.echo(f"{out}: personal data found: {summary}", err=True)
    except ApplianceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


def _policy_and_key(path: Path | None) -> tuple[PrivacyPolicy, bytes | None]:
    settings = load_settings()
    rules = load_privacy_policy(path or settings.effective_policies_dir / "desensitization.yaml")
    key = None
    if settings.master_key_path.exists():
        key = derive_key(load_master_key(settings.master_key_path), "privacy-hash")
    return rules, key


def _stream(source: IO[str], sink: IO[str], rules: PrivacyPolicy, key: bytes | None) -> None:
    for line in _results(enumerate(source, 1), rules, key, Counter()):
        sink.write(line)
        sink.flush()


def _dataset(source: Path, out: Path, rules: PrivacyPolicy, key: bytes | None) -> Counter[str]:
    counts: Counter[str] = Counter()
    size = source.stat().st_size
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with (
            source.open(encoding="utf-8") as lines,
            os.fdopen(fd, "w", encoding="utf-8") as sink,
            click.progressbar(length=size, label="scanning", file=sys.stderr) as bar,
        ):
            for line in _results(_tracked(lines, bar), rules, key, counts):
                sink.write(line)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return counts


def _tracked(lines: Iterable[str], bar: Any) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, 1):
        bar.update(len(line.encode("utf-8")))
        yield number, line


def _results(
    lines: Iterable[tuple[int, str]], rules: PrivacyPolicy, key: bytes | None, counts: Counter[str]
) -> Iterator[str]:
    policy_actions = rules.actions_for()
    # A scan reports a blocked type and redacts it: there is no request here to refuse.
    actions = {k: "redact" if a == "block" else a for k, a in policy_actions.items()}
    for number, line in lines:
        if not line.strip():
            continue
        text = _text_of(number, line)
        result = desensitize(text, actions, hash_key=key, find=rules.find)
        findings = [
            {
                "start": a.finding.start,
                "end": a.finding.end,
                "type": a.finding.type,
                "action": policy_actions[a.finding.type],
            }
            for a in result.applied
        ]
        counts.update(a.finding.type for a in result.applied)
        yield json.dumps({"findings": findings, "text": result.text}, ensure_ascii=False) + "\n"


def _text_of(number: int, line: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        raise InvalidRequest(f"line {number}: not JSON") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise InvalidRequest(f'line {number}: expected an object with a string "text"')
    return record["text"]
