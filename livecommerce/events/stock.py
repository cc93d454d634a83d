"""What happens to a SKU's stock that every process's buy path acts on at once.

These two are published by the inventory's Lua scripts themselves (``PUBLISH`` on the events
channel, inside the script that changed the counters), so every process hears them in the order
Redis ran the scripts: a notice that units came back can never overtake the notice that they
ran out.
"""

from __future__ import annotations

import dataclasses

from livecommerce.events.event import Event


@dataclasses.dataclass(frozen=True)
class StockOut(Event):
    """A SKU has no units left (``available`` 0), or its flash sale has none (``sale_left`` 0).

    The sale fields describe the SKU's flash sale as the script saw it (``sale_id`` empty:
    none); times are server epoch ms; ``sale_stream`` is the stream the sale's price is for
    (empty: any purchase).
    """

    name = "stock.out"

    sku_id: int
    available: int
    sale_id: str = ""
    sale_stream: str = ""
    sale_starts: int = 0
    sale_ends: int = 0
    sale_limit: int = 0
    sale_left: int = 0


@dataclasses.dataclass(frozen=True)
class StockBack(Event):
    """Units of a SKU may be buyable again (a hold released, a restock, a sale started or
    ended, the counters loaded afresh): whatever was known of its running out is void."""

    name = "stock.back"

    sku_id: int


@dataclasses.dataclass(frozen=True)
class OnHandChanged(Event):
    """The seller changed a SKU's stock on hand (an adjustment, a count, an edit of the
    product): the live rooms that list its product show the units now left."""

    name = "stock.on_hand_changed"

    sku_id: int


@dataclasses.dataclass(frozen=True)
class SkuFeatured(Event):
    """A SKU was pinned or put on flash sale in a stream: buyers are about to arrive, so every
    process warms what a buy of it reads (its counters, its facts, the stream's lineup)."""

    name = "stock.featured"

    sku_id: int
    stream_id: int
