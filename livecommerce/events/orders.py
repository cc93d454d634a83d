"""What happens to orders that the live rooms (and later caches) act on."""

from __future__ import annotations

import dataclasses
from typing import Any

from livecommerce.events.event import Event


@dataclasses.dataclass(frozen=True)
class Purchased(Event):
    """Units were just held and the ``reserved`` order written (before any payment)."""

    name = "orders.purchased"

    order_id: int
    buyer_id: int
    sku_id: int
    stream_id: int | None
    qty: int


@dataclasses.dataclass(frozen=True)
class OrderChanged(Event):
    """An order moved (paid, failed, expired, cancelled, refunded, or its payment progressed).

    ``view`` is the order as its buyer sees it (the ``order`` object of ``GET
    /api/orders/{id}``), the body of the buyer's ``order:update``; it is not to be changed.
    """

    name = "orders.changed"

    order_id: int
    buyer_id: int
    seller_id: int
    sku_id: int
    stream_id: int | None
    status: str
    qty: int
    view: dict[str, Any]
