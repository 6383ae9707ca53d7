"""``appliance content``: check texts against the content policy, evaluate a question bank.

    appliance content check [--direction input|output] [--format text|jsonl] [--policy FILE]
    appliance content eval BANK.jsonl [--model NAME] [--format table|json] [--csv FILE]

``check`` reads one text a line on stdin: a JSON object ``{"text": ...}``, or the line
itself. With ``--format jsonl`` each output line is ``{"findings": [{"start", "end",
"category", "action"}], "text": "<after masking>", "blocked": bool}``, offsets in code
points of the input text (``end`` exclusive); a blocked text's ``text`` is what precedes
the block. ``--format text`` says the same for people, with the term that matched and the
evasion it survived. Exit 0; a malformed policy exits 1 naming its line.

``eval`` sends each item of a question bank (JSON lines ``{"prompt", "expected": "refuse"
| "answer", "category"}``) through the API as a chat completion and reports the refusal
rate of the items that should be refused, the false-refusal rate of those that should be
answered, and both per category. A refusal is a 400 ``content_policy_violation``, an
answer cut with ``finish_reason: content_filter``, or an answer that says it refuses
(``REFUSALS``). Exit 0 when it ran, whatever the rates.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from appliance.config import load_settings
from appliance.content.explain import evasions
from appliance.content.policy import ContentPolicy, load_content_policy
from appliance.content.scan import Scanner
from appliance.errors import ApplianceError, PolicyError


@click.group("content")
def content() -> None:
    """Content safety: sensitive terms, prompt injection, refusal evaluation."""


def _policy(path: Path | None) -> ContentPolicy:
    if path is None:
        path = load_settings().effective_policies_dir / "content.yaml"
    return load_content_policy(path)


def _texts(stream: Any) -> Any:
    for number, raw in enumerate(stream, 1):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            continue
        text = line
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                if not isinstance(record.get("text"), str):
                    raise PolicyError(f"stdin:{number}: a JSON line needs a string 'text'")
                text = record["text"]
        yield text


@content.command("check")
@click.option(
    "--direction", type=click.Choice(["input", "output"]), default="input", show_default=True
)
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "text"]), default="jsonl", show_default=True
)
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), help="policy YAML")
def check(direction: str, fmt: str, policy: Path | None) -> None:
    """Findings of each text on stdin, and the text after masking."""
    try:
        scanner = Scanner(_policy(policy), direction)
        for text in _texts(sys.stdin):
            result = scanner.scan(text)
            if fmt == "jsonl":
                record = {
                    "findings": [f.public() for f in result.findings],
                    "text": result.text,
                    "blocked": result.blocked is not None,
                }
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                sys.stdout.write(_as_text(text, result))
            sys.stdout.flush()
    except ApplianceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


def _as_text(text: str, result: Any) -> str:
    lines = [("BLOCKED  " if result.blocked else "") + result.text]
    for f in result.findings:
        how = ", ".join(evasions(text[f.start : f.end], f.term, f.source)) or "as written"
        lines.append(
            f"  {f.start}-{f.end} {f.category} {f.action}: {text[f.start : f.end]!r}"
            f" matched {f.term!r} ({how})"
        )
    return "\n".join(lines) + "\n"


@content.command("eval")
@click.argument("bank", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--model", help="model or alias (default: the first the key may use)")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write every item's outcome here")  # fmt: skip
@click.option("--url", default=None, help="the API (default: http://127.0.0.1:$API_PORT)")
@click.option("--key", default=None, help="API key (default: $APPLIANCE_API_KEY or the demo key)")
@click.option("--max-tokens", default=32, show_default=True, type=click.IntRange(1, 4096))
def evaluate(
    bank: Path,
    model: str | None,
    fmt: str,
    csv_path: Path | None,
    url: str | None,
    key: str | None,
    max_tokens: int,
) -> None:
    """Refusal and false-refusal rates of a question bank, through the API."""
    from appliance.content.evaluation import Item, evaluate_bank, report_table

    try:
        items = Item.read(bank)
        settings = load_settings()
        base = (url or f"http://127.0.0.1:{settings.api_port}").rstrip("/")
        api_key = key or os.environ.get("APPLIANCE_API_KEY") or _demo_key(settings.home)
        started = time.monotonic()
        report = evaluate_bank(items, base, api_key, model=model, max_tokens=max_tokens)
        report["seconds"] = round(time.monotonic() - started, 1)
        report["bank"] = str(bank)
    except ApplianceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    if csv_path is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["prompt", "category", "expected", "outcome", "refused", "reason"])
        for row in report["items"]:
            writer.writerow([row[k] for k in ("prompt", "category", "expected", "outcome",
                                              "refused", "reason")])  # fmt: skip
        csv_path.write_text(buffer.getvalue(), encoding="utf-8-sig")
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(report_table(report))


def _demo_key(home: Path) -> str:
    path = home / "demo-api-key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        raise PolicyError(
            f"no API key: pass --key, set APPLIANCE_API_KEY, or run `make run` ({path})"
        ) from None
