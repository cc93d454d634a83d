"""Sold out, known on every process: the crowd that taps Buy after the last unit is refused
here, before any SQL or Redis call, with the very answer the reserve script would give.

The reserve script publishes ``StockOut`` when it takes a SKU's (or its flash sale's) last unit,
and again, at most once a second, when it refuses a purchase for want of units; the scripts that
put units back (a hold released or expired, a restock, a sale started or ended, counters loaded
afresh) publish ``StockBack``. Both travel on the event bus's channel from inside the script, so
every process hears them in the order Redis ran the scripts: "back" never overtakes "out".

The board only ever refuses what the script would refuse with the same answer:

- it trusts a notice only while the subscription that carried it is live (a reconnection voids
  everything heard before) and for ``ttl_s`` (a later refusal by the script renews it);
- a buyer who holds or bought units of the SKU goes to the script, whose answer may differ for
  them (a replayed idempotency key, a per-buyer limit): the buyers of the SKU are read from SQL
  once per process (``buyers_of``, when the SKU is pinned or put on sale, or else when its first
  notice arrives; the SKU is not refused here until they are known), then followed through
  ``Purchased`` and this process's own holds;
- so does a quantity above a bound the script would name first.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.bus import EventBus
from livecommerce.events.orders import Purchased
from livecommerce.events.stock import StockBack, StockOut
from livecommerce.platform.backgroundtasks import BackgroundTasks

# The buyers with an order of a SKU (whose retries the script must answer).
BuyersOf = Callable[[int], Awaitable[set[int]]]

__all__ = ["SALE_SOLD_OUT", "SOLD_OUT", "BuyersOf", "Refusal", "SoldOutBoard"]


@dataclass(frozen=True)
class Refusal:
    """A refusal the board gives, the same for every buyer it refuses: a constant, so a
    transport may encode its answer once (``key`` names it there)."""

    key: str
    message: str

    def error(self) -> LiveCommerceError:
        return LiveCommerceError(ErrorCode.SOLD_OUT, self.message, available=0)


SOLD_OUT = Refusal("sold_out", "sold out")
SALE_SOLD_OUT = Refusal("sale_sold_out", "the flash sale has 0 left")


@dataclass(frozen=True)
class _Known:
    out: StockOut
    connection: int
    until: float  # monotonic


class SoldOutBoard:
    """This process's view of which SKUs (and flash sales) have no units left (without an
    event bus it knows none and refuses nothing)."""

    def __init__(
        self,
        events: EventBus | None,
        buyers_of: BuyersOf | None = None,
        ttl_s: float = 5.0,
        max_buyers: int = 200_000,
    ) -> None:
        """Without ``buyers_of`` every SKU starts with no known buyer (for a fresh database)."""
        self._events = events
        self._buyers_of = buyers_of
        self._reading = BackgroundTasks("buyers of sold-out SKUs")
        self._ttl = ttl_s
        self._max_buyers = max_buyers
        self._known: dict[int, _Known] = {}
        self._buyers: dict[int, set[int]] = {}  # SKU -> buyers who held units of it
        self._buyers_read: set[int] = set()  # SKUs whose buyers are being or were read
        self._buyers_ready: set[int] = set()  # ... and were
        self._buyer_count = 0
        self.refused = 0  # purchases this board refused (for tests and metrics)

    def subscribe(self) -> None:
        """Hear the notices of every process (this one's scripts included)."""
        if self._events is None:
            return
        self._events.subscribe(StockOut, self.stock_out)
        self._events.subscribe(StockBack, self.stock_back)
        self._events.subscribe(Purchased, self.purchased)

    def _connection(self) -> int | None:
        return None if self._events is None else self._events.connection

    async def stock_out(self, event: StockOut) -> None:
        connection = self._connection()
        if connection is not None:
            self._known[event.sku_id] = _Known(event, connection, time.monotonic() + self._ttl)
            if event.sku_id not in self._buyers_read and self._buyers_of is not None:
                self._reading.spawn(self._read_buyers(event.sku_id), f"buyers of {event.sku_id}")

    def prepare(self, sku_id: int) -> None:
        """Read the SKU's buyers now (a pin or a sale start: its rush is coming), so that the
        board refuses from the first notice on instead of after that read."""
        if sku_id not in self._buyers_read and self._buyers_of is not None:
            self._reading.spawn(self._read_buyers(sku_id), f"buyers of {sku_id}")

    async def _read_buyers(self, sku_id: int) -> None:
        if sku_id in self._buyers_read or self._buyers_of is None:
            return
        self._buyers_read.add(sku_id)  # one read at a time; given back if it fails
        try:
            buyers = await self._buyers_of(sku_id)
        except BaseException:
            self._buyers_read.discard(sku_id)
            raise
        for buyer_id in buyers:
            self.held(sku_id, buyer_id)
        if sku_id in self._buyers_read:  # not forgotten meanwhile (see ``held``)
            self._buyers_ready.add(sku_id)

    async def close(self) -> None:
        """Stop reading buyers; safe to call twice."""
        await self._reading.close()

    async def stock_back(self, event: StockBack) -> None:
        self._known.pop(event.sku_id, None)

    async def purchased(self, event: Purchased) -> None:
        self.held(event.sku_id, event.buyer_id)

    def held(self, sku_id: int, buyer_id: int) -> None:
        """``buyer_id`` holds (or held) units of ``sku_id``: their taps go to the script."""
        buyers = self._buyers.setdefault(sku_id, set())
        if buyer_id in buyers:
            return
        if self._buyer_count >= self._max_buyers:
            # Forgetting buyers would refuse their retries wrongly: forget the notices too.
            self._buyers.clear()
            self._known.clear()
            self._buyers_read.clear()
            self._buyers_ready.clear()
            self._buyer_count = 0
            buyers = self._buyers.setdefault(sku_id, set())
        buyers.add(buyer_id)
        self._buyer_count += 1

    def knows_buyer(self, sku_id: int, buyer_id: int) -> bool:
        """Whether ``buyer_id`` is known here to hold (or have held) units of ``sku_id``."""
        return buyer_id in self._buyers.get(sku_id, ())

    def knows(self, sku_id: int) -> bool:
        """Whether any notice of the SKU is held (a dict lookup: the cheap first test)."""
        return sku_id in self._known

    def notice(self, sku_id: int) -> StockOut | None:
        """The live notice of the SKU's (or its sale's) running out, if this process acts on
        one (it does once the SKU's buyers are known)."""
        known = self._valid(sku_id)
        return None if known is None else known.out

    def is_out(self, sku_id: int) -> bool:
        """Whether a live notice says the SKU itself has no units left."""
        notice = self.notice(sku_id)
        return notice is not None and notice.available == 0

    def check(
        self,
        *,
        sku_id: int,
        buyer_id: int,
        qty: int,
        stream_id: int | None,
        now_ms: int,
        per_sku_bound: int,
    ) -> None:
        """Raise the script's ``sold_out`` refusal if it is sure to be the answer; else return
        (the purchase goes on to the script)."""
        refusal = self.refusal(
            sku_id=sku_id,
            buyer_id=buyer_id,
            qty=qty,
            stream_id=stream_id,
            now_ms=now_ms,
            per_sku_bound=per_sku_bound,
        )
        if refusal is not None:
            raise refusal.error()

    def refusal(
        self,
        *,
        sku_id: int,
        buyer_id: int,
        qty: int,
        stream_id: int | None,
        now_ms: int,
        per_sku_bound: int,
    ) -> Refusal | None:
        """``check`` without raising: one of the constant refusals (counted in ``refused``),
        or ``None`` when the purchase goes on to the script."""
        known = self._valid(sku_id)
        if known is None:
            return None
        if buyer_id in self._buyers.get(sku_id, ()):
            return None
        out = known.out
        stream = "" if stream_id is None else str(stream_id)
        in_sale = (
            out.sale_id != ""
            and out.sale_stream in ("", stream)
            and out.sale_starts <= now_ms < out.sale_ends
        )
        if in_sale:
            if out.sale_left == 0:
                self.refused += 1
                return SALE_SOLD_OUT
            if qty > out.sale_left or qty > out.sale_limit:
                return None  # the script answers with what is left of the sale, or the limit
        if per_sku_bound > 0 and qty > per_sku_bound:
            return None  # the script names the bound first
        if out.available == 0:
            self.refused += 1
            return SOLD_OUT
        return None

    def _valid(self, sku_id: int) -> _Known | None:
        """The SKU's notice, if it is live and the SKU's buyers are known (else: the script)."""
        known = self._known.get(sku_id)
        if known is None:
            return None
        if self._buyers_of is not None and sku_id not in self._buyers_ready:
            return None
        if known.connection != self._connection() or known.until < time.monotonic():
            del self._known[sku_id]
            return None
        return known
