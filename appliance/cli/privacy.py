"""``appliance privacy``: desensitize JSON lines (stdin to stdout, or a dataset file).

    appliance privacy scan --format jsonl [--policy FILE] < in.jsonl > out.jsonl
    appliance privacy scan FILE.jsonl --out OUT.jsonl [--policy FILE]
    appliance privacy scan --explain [--format text] < in.jsonl

Each input line is ``{"text": "..."}``; each output line is ``{"findings": [{"start",
"end", "type", "action"}], "text": "<desensitized>"}`` with code point offsets into the
input text (``end`` exclusive). Every line is its own request: pseudonyms restart per line.
With ``--explain`` each output line also has ``"explain"``: every finding and every near
miss with its type, span, score, the check that validated it, the context rules that
raised or lowered it and, for one not taken, why (``check digit wrong``, ``lowered -0.60
by keyword 订单号 1 chars before``). ``--format text`` prints the same for people: the
desensitized text, then one line per entry.
A dataset file may also hold fine-tune records (``messages``, or ``prompt``/``completion``):
they come out desensitized in their own shape (see ``datasets``). A malformed line stops
the run with its line number; a dataset's output file is written whole or not at all.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from appliance.config import load_settings
from appliance.errors import ApplianceError, InvalidRequest
from appliance.privacy.datasets import DatasetScanner
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy
from appliance.vault.master_key import derive_key, load_master_key


@click.group("privacy")
def privacy() -> None:
    """Find and desensitize personal data."""


@privacy.command("scan")
@click.argument("source", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="dataset output")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "text"]), default="jsonl", show_default=True
)
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), help="policy YAML")
@click.option(
    "--explain", is_flag=True, help="say why each value was taken or not (stdin lines only)"
)
def scan(
    source: Path | None, out: Path | None, fmt: str, policy: Path | None, explain: bool
) -> None:
    """Desensitize JSON lines {"text": ...} from stdin (or SOURCE, into --out)."""
    try:
        if source is not None and (explain or fmt == "text"):
            raise InvalidRequest("--explain and --format text read lines from stdin, not SOURCE")
        scanner = DatasetScanner(*_policy_and_key(policy), explained=explain)
        if source is None:
            if out is not None:
                raise InvalidRequest("--out needs a SOURCE file")
            for line in scanner.lines(enumerate(sys.stdin, 1), text_only=True):
                sys.stdout.write(line if fmt == "jsonl" else _as_text(line))
                sys.stdout.flush()
        else:
            if out is None:
                raise InvalidRequest("a SOURCE file needs --out OUT.jsonl")
            _dataset(source, out, scanner)
            click.echo(f"{out}: {scanner.report.summary()}", err=True)
    except ApplianceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


def _as_text(line: str) -> str:
    """An output line for people: the desensitized text, then each explanation."""
    record = json.loads(line)
    rows = [record["text"]]
    for entry in record.get("explain", []):
        state = "taken" if entry["taken"] else "not taken"
        parts = [
            f"  {state} {entry['type']} [{entry['start']}:{entry['end']}]"
            f" score {entry['score']:.2f}",
            entry["validator"],
            *entry["context"],
            entry["reason"],
        ]
        rows.append("; ".join(p for p in parts if p))
    return "\n".join(rows) + "\n"


def _policy_and_key(path: Path | None) -> tuple[PrivacyPolicy, bytes | None]:
    settings = load_settings()
    rules = load_privacy_policy(path or settings.effective_policies_dir / "desensitization.yaml")
    key = None
    if settings.master_key_path.exists():
        key = derive_key(load_master_key(settings.master_key_path), "privacy-hash")
    return rules, key


def _dataset(source: Path, out: Path, scanner: DatasetScanner) -> None:
    """Written whole (through a temporary file beside ``out``) or not at all."""
    size = source.stat().st_size
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with (
            source.open(encoding="utf-8") as lines,
            os.fdopen(fd, "w", encoding="utf-8") as sink,
            click.progressbar(length=size, label="scanning", file=sys.stderr) as bar,
        ):
            for line in scanner.lines(_tracked(lines, bar), text_only=False):
                sink.write(line)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _tracked(lines: Iterable[str], bar: Any) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, 1):
        bar.update(len(line.encode("utf-8")))
        yield number, line
