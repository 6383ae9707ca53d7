"""Content safety: the policy's categories, a test box, term-list import and export, hits.

The test box shows what the API would find in a text, after folding (traditional, width,
case, separators, homoglyphs...), with the evasion each hit survived; nothing is stored.
An import (txt: one term a line; csv: the first column) of any size is validated line by
line with a report of duplicates and invalid lines, merged into the category's imported
terms (``terms/<category>.txt`` beside content.yaml), checked as the whole policy, written
atomically, audited and put in force: in the portal at once, in every other process within
``policy_check_interval_s`` (an edit of a term file is a new version of the policy).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, Response, abort, render_template
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from wtforms import SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from appliance.audit.events import AuditAction
from appliance.auth.access import require
from appliance.auth.rbac import Permission
from appliance.content.explain import evasions
from appliance.content.policy import category_terms, imported_terms_file, read_term_list
from appliance.content.scan import Scanner
from appliance.models import AuditEvent, utcnow
from appliance.portal.context import db_session, portal_services
from appliance.portal.pages import audit
from appliance.portal.policies import _apply, _write, check, write_atomic

bp = Blueprint("content", __name__)
READ = Permission.ADMIN_POLICIES_READ
WRITE = Permission.ADMIN_POLICIES_WRITE
MAX_SAMPLE_CHARS = 10_000
HIT_DAYS = 7
HIT_EVENTS = 20_000  # the most recent API events counted for the chart
NAME = "content.yaml"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class TestForm(FlaskForm):
    sample = TextAreaField("Text", validators=[DataRequired(), Length(max=MAX_SAMPLE_CHARS)])
    direction = SelectField(
        "Direction",
        choices=[
            SelectChoice("input", "input (a request)"),
            SelectChoice("output", "output (an answer)"),
        ],
    )
    role = SelectField("As a caller with the role")


class ImportForm(FlaskForm):
    category = SelectField("Category", validators=[DataRequired()])
    file = FileField(
        "Term list (.txt: one a line; .csv: first column)", validators=[FileRequired()]
    )


def _policy() -> Any:
    return portal_services().content


def _roles() -> list[SelectChoice]:
    return [
        SelectChoice("", "(no role)"),
        *(SelectChoice(r) for r in sorted(portal_services().rbac.roles)),
    ]


def _forms() -> tuple[TestForm, ImportForm]:
    test, upload = TestForm(), ImportForm()
    test.role.choices = _roles()
    upload.category.choices = [SelectChoice(n) for n in _policy().names]
    return test, upload


def _categories() -> list[dict[str, Any]]:
    policy = _policy()
    counts = Counter(t.category for t in policy.terms)
    return [
        {
            "name": c.name,
            "description": c.description,
            "terms": counts.get(i, 0),
            "sequences": len(c.sequences),
            "regexes": len(c.regexes),
            "input": c.action.input,
            "output": c.action.output,
            "pinyin": c.pinyin,
        }
        for i, c in enumerate(policy.categories)
    ]


def _hits() -> list[dict[str, Any]]:
    """Findings per category, direction and action in the last days' API calls."""
    since = utcnow() - timedelta(days=HIT_DAYS)
    rows = db_session().scalars(
        select(AuditEvent.details)
        .where(AuditEvent.category == "api", AuditEvent.timestamp >= since)
        .order_by(AuditEvent.seq.desc())
        .limit(HIT_EVENTS)
    )
    totals: Counter[tuple[str, str, str]] = Counter()
    for details in rows:
        content = details.get("content") if isinstance(details, dict) else None
        for direction in ("input", "output"):
            found = content.get(direction) if isinstance(content, dict) else None
            for category, actions in (found or {}).items():
                for action, count in (actions or {}).items():
                    if isinstance(count, int):
                        totals[(category, direction, action)] += count
    top = max(totals.values(), default=0)
    return [
        {"category": c, "direction": d, "action": a, "count": n, "max": top}
        for (c, d, a), n in sorted(totals.items(), key=lambda item: -item[1])
    ]


def _page(**extra: Any) -> str:
    test, upload = extra.pop("forms", None) or _forms()
    return render_template(
        "content.html",
        categories=_categories(),
        hits=_hits(),
        days=HIT_DAYS,
        test_form=test,
        import_form=upload,
        result=extra.pop("result", None),
        report=extra.pop("report", None),
        **extra,
    )


@bp.get("/content")
@require(READ)
def index() -> str:
    return _page()


@bp.post("/content/test")
@require(READ)
def test() -> str | tuple[str, int]:
    forms = _forms()
    form = forms[0]
    if not form.validate_on_submit():
        return _page(forms=forms), 400
    policy = _policy()
    roles = [form.role.data] if form.role.data else []
    scanner = Scanner(policy, str(form.direction.data), policy.actions_for(roles))
    text = str(form.sample.data)
    result = scanner.scan(text)
    findings = [
        {
            "category": f.category,
            "action": f.action,
            "start": f.start,
            "end": f.end,
            "found": text[f.start : f.end],
            "term": f.term,
            "how": ", ".join(evasions(text[f.start : f.end], f.term, f.source)) or "as written",
        }
        for f in result.findings
    ]
    outcome = {"text": result.text, "blocked": result.blocked, "findings": findings}
    return _page(forms=forms, result=outcome)


@bp.post("/content/import")
@require(WRITE)
def import_terms() -> str | tuple[str, int]:
    forms = _forms()
    form = forms[1]
    if not form.validate_on_submit():
        return _page(forms=forms), 400
    category = str(form.category.data)
    raw = form.file.data.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        form.file.errors = ["The file is not UTF-8 text."]
        return _page(forms=forms), 400
    terms, duplicates, invalid = read_term_list(text)
    directory = portal_services().settings.effective_policies_dir
    target = imported_terms_file(directory / NAME, category)
    existing = read_term_list(target.read_text(encoding="utf-8"))[0] if target.exists() else []
    merged, _, _ = read_term_list("\n".join([*existing, *terms]))
    added = len(merged) - len(existing)
    report = {
        "category": category,
        "read": len(terms) + len(duplicates) + len(invalid),
        "added": added,
        "already": len(terms) - added,
        "duplicates": duplicates[:200],
        "duplicate_count": len(duplicates),
        "invalid": invalid[:200],
        "invalid_count": len(invalid),
    }
    if not terms:
        form.file.errors = ["No valid term in the file."]
        return _page(forms=forms, report=report), 400
    policy_text = (directory / NAME).read_text(encoding="utf-8")
    path = _write(NAME, policy_text)  # the home's copy (seeded from the shipped files)
    target = imported_terms_file(path, category)
    target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    write_atomic(target, "".join(f"{t}\n" for t in merged))
    loaded, error = check(NAME, policy_text)
    if error or loaded is None:
        report["error"] = error
        return _page(forms=forms, report=report), 400
    from appliance.policywatch import file_digest

    _apply(NAME, loaded, file_digest(path))
    audit(
        AuditAction.POLICY_CHANGE,
        target=f"{NAME}:{category}",
        terms_file=str(target),
        added=added,
        duplicates=len(duplicates),
        invalid=len(invalid),
        total=len(merged),
    )
    db_session().commit()
    report["total"] = len(merged)
    return _page(report=report)


@bp.get("/content/<category>/terms.txt")
@require(READ)
def export(category: str) -> Response:
    policy = _policy()
    if category not in policy.names:
        abort(404)
    body = "".join(f"{t}\n" for t in category_terms(policy, category))
    return Response(
        body,
        mimetype="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{category}-terms.txt"'},
    )
