"""Where a public model name is served: what the registry resolves and the client sends to."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Route:
    """A snapshot of where a public model name is served, taken from the registry per request.

    ``model`` is the name the client asked for (a model or an alias); ``served_name`` is
    what the upstream is sent as ``model`` (the LoRA adapter's name for an adapter).
    """

    model: str
    served_name: str
    urls: tuple[str, ...]
    unhealthy: frozenset[str] = field(default=frozenset())  # down at the last stored check
    base_model: str | None = None
    alias: str | None = None
    adapter: str | None = None
    version: str | None = None
    # (url, sealed key) of the upstreams that have a key of their own; the others get the
    # engine key (appliance.upstream.credentials).
    credentials: tuple[tuple[str, str], ...] = ()

    def credential(self, url: str) -> str | None:
        """The sealed key of upstream ``url``, None when it is sent the engine key."""
        for known, sealed in self.credentials:
            if known == url:
                return sealed
        return None

    def audit_fields(self) -> dict[str, str]:
        """What the audit event records about the routing of this request."""
        fields = {
            "base_model": self.base_model,
            "alias": self.alias,
            "adapter": self.adapter,
            "version": self.version,
        }
        return {key: value for key, value in fields.items() if value}
