"""The hash chain and its checkpoints: intact when untouched, every tampering named."""

from __future__ import annotations

import secrets
import threading

import pytest
from sqlalchemy import delete, insert, select, update

from appliance.audit import chain
from appliance.audit.checkpoints import Checkpoint, Signer, write_checkpoint
from appliance.audit.events import AuditAction, event_row
from appliance.audit.verify import Report, verify
from appliance.models import AuditChainHead, AuditCheckpoint
from appliance.services import Services
from tests import timing

EVENTS = chain.EVENTS


def add_events(services: Services, count: int, tag: str = "t") -> None:
    rows = [
        event_row(AuditAction.KEY_CREATE, actor=f"{tag}-{i}", target=f"k{i}", detail=i)
        for i in range(count)
    ]
    with services.db.session() as session:
        session.execute(insert(EVENTS), rows)


def check(services: Services, **kwargs: object) -> Report:
    return verify(services.db, Signer(services.master_key).public, **kwargs)  # type: ignore[arg-type]


def event_at(services: Services, pos: int) -> str:
    with services.db.session() as session:
        return str(session.scalar(select(EVENTS.c.event_id).where(EVENTS.c.chain_pos == pos)))


@pytest.fixture()
def sealed(fresh: Services) -> Services:
    add_events(fresh, 20)
    chain.seal(fresh.db)
    write_checkpoint(fresh.db, Signer(fresh.master_key))
    return fresh


def test_an_untouched_chain_verifies(sealed: Services) -> None:
    report = check(sealed)
    assert report.ok and report.events == 21 and report.checkpoints == 1  # + system.init
    add_events(sealed, 3)
    assert check(sealed).unsealed == 3
    assert chain.seal(sealed.db).events == 3
    report = check(sealed)
    assert report.ok and report.events == 24 and report.unsealed == 0


def test_an_edited_event_is_named(sealed: Services) -> None:
    with sealed.db.session() as session:
        session.execute(update(EVENTS).where(EVENTS.c.chain_pos == 7).values(actor="mallory"))
    problem = check(sealed).problem
    assert problem is not None and (problem.kind, problem.pos) == ("edited", 7)
    assert problem.where == event_at(sealed, 7)


def test_a_deleted_event_is_named(sealed: Services) -> None:
    with sealed.db.session() as session:
        session.execute(delete(EVENTS).where(EVENTS.c.chain_pos == 5))
    problem = check(sealed).problem
    assert problem is not None and (problem.kind, problem.pos) == ("deleted", 5)
    assert problem.where == event_at(sealed, 6)


def test_deleting_the_last_events_is_seen(sealed: Services) -> None:
    with sealed.db.session() as session:
        session.execute(delete(EVENTS).where(EVENTS.c.chain_pos >= 20))
    problem = check(sealed).problem
    assert problem is not None and (problem.kind, problem.pos) == ("deleted", 20)
    with sealed.db.session() as session:  # the head moved back too: the checkpoint pins 21
        last = session.scalar(select(EVENTS.c.chain_hash).where(EVENTS.c.chain_pos == 19))
        session.execute(update(AuditChainHead).values(last_pos=19, last_hash=last))
    problem = check(sealed).problem
    assert problem is not None and problem.kind == "checkpoint"
    assert "past the end of the chain" in problem.message


def test_an_inserted_event_is_named(sealed: Services) -> None:
    with sealed.db.session() as session:
        for pos in range(21, 9, -1):  # make room at position 10
            session.execute(
                update(EVENTS).where(EVENTS.c.chain_pos == pos).values(chain_pos=pos + 1)
            )
        forged = event_row(AuditAction.KEY_REVOKE, actor="mallory")
        session.execute(
            insert(EVENTS), [{**forged, "chain_pos": 10, "chain_hash": secrets.token_hex(32)}]
        )
    problem = check(sealed).problem
    assert problem is not None and (problem.kind, problem.pos) == ("inserted", 10)
    assert problem.where == forged["event_id"]


def test_reordered_events_are_named(sealed: Services) -> None:
    first, second = event_at(sealed, 8), event_at(sealed, 9)
    with sealed.db.session() as session:
        for event_id, pos in ((first, -1), (second, 8), (first, 9)):
            session.execute(
                update(EVENTS).where(EVENTS.c.event_id == event_id).values(chain_pos=pos)
            )
    problem = check(sealed).problem
    assert problem is not None and (problem.kind, problem.pos) == ("reordered", 8)
    assert problem.where == second and first in problem.message


