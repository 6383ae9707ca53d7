"""The fine-tune pages in headless Chromium: an operator opens Fine-tunes from the menu,
uploads a dataset, opens a training run whose loss curve is drawn server-side, and sees
the page follow the run by itself (the JSON status poll under the portal's CSP). Runs are
written into the database; nothing is trained. Fixtures from test_browser."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete, select

from appliance.finetune.policy import AliasPolicy, FinetunePolicy
from appliance.models import (
    AliasTarget,
    FinetuneDataset,
    FinetuneRecord,
    FinetuneRun,
    Model,
    ModelAlias,
)
from appliance.portal.app import create_app
from appliance.portal.finetune_views import REFRESH_MS_KEY
from appliance.services import Services
from appliance.upstream.aliases import add_alias, get_alias
from appliance.upstream.registry import add_model
from tests import timing
from tests.conftest import LiveServer, unique
from tests.portal.helpers import PASSWORD, make_user
from tests.portal.test_browser import (  # noqa: F401 (fixtures used by name)
    browser,
    page,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser


@dataclass
class Live:
    url: str
    services: Services
    alias: str


def curve(steps: int) -> list[list[float]]:
    return [
        [step, round(2.4 / (1 + step / 12) + 0.05 * (step % 3), 5)] for step in range(1, steps + 1)
    ]


@pytest.fixture()
def live(pg_services: Services, tmp_path: Path) -> Iterator[Live]:
    """A fine-tuned alias: v1 promoted and serving, v2 training (20 of 60 steps)."""
    alias, model = unique("ft-ui"), unique("ft-ui-base")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    with pg_services.db.session() as session:
        add_model(session, model, path=tmp_path / "base")
        add_alias(session, alias, [(model, None, 100, "")])
        base = session.scalar(select(Model).where(Model.name == model))
        assert base is not None
        row = get_alias(session, alias)
        row.targets[0].weight = 0  # promoted: the base stays, drained, for a rollback
        row.targets.append(
            AliasTarget(model=base, adapter=f"ft-{alias}-v1", weight=100, version="v1")
        )
        session.add_all(
            [
                FinetuneRun(
                    alias=alias,
                    version=1,
                    status="promoted",
                    trigger="schedule",
                    requested_by="beat",
                    base_model=model,
                    adapter=f"ft-{alias}-v1",
                    step=48,
                    total_steps=48,
                    loss=curve(48)[-1][1],
                    losses=curve(48),
                    gate_report={
                        "passed": True,
                        "checks": [
                            {
                                "name": "perplexity_ratio",
                                "passed": True,
                                "value": 0.93,
                                "threshold": 1.0,
                                "detail": "held-out perplexity 0.93x the current version",
                            }
                        ],
                    },
                ),
                FinetuneRun(
                    alias=alias,
                    version=2,
                    status="training",
                    trigger="portal",
                    requested_by="someone",
                    base_model=model,
                    step=20,
                    total_steps=60,
                    loss=curve(20)[-1][1],
                    eta_s=400.0,
                    losses=curve(20),
                    data_report={
                        "new": 180,
                        "replay": 36,
                        "dropped": {"blocked_personal_data": 1, "length": 4, "near_duplicate": 9},
                        "kept": 202,
                        "heldout": 18,
                        "train": 184,
                        "sources": {"tickets": 150, "import": 66},
                        "weights": {"tickets": 1.2, "import": 0.8},
                    },
                ),
            ]
        )
        session.commit()
    services = dataclasses.replace(
        pg_services, finetune=FinetunePolicy(aliases={alias: AliasPolicy()})
    )
    app = create_app(services=services)
    app.config[REFRESH_MS_KEY] = 300
    server = LiveServer(app)
    yield Live(server.url, services, alias)
    server.stop()
    with pg_services.db.session() as session:
        session.execute(delete(FinetuneRun).where(FinetuneRun.alias == alias))
        session.execute(delete(FinetuneRecord).where(FinetuneRecord.alias == alias))
        session.execute(delete(FinetuneDataset).where(FinetuneDataset.alias == alias))
        session.execute(delete(ModelAlias).where(ModelAlias.name == alias))
        session.execute(delete(Model).where(Model.name == model))


def test_operator_uploads_a_dataset_and_follows_a_training_run(
    live: Live,
    page: Page,  # noqa: F811 (after live: the page closes before the server stops)
) -> None:
    url, alias = live.url, live.alias
    page.goto(f"{url}/login")
    sign_in(page, make_user(live.services, ["operator"]), PASSWORD)
    page.get_by_test_id("nav-finetune").click()
    expect(page).to_have_url(f"{url}/finetune")
    section = page.locator(f'section[data-alias="{alias}"]')
    expect(section.locator(f'tr[data-target="{alias}@v1"]')).to_contain_text("100 %")
    expect(section.get_by_test_id("rollback-v1")).to_be_visible()
    expect(section.locator(f'tr[data-run="{alias}@v2"]')).to_contain_text("20/60")
    expect(section.get_by_test_id("run-now")).to_be_disabled()  # v2 is training

    records = [
        {
            "messages": [
                {"role": "user", "content": f"Where is order {i}?"},
                {"role": "assistant", "content": f"Order {i} ships tomorrow."},
            ]
        }
        for i in range(3)
    ]
    page.select_option("#alias", alias)
    page.fill("#source", "tickets")
    page.set_input_files(
        "#file",
        files=[
            {
                "name": "orders.jsonl",
                "mimeType": "application/jsonl",
                "buffer": "\n".join(json.dumps(r) for r in records).encode(),
            }
        ],
    )
    page.get_by_test_id("upload").click()
    expect(page.get_by_role("status")).to_contain_text(f"Imported {alias} dataset 1: 3 records")
    expect(section.locator(f'tr[data-dataset="{alias}@1"]')).to_contain_text("orders.jsonl")
    screenshot(page, "finetune-runs")

    section.locator(f'tr[data-run="{alias}@v2"] a').click()
    expect(page).to_have_url(f"{url}/finetune/{alias}/runs/v2")
    chart = page.get_by_test_id("loss-chart")
    expect(chart.locator("polyline")).to_be_visible()
    assert len((chart.locator("polyline").get_attribute("points") or "").split()) == 20
    expect(page.get_by_test_id("data-dropped")).to_contain_text("near duplicate")
    expect(page.get_by_test_id("step")).to_have_text("20")

    # The worker reports more steps: the page notices (status poll) and redraws the curve.
    with live.services.db.session() as session:
        run = session.scalars(
            select(FinetuneRun).where(FinetuneRun.alias == alias, FinetuneRun.version == 2)
        ).one()
        run.step, run.losses, run.loss, run.eta_s = 36, curve(36), curve(36)[-1][1], 260.0
        session.commit()
    expect(page.get_by_test_id("step")).to_have_text("36", timeout=timing.scaled(10_000))
    expect(page.get_by_test_id("eta")).to_have_text("4 min 20 s")
    assert len((chart.locator("polyline").get_attribute("points") or "").split()) == 36
    screenshot(page, "finetune")
