"""Pseudonyms a conversation keeps across requests, sealed at rest.

By default a request's pseudonyms live in its memory only. A caller that names a
conversation (the ``X-Conversation-Id`` header) gets the same placeholder for the same
value in every request of it, and placeholders from earlier answers restored later: a
caller whose policy does not restore can send ``[CN_PHONE_1]`` back and the model still
sees one consistent name. The mapping is sealed with AES-256-GCM under a key derived from
the master key; the associated data binds the owner (the API key or user) and the
conversation id, so a row moved to another owner or conversation does not open. A row
lives for the policy's ``conversation_ttl`` after its last use.

Two requests of one conversation at once must not hand out the same placeholder for two
values: the row is locked while a request desensitizes (PostgreSQL), and a save only
succeeds on the version it loaded (compare and swap, for SQLite); a loser loads again and
desensitizes again, from its untouched input.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from appliance.db import Database
from appliance.errors import Conflict, InvalidRequest
from appliance.models import PrivacyConversation, utcnow
from appliance.privacy.transform import Pseudonyms

CONVERSATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ATTEMPTS = 10
T = TypeVar("T")


class ConversationStore:
    def __init__(self, db: Database, key: bytes, ttl_s: int) -> None:
        self._db = db
        self._aead = AESGCM(key)
        self._ttl = timedelta(seconds=ttl_s)

    def run(
        self, owner: str, conversation: str, work: Callable[[Pseudonyms], T]
    ) -> tuple[T, Pseudonyms]:
        """``work`` with the conversation's pseudonyms; what it added is saved (or it runs
        again on a fresh load if another request saved first)."""
        if self._ttl.total_seconds() <= 0:
            raise InvalidRequest(
                "Conversations are turned off by the desensitization policy "
                "(conversation_ttl: 0); send the request without X-Conversation-Id.",
                code="conversations_disabled",
            )
        if not CONVERSATION_ID.fullmatch(conversation):
            raise InvalidRequest(
                "X-Conversation-Id must be 1 to 128 letters, digits or . _ : -",
                param="X-Conversation-Id",
                code="invalid_conversation_id",
            )
        for attempt in range(ATTEMPTS):
            try:
                return self._run_once(owner, conversation, work)
            except (IntegrityError, _Lost):
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # noqa: S311 (jitter)
        raise Conflict(
            "Too many requests of this conversation changed it at once; try again.",
            code="conversation_busy",
        )

    def _run_once(
        self, owner: str, conversation: str, work: Callable[[Pseudonyms], T]
    ) -> tuple[T, Pseudonyms]:
        # The row lock serialises requests of one conversation on PostgreSQL; the version
        # check keeps backends without row locks (SQLite) correct, if less patient.
        with self._db.session() as session:
            row = session.scalars(
                select(PrivacyConversation)
                .where(
                    PrivacyConversation.owner == owner,
                    PrivacyConversation.conversation == conversation,
                )
                .with_for_update()
            ).one_or_none()
            pseudonyms = Pseudonyms()
            if row is not None and row.expires_at > utcnow():  # expired: start afresh
                pseudonyms = Pseudonyms.from_state(self._open(owner, conversation, row.sealed))
            result = work(pseudonyms)
            sealed, expires = self._seal(owner, conversation, pseudonyms), utcnow() + self._ttl
            if row is None:
                session.add(
                    PrivacyConversation(
                        owner=owner,
                        conversation=conversation,
                        sealed=sealed,
                        version=1,
                        expires_at=expires,
                    )
                )
                session.flush()
            else:
                changed = session.execute(
                    update(PrivacyConversation)
                    .where(PrivacyConversation.id == row.id)
                    .where(PrivacyConversation.version == row.version)
                    .values(sealed=sealed, version=row.version + 1, expires_at=expires)
                )
                if int(getattr(changed, "rowcount", 0) or 0) != 1:
                    raise _Lost
        return result, pseudonyms

    def purge_expired(self) -> int:
        """Drop every expired conversation; returns how many."""
        with self._db.session() as session:
            gone = session.execute(
                delete(PrivacyConversation).where(PrivacyConversation.expires_at <= utcnow())
            )
            return int(getattr(gone, "rowcount", 0) or 0)

    def _seal(self, owner: str, conversation: str, pseudonyms: Pseudonyms) -> bytes:
        nonce = os.urandom(12)
        plain = json.dumps(pseudonyms.state(), ensure_ascii=False).encode()
        return nonce + self._aead.encrypt(nonce, plain, _bound(owner, conversation))

    def _open(self, owner: str, conversation: str, sealed: bytes) -> dict:
        try:
            plain = self._aead.decrypt(sealed[:12], sealed[12:], _bound(owner, conversation))
        except InvalidTag:
            raise Conflict(
                "This conversation's stored pseudonyms fail their integrity check and were "
                "not used; continue under a new X-Conversation-Id.",
                code="conversation_unreadable",
            ) from None
        return json.loads(plain)


class _Lost(Exception):
    """Another request saved the conversation first."""


def owner_of(key_id: int | None, user_id: int | None, name: str) -> str:
    """Whose conversation it is: the API key, else the user, else the IdP's subject."""
    if key_id is not None:
        return f"key:{key_id}"
    return f"user:{user_id}" if user_id is not None else f"idp:{name}"[:160]


def _bound(owner: str, conversation: str) -> bytes:
    return f"appliance-conversation-v1\0{owner}\0{conversation}".encode()
