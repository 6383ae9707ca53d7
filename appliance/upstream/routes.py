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

    def audit_fields(self) -> dict[str, str]:
        """What the audit event records about the routing of this request."""
        fields = {
            "base_model": self.base_model,
            "alias": self.alias,
            "adapter": self.adapter,
            "version": self.version,
        }
        return {key: value for key, value in fields.items() if value}
