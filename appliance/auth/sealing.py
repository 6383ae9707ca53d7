"""Small secrets kept in the database sealed with AES-256-GCM (TOTP seeds, the SSO client secret).

The key is derived from the master key for one purpose, so the database alone never
reveals them; the associated data binds a sealed value to where it belongs (a user id,
a setting), so a value copied to another row does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import VaultError

NONCE_BYTES = 12


def seal(key: bytes, plaintext: str, bound_to: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), bound_to.encode("utf-8"))
    return base64.b64encode(nonce + sealed).decode("ascii")


def unseal(key: bytes, sealed: str, bound_to: str) -> str:
    """The plaintext, or SetupError if the value was not sealed here for ``bound_to``."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode())
    except (ValueError, InvalidTag):
        raise VaultError("a sealed secret does not open with this appliance's master key") from None
    return plain.decode("utf-8")
