"""``appliance privacy``: desensitize JSON lines (stdin to stdout, or a dataset file).

    appliance privacy scan --format jsonl [--policy FILE] < in.jsonl > out.jsonl
    appliance privacy scan FILE.jsonl --out OUT.jsonl [--policy FILE]

Each input line is ``{"text": "..."}``; each output line is ``{"findings": [{"start",
"end", "type", "action"}], "text": "<desensitized>"}`` with code point offsets into the
input text (``end`` exclusive). Every line is its own request: pseudonyms restart per line.
A dataset file may also hold fine-tune records (``messages``, or ``prompt``/``completion``):
they come out desensitized in their own shape (see ``datasets``). A malformed line stops
the run with its line number; a dataset's output file is written whole or not at all.
"""

from __future__ import annotations

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
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), help="policy YAML")
def scan(source: Path | None, out: Path | None, fmt: str, policy: Path | None) -> None:
    """Desensitize JSON lines {"text": ...} from stdin (or SOURCE, into --out)."""
    try:
        scanner = DatasetScanner(*_policy_and_key(policy))
        if source is None:
            if out is not None:
                raise InvalidRequest("--out needs a SOURCE file")
            for line in scanner.lines(enumerate(sys.stdin, 1), text_only=True):
                sys.stdout.write(line)
                sys.stdout.flush()
        else:
            if out is None:
                raise InvalidRequest("a SOURCE file needs --out OUT.jsonl")
            _dataset(source, out, scanner)
            click.echo(f"{out}: {scanner.report.summary()}", err=True)
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
