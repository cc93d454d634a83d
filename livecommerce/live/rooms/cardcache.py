"""The cards pins show, read from the catalog once per ``ttl_s``, not three SQL reads per pin.

A moderator pinning the same few products over and over (a show's rhythm, or a burst of pins)
reads each card once. An edit of the product on any process (``ProductChanged``, through the
event bus) forgets its cards at once; a read that an edit overtook is returned but not kept.
"""

from __future__ import annotations

import time

from livecommerce.events.catalog import ProductChanged
from livecommerce.live.rooms.rooms import ReadCard, ShownProduct

CARD_TTL_S = 5.0  # as the purchase path's SKU facts
MAX_CARDS = 4096  # past this, the cache starts afresh


class CardCache:
    """A ``ReadCard`` that keeps what ``read`` returned (a missing product is not kept)."""

    def __init__(self, read: ReadCard, ttl_s: float = CARD_TTL_S) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._cards: dict[tuple[int, int | None], tuple[float, ShownProduct | None]] = {}
        self._edits: dict[int, int] = {}  # product id -> edits heard, while its cards are kept
        self.reads = 0  # reads that went to the catalog

    async def __call__(self, product_id: int, sku_id: int | None) -> ShownProduct | None:
        key = (product_id, sku_id)
        kept = self._cards.get(key)
        now = time.monotonic()
        if kept is not None and kept[0] > now:
            return kept[1]
        edits = self._edits.get(product_id, 0)
        self.reads += 1
        card = await self._read(product_id, sku_id)
        if self._edits.get(product_id, 0) == edits:
            if len(self._cards) >= MAX_CARDS:
                self._cards.clear()
                self._edits.clear()
            self._cards[key] = (now + self._ttl_s, card)
        return card

    async def product_changed(self, event: ProductChanged) -> None:
        for key in [key for key in self._cards if key[0] == event.product_id]:
            del self._cards[key]
        self._edits[event.product_id] = self._edits.get(event.product_id, 0) + 1
