"""What the upstreams say about the models they serve, for the gateway's ``/v1/models``.

vLLM's ``GET /v1/models`` gives each model its ``max_model_len`` (the context length),
``root`` (what it was loaded from) and ``parent`` (null for a base model, the base's name
for a LoRA adapter); the built-in engine gives adapters their ``root`` and ``parent``. The
gateway lists those fields as the upstream gives them, asking each model's replicas at
most once per ``ttl_s`` (an upstream that does not answer has its models listed without
them, and is asked again after ``ttl_s``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from appliance.errors import ApplianceError
from appliance.ttlcache import TtlCache
from appliance.upstream.routes import Route

log = logging.getLogger(__name__)

CARD_FIELDS = ("max_model_len", "root", "parent")
Cards = dict[str, dict[str, Any]]  # model id upstream -> its CARD_FIELDS that were given


class ModelCards:
    """The cards of the models each route's upstreams serve, cached per replica set."""

    def __init__(
        self,
        fetch: Callable[[Route], Any],
        *,
        ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch  # the upstream's GET /v1/models answer
        self._cache: TtlCache[tuple[str, ...], Cards] = TtlCache(ttl_s, clock=clock)

    def of(self, route: Route) -> Cards:
        """The cards by model id of ``route``'s upstream; {} when it cannot say."""
        return self._cache.get(tuple(sorted(route.urls)), lambda: self._load(route))

    def _load(self, route: Route) -> Cards:
        try:
            listing = self._fetch(route)
        except ApplianceError as exc:
            log.info("the upstream of %r did not list its models: %s", route.model, exc.message)
            return {}
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            return {}
        return {
            card["id"]: {key: card[key] for key in CARD_FIELDS if key in card}
            for card in data
            if isinstance(card, dict) and isinstance(card.get("id"), str)
        }


def listed_fields(cards: Cards, served_name: str, adapter: str | None, base: str) -> dict[str, Any]:
    """The upstream's fields of one model: the base model's own card, or an adapter's card
    with ``parent`` the base model's public name ``base`` and, when the adapter's card has
    none, the base's ``max_model_len`` (an adapter has its base's context)."""
    base_card = cards.get(served_name, {})
    if adapter is None:
        return dict(base_card)
    card = cards.get(adapter)
    if card is None:
        return {"parent": base}
    fields = {key: card[key] for key in ("max_model_len", "root") if card.get(key) is not None}
    if "max_model_len" not in fields and base_card.get("max_model_len") is not None:
        fields["max_model_len"] = base_card["max_model_len"]
    fields["parent"] = base
    return fields


def agreed_fields(targets: list[dict[str, Any]]) -> dict[str, Any]:
    """An alias's fields from its targets': ``max_model_len`` the smallest (what a request
    can count on, whichever target it is drawn to), the others only where they all agree."""
    if not targets:
        return {}
    merged: dict[str, Any] = {}
    lengths = [t.get("max_model_len") for t in targets]
    known = [n for n in lengths if isinstance(n, int) and not isinstance(n, bool)]
    if len(known) == len(lengths):
        merged["max_model_len"] = min(known)
    for key in ("root", "parent"):
        if all(key in t for t in targets) and all(t[key] == targets[0][key] for t in targets):
            merged[key] = targets[0][key]
    return merged
