"""A key provider whose KEK never leaves HashiCorp Vault: its transit secrets engine.

A SKETCH of the provider interface (``keys.KeyProvider``) against a remote key service:
it is not selectable in the settings yet and has not been run against a live Vault. The
same shape fits a PKCS#11 HSM (C_WrapKey/C_UnwrapKey with CKM_AES_GCM, C_Sign with
CKM_SHA256_HMAC, key versions as separate key objects).

Mapping: a key id is ``transit:<key>:v<version>``; wrap = ``POST transit/encrypt/<key>``
with the data key as plaintext, our associated data as ``associated_data`` (AES-GCM key
types) and ``key_version``; unwrap = ``transit/decrypt``; the manifest MAC =
``transit/hmac/<key>/sha2-256`` at that ``key_version`` (deterministic, so it can be
recomputed and compared); rotation = ``transit/keys/<key>/rotate``; retiring old
versions = raising ``min_decryption_version``. Transit has no SM4: ``sm4-gcm`` models
need a local provider or an HSM that implements SM4.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from appliance.errors import VaultError
from appliance.vault.format import Suite
from appliance.vault.keys import Step


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class TransitKeyProvider:
    name = "transit"

    def __init__(self, url: str, token: str, key: str, mount: str = "transit") -> None:
        self._client = httpx.Client(
            base_url=f"{url.rstrip('/')}/v1/{mount}", headers={"X-Vault-Token": token}
        )
        self.key = key

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise VaultError(f"HashiCorp Vault transit is unreachable: {exc}") from None
        if response.status_code >= 400:
            raise VaultError(f"HashiCorp Vault transit refused {path}: {response.status_code}")
        return response.json().get("data", {}) if response.content else {}

    def _version(self, key_id: str) -> int:
        prefix = f"transit:{self.key}:v"
        if not key_id.startswith(prefix):
            raise VaultError(f"{key_id} is not a key of transit key {self.key}")
        return int(key_id.removeprefix(prefix))

    @staticmethod
    def _aes_only(suite: Suite) -> None:
        if suite.name != "aes-256-gcm":
            raise VaultError(f"HashiCorp Vault transit cannot wrap {suite.name} data keys")

    def _key_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._call("GET", f"/keys/{self.key}")
        return info

    def current_key_id(self) -> str | None:
        return f"transit:{self.key}:v{self._key_info()['latest_version']}"

    def key_ids(self) -> list[str]:
        info = self._key_info()
        versions = range(int(info["min_decryption_version"]), int(info["latest_version"]) + 1)
        return [f"transit:{self.key}:v{v}" for v in versions]

    def wrap(self, key_id: str, suite: Suite, data_key: bytes, aad: bytes) -> bytes:
        self._aes_only(suite)
        body = {
            "plaintext": _b64(data_key),
            "associated_data": _b64(aad),
            "key_version": self._version(key_id),
        }
        return str(self._call("POST", f"/encrypt/{self.key}", body)["ciphertext"]).encode()

    def unwrap(self, key_id: str, suite: Suite, wrapped: bytes, aad: bytes) -> bytes:
        self._aes_only(suite)
        body = {"ciphertext": wrapped.decode(), "associated_data": _b64(aad)}
        return base64.b64decode(self._call("POST", f"/decrypt/{self.key}", body)["plaintext"])

    def mac(self, key_id: str, suite: Suite, data: bytes) -> str:
        self._aes_only(suite)
        body = {"input": _b64(data), "key_version": self._version(key_id)}
        return (
            "transit-hmac-sha256:" + self._call("POST", f"/hmac/{self.key}/sha2-256", body)["hmac"]
        )

    def create_key(self, on_step: Step | None = None) -> str:
        self._call("POST", f"/keys/{self.key}/rotate")
        key_id = self.current_key_id()
        assert key_id is not None
        if on_step is not None:
            on_step("key-current", key_id)
        return key_id

    def retire_keys(self, keep: str, on_step: Step | None = None) -> list[str]:
        retired = [k for k in self.key_ids() if self._version(k) < self._version(keep)]
        self._call(
            "POST", f"/keys/{self.key}/config", {"min_decryption_version": self._version(keep)}
        )
        return retired