def test_a_chain_rewritten_from_the_start_fails_its_checkpoint(sealed: Services) -> None:
    with sealed.db.session() as session:
        session.execute(update(EVENTS).where(EVENTS.c.chain_pos == 3).values(actor="mallory"))
        rows = session.execute(chain.chain_rows().order_by(EVENTS.c.chain_pos)).all()
        previous = chain.GENESIS
        for row in rows:  # the attacker recomputes every hash and the head
            previous = chain.link(previous, row.chain_pos, row)
            session.execute(
                update(EVENTS).where(EVENTS.c.seq == row.seq).values(chain_hash=previous)
            )
        session.execute(update(AuditChainHead).values(last_hash=previous))
    problem = check(sealed).problem
    assert problem is not None and problem.kind == "checkpoint"
    assert "does not match the chain" in problem.message


def test_a_forged_checkpoint_is_refused(sealed: Services) -> None:
    with sealed.db.session() as session:
        session.execute(update(AuditCheckpoint).values(chain_hash="0" * 64))
    problem = check(sealed).problem
    assert problem is not None and "invalid signature" in problem.message


def test_an_exported_checkpoint_catches_what_the_database_no_longer_shows(
    sealed: Services,
) -> None:
    exported = Signer(sealed.master_key).sign(21, chain.head(sealed.db)[1], chain.utcnow())
    with sealed.db.session() as session:  # the attacker drops the tail, head and checkpoints
        session.execute(delete(EVENTS).where(EVENTS.c.chain_pos >= 15))
        session.execute(delete(AuditCheckpoint))
        last = session.scalar(select(EVENTS.c.chain_hash).where(EVENTS.c.chain_pos == 14))
        session.execute(update(AuditChainHead).values(last_pos=14, last_hash=last))
    assert check(sealed).ok
    problem = check(sealed, checkpoints=[exported]).problem
    assert problem is not None and problem.kind == "checkpoint"
    assert isinstance(exported, Checkpoint)


def test_sealers_on_several_workers_keep_one_chain(fresh: Services) -> None:
    add_events(fresh, 3000)
    errors: list[BaseException] = []

    def sealer() -> None:
        try:
            for _ in range(5):
                chain.seal(fresh.db, limit=250)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sealer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    chain.seal(fresh.db)
    report = check(fresh)
    assert report.ok and report.events == 3001


def test_writers_do_not_wait_for_the_sealer(fresh: Services) -> None:
    chain.seal(fresh.db)
    if fresh.db.url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time by design")
    with fresh.db.session() as holding:
        holding.scalars(select(AuditChainHead).with_for_update()).one()
        done = threading.Event()
        threading.Thread(target=lambda: (add_events(fresh, 5), done.set())).start()
        assert done.wait(timing.scaled(5)), "an event insert waited for the chain's lock"
    assert chain.seal(fresh.db).events == 5


def test_python_and_postgresql_build_the_same_canonical_form(fresh: Services) -> None:
    """Verify on PostgreSQL hashes inside the database: its form must be Python's, byte
    for byte, for awkward values too (quotes, control characters, non-ASCII, durations)."""
    if not fresh.db.url.startswith("postgresql"):
        pytest.skip("the SQL form is PostgreSQL's")
    from sqlalchemy import text

    awkward = ['a"b\\c', "line\nnext\ttab\r\b\f", "\x01\x1f\x7f", "中文 😀 \u2028", ""]
    rows = [
        event_row(AuditAction.KEY_CREATE, actor=w, target=w[:3], duration_ms=d, note=w,
                  nested={"x": [1, 2.5, None, w]}, status_code=200 if d else None)
        for w in awkward
        for d in (None, 2.0, 1.7, 0.001, 123456.789, 3.0005)
    ]  # fmt: skip
    with fresh.db.session() as session:
        session.execute(insert(EVENTS), rows)
    chain.seal(fresh.db)
    with fresh.db.session() as session:
        python = {
            row.chain_pos: chain.canonical(row) for row in session.execute(chain.chain_rows()).all()
        }
        sql = dict(
            session.execute(
                text(f"SELECT chain_pos, {chain.canonical_sql()} FROM audit_events")  # noqa: S608
            ).all()
        )
    assert python == sql and len(python) == len(rows) + 1
    assert check(fresh).ok
