"""What the gateway sends each upstream in ``Authorization``.

By default the engine key (``appliance.vault.engine_key``): the built-in engines and the
deployment's vLLM servers require it. An upstream registered with a key of its own (a
remote vLLM started with another ``--api-key``: ``appliance model add ... --upstream-key-file``)
is sent that key instead, never the engine key. Its key is kept in the database sealed
under a key derived from the master key, bound to the upstream's URL, so the database
alone does not reveal it and a value copied to another upstream does not open.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.auth.sealing import seal, unseal
from appliance.vault.engine_key import BEARER, EngineKeys, check_key

if TYPE_CHECKING:
    from appliance.config import Settings

PURPOSE = "upstream-credential"  # the master-key derivation of the sealing key


def _bound_to(url: str) -> str:
    return f"{PURPOSE}:{url}"


def seal_credential(sealing_key: bytes, url: str, key: str) -> str:
    """An upstream's own key, sealed for its row (``Upstream.credential``)."""
    return seal(sealing_key, check_key(key, "the upstream's key"), _bound_to(url))


class UpstreamCredentials:
    """The ``Authorization`` value for each upstream: its own key, else the engine key.

    ``engine_keys`` is called on first use (the key file is made then if missing);
    unsealed keys are kept per sealed value.
    """

    def __init__(
        self,
        engine_keys: Callable[[], EngineKeys] | None,
        sealing_key: bytes | None = None,
    ) -> None:
        self._engine_keys = engine_keys
        self._keys: EngineKeys | None = None
        self._sealing_key = sealing_key
        self._opened: dict[tuple[str, str], str] = {}

    @classmethod
    def of(cls, settings: Settings, derived_key: Callable[[str], bytes]) -> UpstreamCredentials:
        """The engine key of ``settings``; upstream keys opened with the master key's
        derivation (``Services.derived_key``)."""
        return cls(functools.partial(EngineKeys.from_settings, settings), derived_key(PURPOSE))

    @property
    def engine_keys(self) -> EngineKeys | None:
        if self._keys is None and self._engine_keys is not None:
            self._keys = self._engine_keys()
        return self._keys

    def ready(self) -> UpstreamCredentials:
        """Read the engine key now (made if missing): a key file others can read stops the
        process at start, not one of its requests."""
        keys = self.engine_keys
        if keys is not None:
            keys.current()
        return self

    def authorization(self, url: str, sealed: str | None) -> str | None:
        """What to send ``url``, whose row holds ``sealed`` (None: the engine key)."""
        if sealed:
            return BEARER + self._open(url, sealed)
        keys = self.engine_keys
        return keys.authorization() if keys is not None else None

    def fallback(self, url: str, sealed: str | None) -> str | None:
        """What to try once more after a 401: the replaced engine key while it is still
        accepted (a server not yet restarted with the new one), else None."""
        keys = self.engine_keys
        if sealed or keys is None:
            return None
        previous = keys.previous()
        return BEARER + previous if previous is not None else None

    def headers(self, url: str, sealed: str | None) -> dict[str, str]:
        value = self.authorization(url, sealed)
        return {"Authorization": value} if value is not None else {}

    def _open(self, url: str, sealed: str) -> str:
        opened = self._opened.get((url, sealed))
        if opened is None:
            if self._sealing_key is None:
                raise RuntimeError("no sealing key: upstream keys cannot be opened here")
            opened = self._opened[(url, sealed)] = unseal(self._sealing_key, sealed, _bound_to(url))
        return opened


def no_credentials() -> UpstreamCredentials:
    """Send nothing (tests of the client against servers that require nothing)."""
    return UpstreamCredentials(None)
