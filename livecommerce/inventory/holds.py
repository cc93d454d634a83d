"""What the reservations hand out and read back from Redis: holds, a SKU's stock level, a
flash sale's window, and the two refusals a reserve can meet before it takes anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def text(value: Any) -> str:
    """A Redis reply's string (bytes unless the client decodes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Hold:
    """Units set aside for one buyer until ``deadline_ms`` (server epoch ms)."""

    hold_id: str
    sku_id: int
    qty: int
    buyer_id: int
    unit_price: int
    sale_id: str | None
    available_after: int
    replayed: bool = False

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError("a hold is for at least one unit")


@dataclass(frozen=True)
class LiveHold:
    """A hold as stored (for the reaper and for rebuilding)."""

    hold_id: str
    deadline_ms: int
    qty: int
    buyer_id: int
    sale_id: str | None
    unit_price: int

    def encode(self) -> str:
        return f"{self.qty}|{self.buyer_id}|{self.sale_id or ''}|{self.unit_price}"

    @classmethod
    def decode(cls, hold_id: str, deadline_ms: int, data: str) -> LiveHold:
        qty, buyer, sale, price = data.split("|")
        return cls(hold_id, deadline_ms, int(qty), int(buyer), sale or None, int(price))


@dataclass(frozen=True)
class StockLevel:
    """Counters of one SKU read in one step.

    ``sold`` counts units committed since the counters were loaded, so
    ``available + held + sold`` stays equal to what was listed at load plus adjustments.
    """

    available: int
    held: int
    sold: int

    @classmethod
    def read(cls, avail: Any, held: Any, sold: Any) -> StockLevel | None:
        """The level from the stock hash's fields as Redis answers them; None if not loaded."""
        return None if avail is None else cls(int(avail), int(held or 0), int(sold or 0))


@dataclass(frozen=True)
class SaleWindow:
    """A flash sale on one SKU as the reserve script sees it."""

    sale_id: str
    price: int
    cap: int
    sold: int
    starts_ms: int
    ends_ms: int
    per_buyer_limit: int
    stream_id: int | None = None  # its price is for purchases in this stream (None: any)

    def left_for(self, stream_id: int, now_ms: int) -> int | None:
        """Units a purchase in ``stream_id`` may still take from this sale at ``now_ms`` (held
        and paid units count as taken, as in the reserve script); None unless it runs there."""
        running = self.starts_ms <= now_ms < self.ends_ms
        if not running or self.stream_id not in (None, stream_id):
            return None
        return max(self.cap - self.sold, 0)

    @classmethod
    def read(cls, found: dict[Any, Any]) -> SaleWindow | None:
        """The window from the sale hash as Redis answers it (HGETALL); None if no sale."""
        if not found:
            return None
        raw = {text(k): text(v) for k, v in found.items()}
        return cls(
            sale_id=raw["id"],
            price=int(raw["price"]),
            cap=int(raw["cap"]),
            sold=int(raw["sold"]),
            starts_ms=int(raw["starts"]),
            ends_ms=int(raw["ends"]),
            per_buyer_limit=int(raw["limit"]),
            stream_id=int(raw["stream"]) if raw.get("stream") else None,
        )


class NotLoaded(Exception):
    """The SKU's counters are not in Redis yet (new SKU, or Redis came up empty)."""


class PriceChanged(Exception):
    """A unit costs more now than the buyer agreed to pay (``reserve``'s ``most_per_unit``):
    nothing was taken."""

    def __init__(self, unit_price: int) -> None:
        super().__init__(f"the unit price is now {unit_price}")
        self.unit_price = unit_price
