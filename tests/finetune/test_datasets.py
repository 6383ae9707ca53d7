"""Versioned datasets, captured records with retention, the replay mix and the alias lease,
on the real PostgreSQL database."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from appliance.config import SHIPPED_POLICIES
from appliance.errors import InvalidRequest, NotFound
from appliance.finetune import datasets, runs
from appliance.finetune.policy import Capture, Data
from appliance.models import FinetuneDataset, FinetuneRecord, FinetuneRun, utcnow
from appliance.privacy.policy import PrivacyPolicy, load_privacy_policy
from appliance.services import Services
from tests.conftest import unique

PHONE = "13812345678"


def chat(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def blocking_privacy(tmp_path_factory: pytest.TempPathFactory) -> PrivacyPolicy:
    """The shipped policy, but a US SSN blocks the record."""
    text = (SHIPPED_POLICIES / "desensitization.yaml").read_text()
    path = tmp_path_factory.mktemp("privacy") / "desensitization.yaml"
    path.write_text(text.replace("US_SSN: redact", "US_SSN: block"))
    return load_privacy_policy(path)


def import_file(
    services: Services, alias: str, path: Path, privacy: PrivacyPolicy, source: str = "crm"
) -> datasets.ImportReport:
    with services.db.session() as session:
        report = datasets.import_dataset(
            session, alias, path, source=source, privacy=privacy, hash_key=b"k" * 32, actor="t"
        )
        session.commit()
        return report


def stored(services: Services, alias: str) -> list[FinetuneRecord]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(FinetuneRecord)
                .where(FinetuneRecord.alias == alias)
                .order_by(FinetuneRecord.id)
            )
        )


def test_import_desensitizes_versions_and_drops_blocked_records(
    pg_services: Services, blocking_privacy: PrivacyPolicy, tmp_path: Path
) -> None:
    alias = unique("ds")
    first = write_jsonl(
        tmp_path / "first.jsonl",
        [
            chat(f"Call me on {PHONE} about the invoice", "We will call you back today."),
            chat("My SSN is 123-45-6789, update it", "Done."),
            {"prompt": "Where is my parcel?", "completion": "It ships tomorrow."},
        ],
    )
    report = import_file(pg_services, alias, first, blocking_privacy)
    assert (report.dataset.version, report.kept, report.dropped_blocked) == (1, 2, 1)
    assert report.found["CN_PHONE"] == 1 and report.found["US_SSN"] == 1
    rows = stored(pg_services, alias)
    text = json.dumps([r.record for r in rows], ensure_ascii=False)
    assert PHONE not in text and "123-45-6789" not in text
    assert rows[1].record["messages"][0] == {"role": "user", "content": "Where is my parcel?"}
    assert {r.source for r in rows} == {"crm"} and all(r.expires_at is None for r in rows)

    second = import_file(pg_services, alias, first, blocking_privacy, source="wiki")
    assert second.dataset.version == 2
    assert len(stored(pg_services, alias)) == 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not JSON"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "line 2: a record ends with"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "line 2: messages[0] needs a role"),
        ('{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}',
         "line 2: messages[0].content must be non-empty"),
        ('{"text": "plain"}', "line 2: expected an object with 'messages'"),
    ],
)  # fmt: skip
def test_a_bad_line_is_named_and_nothing_is_written(
    pg_services: Services, blocking_privacy: PrivacyPolicy, tmp_path: Path, line: str, message: str
) -> None:
    alias = unique("bad")
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(chat("fine question", "fine answer")) + "\n" + line + "\n")
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        import_file(pg_services, alias, path, blocking_privacy)
    with pg_services.db.session() as session:
        datasets_count = session.scalar(
            select(func.count()).select_from(FinetuneDataset).where(FinetuneDataset.alias == alias)
        )
    assert datasets_count == 0 and stored(pg_services, alias) == []


def test_unreadable_or_non_utf8_files_are_refused(
    pg_services: Services, blocking_privacy: PrivacyPolicy, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequest, match="cannot read"):
        import_file(pg_services, unique("x"), tmp_path / "missing.jsonl", blocking_privacy)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(InvalidRequest, match="not UTF-8"):
        import_file(pg_services, unique("x"), latin, blocking_privacy)
    with pytest.raises(InvalidRequest, match="source"):
        import_file(pg_services, unique("x"), latin, blocking_privacy, source="Bad Source!")


def test_captured_records_follow_the_opt_in_and_expire(pg_services: Services) -> None:
    alias = unique("cap")
    rule = Capture(keys=("sk-app-AAAA",), retention_days=1)
    assert datasets.captures(rule, "sk-app-AAAA")
    assert not datasets.captures(rule, "sk-app-BBBB")
    assert not datasets.captures(Capture(), "sk-app-AAAA")  # nobody is captured by default
    with pg_services.db.session() as session:
        kept = datasets.store_captured(
            session,
            alias,
            [{"role": "user", "content": "hello <CN_PHONE_1>"}],
            "hi there",
            key_prefix="sk-app-AAAA",
            rule=rule,
        )
        empty = datasets.store_captured(
            session, alias, [{"role": "user", "content": "x"}], "", key_prefix="k", rule=rule
        )
        session.commit()
        assert kept is not None and empty is None
        assert kept.source == "capture:sk-app-aaaa"
        assert kept.expires_at is not None and kept.expires_at > utcnow() + timedelta(hours=23)
        assert datasets.count_new(session, alias, 0) == 1
        kept.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
        assert datasets.count_new(session, alias, 0) == 0  # expired: no longer training data
        assert datasets.purge_expired(session) >= 1
        session.commit()
    assert stored(pg_services, alias) == []


def add_records(services: Services, alias: str, source: str, count: int) -> list[int]:
    with services.db.session() as session:
        rows = [
            FinetuneRecord(alias=alias, source=source, record=chat(f"q {source} {i}", f"a {i}"))
            for i in range(count)
        ]
        session.add_all(rows)
        session.commit()
        return [r.id for r in rows]


def test_an_incremental_run_takes_new_records_and_a_replay_sample(pg_services: Services) -> None:
    alias = unique("mix")
    old = add_records(pg_services, alias, "crm", 50)
    new = add_records(pg_services, alias, "wiki", 20)
    policy = Data(replay_fraction=0.25)
    with pg_services.db.session() as session:
        data = datasets.select_training_data(session, alias, max(old), policy, seed=1)
    assert [r["id"] for r in data.new] == new
    assert len(data.replay) == 5 and {r["id"] for r in data.replay} <= set(old)
    assert data.high_water == max(new)
    assert data.by_source() == {"wiki": 20, "crm": 5}
    assert data.weights == {"crm": 1.0, "wiki": 1.0}


def test_source_weights_adapt_to_the_last_runs_losses() -> None:
    weights = datasets.adapt_weights(
        {"crm": 2.0}, ["crm", "wiki", "capture:sk-app-x"], {"crm": 1.0, "wiki": 3.0}
    )
    # mean loss 2.0: crm is easier (x0.5), wiki harder (x1.5), capture unknown (x1)
    assert weights == {"crm": 1.0, "wiki": 1.5, "capture:sk-app-x": 1.0}
    clamped = datasets.adapt_weights({}, ["a", "b", "c"], {"a": 0.1, "b": 10.0, "c": 1.0})
    assert clamped == {"a": 0.5, "b": 2.0, "c": 0.5}  # mean 3.7: b x2.7, c x0.27


def test_the_mix_follows_the_weights() -> None:
    records = [{"source": "a", "n": i} for i in range(200)] + [
        {"source": "b", "n": i} for i in range(200)
    ]
    mix = datasets.weighted_mix(records, {"a": 3.0, "b": 1.0}, seed=3)
    counts = Counter(r["source"] for r in mix)
    assert 280 <= counts["a"] <= 320 and 80 <= counts["b"] <= 120
    assert datasets.weighted_mix([], {"a": 1.0}) == []


def test_one_run_per_alias_holds_the_lease_until_it_ends(pg_services: Services) -> None:
    alias = unique("lock")
    with pg_services.db.session() as session:
        first = runs.create_run(session, alias, trigger="cli", actor="t")
        second = runs.create_run(session, alias, trigger="cli", actor="t")
        session.commit()
        assert (first.version, second.version, first.label) == (1, 2, "v1")
        assert runs.acquire(session, alias, first.id, "host:1", ttl_s=60)
        assert runs.acquire(session, alias, first.id, "host:1", ttl_s=60)  # our own: renewed
        assert not runs.acquire(session, alias, second.id, "host:2", ttl_s=60)
        # The same run delivered again to another worker waits too: the first may be alive.
        assert not runs.acquire(session, alias, first.id, "host:3", ttl_s=60)
        lock = runs.lock_of(session, alias)
        assert lock is not None and (lock.run_id, lock.holder) == (first.id, "host:1")

        # The worker dies: its lease stays until it runs out, then the run can be resumed.
        lock.expires_at = utcnow() - timedelta(seconds=1)
        first.status = "training"
        session.commit()
        assert first.id in [r.id for r in runs.stale_runs(session)]
        assert runs.acquire(session, alias, first.id, "host:3", ttl_s=60)
        assert first.id not in [r.id for r in runs.stale_runs(session)]
        assert runs.renew(session, alias, first.id, ttl_s=60)
        runs.release(session, alias, first.id)
        session.commit()
        assert runs.acquire(session, alias, second.id, "host:2", ttl_s=60)
        assert not runs.renew(session, alias, first.id, ttl_s=60)  # the lease is gone
        runs.release(session, alias, second.id)
        first.status = second.status = "failed"  # nothing left active in the shared database
        session.commit()


def test_versions_are_named_and_looked_up(pg_services: Services) -> None:
    alias = unique("ver")
    with pg_services.db.session() as session:
        run = runs.create_run(session, alias, trigger="cli", actor="t", status="skipped")
        session.commit()
        assert run.finished_at is not None
        assert runs.get_run(session, alias, "v1").id == run.id
        assert runs.get_run(session, alias, 1).id == run.id
        for missing in ("v2", "latest"):
            with pytest.raises(NotFound, match=r"no fine-tune version|is not a version"):
                runs.get_run(session, alias, missing)
        assert isinstance(runs.list_runs(session, alias)[0], FinetuneRun)
