"""Conversation pseudonyms: sealed at rest, owned, expiring, safe under concurrent requests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from appliance.errors import Conflict, InvalidRequest
from appliance.models import PrivacyConversation, utcnow
from appliance.privacy.conversations import ConversationStore
from appliance.privacy.transform import Pseudonyms
from appliance.services import Services
from tests.conftest import unique

PHONES = [f"1381234{n:04d}" for n in range(12)]


def placeholder_of(value: str) -> Callable[[Pseudonyms], str]:
    return lambda pseudonyms: pseudonyms.placeholder("CN_PHONE", value)


@pytest.fixture(params=["pg_services", "sqlite_services"])
def store(request: pytest.FixtureRequest) -> ConversationStore:
    services: Services = request.getfixturevalue(request.param)
    return services.conversations()


def test_a_conversation_keeps_its_placeholders_sealed(store: ConversationStore) -> None:
    conversation = unique("conv")
    first, _ = store.run("key:1", conversation, placeholder_of(PHONES[0]))
    second, pseudonyms = store.run("key:1", conversation, placeholder_of(PHONES[1]))
    again, _ = store.run("key:1", conversation, placeholder_of(PHONES[0]))
    assert (first, second, again) == ("[CN_PHONE_1]", "[CN_PHONE_2]", "[CN_PHONE_1]")
    assert pseudonyms.restore("[CN_PHONE_1] [CN_PHONE_2]") == f"{PHONES[0]} {PHONES[1]}"
    # Another owner with the same id has a conversation of its own.
    other, _ = store.run("key:2", conversation, placeholder_of(PHONES[1]))
    assert other == "[CN_PHONE_1]"
    with store._db.session() as session:
        sealed = session.scalars(
            select(PrivacyConversation.sealed).where(
                PrivacyConversation.conversation == conversation
            )
        ).all()
    assert len(sealed) == 2 and not any(PHONES[0].encode() in s for s in sealed)


def test_a_tampered_or_moved_row_does_not_open(store: ConversationStore) -> None:
    conversation, moved = unique("conv"), unique("conv")
    store.run("key:1", conversation, placeholder_of(PHONES[0]))
    store.run("key:1", moved, placeholder_of(PHONES[0]))
    with store._db.session() as session:
        row = session.scalars(
            select(PrivacyConversation).where(PrivacyConversation.conversation == conversation)
        ).one()
        session.execute(
            update(PrivacyConversation)
            .where(PrivacyConversation.conversation == moved)
            .values(sealed=row.sealed)  # another conversation's sealed state
        )
        row.sealed = row.sealed[:-1] + bytes([row.sealed[-1] ^ 1])
    for name in (conversation, moved):
        with pytest.raises(Conflict, match="integrity check") as refused:
            store.run("key:1", name, placeholder_of(PHONES[1]))
        assert refused.value.code == "conversation_unreadable"


def test_ids_are_checked_and_expired_conversations_start_afresh(
    store: ConversationStore,
) -> None:
    with pytest.raises(InvalidRequest, match="X-Conversation-Id must be"):
        store.run("key:1", "no spaces", placeholder_of(PHONES[0]))
    conversation = unique("conv")
    store.run("key:1", conversation, placeholder_of(PHONES[0]))
    with store._db.session() as session:
        session.execute(
            update(PrivacyConversation)
            .where(PrivacyConversation.conversation == conversation)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    fresh, pseudonyms = store.run("key:1", conversation, placeholder_of(PHONES[1]))
    assert fresh == "[CN_PHONE_1]" and pseudonyms.restore("[CN_PHONE_1]") == PHONES[1]
    with store._db.session() as session:
        session.execute(
            update(PrivacyConversation)
            .where(PrivacyConversation.conversation == conversation)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert store.purge_expired() >= 1
    with store._db.session() as session:
        assert (
            session.scalars(
                select(PrivacyConversation).where(PrivacyConversation.conversation == conversation)
            ).first()
            is None
        )


def test_conversations_can_be_turned_off(pg_services: Services) -> None:
    store = ConversationStore(pg_services.db, b"k" * 32, ttl_s=0)
    with pytest.raises(InvalidRequest, match="turned off") as refused:
        store.run("key:1", "c1", placeholder_of(PHONES[0]))
    assert refused.value.code == "conversations_disabled"


def test_concurrent_requests_never_share_a_placeholder(pg_services: Services) -> None:
    store = pg_services.conversations()
    conversation = unique("conv")
    given: dict[str, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(PHONES))

    def request(phone: str) -> None:
        try:
            start.wait()
            given[phone], _ = store.run("key:9", conversation, placeholder_of(phone))
        except BaseException as exc:  # a Conflict after all retries is a failure here
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(p,)) for p in PHONES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(given.values())) == len(PHONES)
    final: Pseudonyms = store.run("key:9", conversation, lambda p: p)[0]
    assert {final.restore(token): token for token in given.values()} == {
        phone: given[phone] for phone in PHONES
    }
