"""Models: the registry, upstream replicas and their health, aliases with canary weights,
and the sealed models of the vault. Operators move canary weights here (audited)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse

from appliance.audit.events import AuditAction
from appliance.auth.access import require
from appliance.auth.rbac import Permission
from appliance.errors import ApplianceError
from appliance.portal.context import db_session, portal_services
from appliance.portal.pages import audit
from appliance.upstream.aliases import get_alias, list_aliases, set_alias_weights, target_key
from appliance.upstream.registry import list_models, vllm_options_of

log = logging.getLogger(__name__)
bp = Blueprint("models", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class WeightsForm(FlaskForm):
    """The weights come as ``weight-<target id>`` fields; validated by set_alias_weights."""


@dataclass(frozen=True)
class SealedModel:
    name: str
    kind: str
    cipher: str
    files: int
    size: int
    key_id: str
    created_at: str
    error: str | None = None


def vault_status() -> tuple[list[SealedModel], str | None]:
    """The vault's sealed models (manifests checked), or why they cannot be listed."""
    from appliance.vault.factory import build_vault

    settings = portal_services().settings
    if not settings.effective_vault_dir.exists():
        return [], None
    try:
        store = build_vault(settings)
        rows = []
        for name in store.names():
            try:
                m = store.load(name)
            except ApplianceError as exc:
                rows.append(SealedModel(name, "", "", 0, 0, "", "", error=exc.message))
                continue
            rows.append(
                SealedModel(
                    name, m.kind, m.cipher, len(m.files), m.total_size, m.key_id, m.created_at
                )
            )
        return rows, None
    except (ApplianceError, OSError) as exc:
        log.warning("vault status unavailable: %s", type(exc).__name__)
        return [], getattr(exc, "message", None) or type(exc).__name__


@bp.get("/models")
@require(Permission.ADMIN_MODELS_READ)
def index() -> str:
    db = db_session()
    sealed, vault_error = vault_status()
    return render_template(
        "models.html",
        models=list_models(db),
        aliases=list_aliases(db),
        target_key=target_key,
        vllm_options=vllm_options_of,
        sealed=sealed,
        vault_error=vault_error,
        form=WeightsForm(),
    )


@bp.post("/models/aliases/<name>/weights")
@require(Permission.ADMIN_MODELS_WRITE)
def weights(name: str) -> BaseResponse | str:
    form = WeightsForm()
    db = db_session()
    alias = get_alias(db, name)
    if not form.validate_on_submit():
        return redirect(url_for("models.index"))
    before = {target_key(t): t.weight for t in alias.targets}
    wanted: dict[str, int] = {}
    for target in alias.targets:
        raw = request.form.get(f"weight-{target.id}", "").strip()
        try:
            wanted[target.version or target_key(target)] = int(raw)
        except ValueError:
            flash(f"The weight of {target_key(target)} must be a whole number.", "error")
            return redirect(url_for("models.index"))
    try:
        set_alias_weights(db, name, wanted)
    except ApplianceError as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("models.index"))
    after = {target_key(t): t.weight for t in alias.targets}
    audit(AuditAction.MODEL_ALIAS_SET, target=name, weights_before=before, weights=after)
    db.commit()
    flash(f"Weights of {name}: " + ", ".join(f"{k}={v}" for k, v in after.items()) + ".", "ok")
    return redirect(url_for("models.index"))
