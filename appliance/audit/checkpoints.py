"""Signed checkpoints: "the audit chain's hash at position N is H", signed with Ed25519.

The signing key is derived from the master key, so only the appliance can sign; the public
key (``appliance audit public-key``) lets anyone check an exported checkpoint off the
appliance. A chain rewritten from the start, however consistent, cannot match a checkpoint
exported before the rewrite.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from appliance.audit import chain
from appliance.db import Database
from appliance.models import AuditCheckpoint, utcnow
from appliance.vault.master_key import derive_key

PURPOSE = "audit-checkpoint-ed25519"


@dataclass(frozen=True)
class Checkpoint:
    chain_pos: int
    chain_hash: str
    created_at: datetime
    key_id: str
    signature: str

    def statement(self) -> bytes:
        return statement(self.chain_pos, self.chain_hash, self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_pos": self.chain_pos,
            "chain_hash": self.chain_hash,
            "created_at": self.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            int(data["chain_pos"]),
            str(data["chain_hash"]),
            datetime.fromisoformat(data["created_at"]),
            str(data["key_id"]),
            str(data["signature"]),
        )


def statement(pos: int, chain_hash: str, created_at: datetime) -> bytes:
    when = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return f"appliance-audit-checkpoint v1|{pos}|{chain_hash}|{when}".encode()


class Signer:
    def __init__(self, master_key: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(derive_key(master_key, PURPOSE))
        self.public = self._key.public_key()
        self.key_id = key_id(self.public)

    def sign(self, pos: int, chain_hash: str, created_at: datetime) -> Checkpoint:
        signature = self._key.sign(statement(pos, chain_hash, created_at))
        return Checkpoint(
            pos, chain_hash, created_at, self.key_id, base64.b64encode(signature).decode()
        )

    def public_pem(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def signature_ok(public: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    try:
        public.verify(base64.b64decode(checkpoint.signature), checkpoint.statement())
    except (InvalidSignature, ValueError):
        return False
    return True


def write_checkpoint(db: Database, signer: Signer) -> Checkpoint | None:
    """Sign the chain's head if it moved since the last checkpoint; the new checkpoint."""
    pos, chain_hash = chain.head(db)
    if pos == 0:
        return None
    with db.session() as session:
        last = session.scalar(select(AuditCheckpoint.chain_pos).order_by(
            AuditCheckpoint.chain_pos.desc()).limit(1))  # fmt: skip
        if last is not None and last >= pos:
            return None
        checkpoint = signer.sign(pos, chain_hash, utcnow())
        session.add(AuditCheckpoint(**checkpoint.to_json() | {"created_at": checkpoint.created_at}))
    return checkpoint


def stored(db: Database) -> list[Checkpoint]:
    with db.session() as session:
        rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.chain_pos))
        return [
            Checkpoint(r.chain_pos, r.chain_hash, r.created_at, r.key_id, r.signature) for r in rows
        ]


def export_lines(checkpoints: Iterable[Checkpoint]) -> Iterator[str]:
    for checkpoint in checkpoints:
        yield json.dumps(checkpoint.to_json(), sort_keys=True) + "\n"
