"""One-tap purchase: hold the stock atomically, then write the order before answering.

The invariant: never sell what is not there (the Lua hold is the only way to take stock) and
never lose a paid order (the order row exists before the buyer hears "reserved").
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.addresses import default_address
from livecommerce.checkout.lineups import StreamDirectory
from livecommerce.errors import ErrorCode, LiveCommerceError, NotFound
from livecommerce.events.catalog import ProductChanged
from livecommerce.events.stock import SkuFeatured
from livecommerce.inventory.holds import Hold, NotLoaded, PriceChanged
from livecommerce.inventory.rebuild import load_sku
from livecommerce.inventory.reservations import Reservations, UnpaidBounds
from livecommerce.inventory.soldout import Refusal, SoldOutBoard
from livecommerce.orders.orders import MAX_QTY, Order, find_order
from livecommerce.orders.orderwriter import OrderWriter
from livecommerce.orders.pricing import goods_before, price
from livecommerce.orders.shops import ShopTerms, ShopTermsCache
from livecommerce.platform.backgroundtasks import BackgroundTasks
from livecommerce.platform.db.tables import products, skus
from livecommerce.platform.factcache import FactCache
from livecommerce.platform.sharedcalls import SharedCalls

log = logging.getLogger(__name__)


ITEM_NAME_MAX = 320  # orders.item_name
NameItem = Callable[[str, dict[str, str]], str]
"""``(product title, SKU attributes)`` -> what the order calls the item."""
__all__ = ["MAX_QTY", "Purchase", "Purchases", "SharedCalls", "SkuDirectory", "SkuFacts"]


@dataclass(frozen=True)
class SkuFacts:
    """What the purchase path needs to know of a SKU besides its counters."""

    seller_id: int
    product_id: int
    currency: str
    active: bool
    ships: bool = False  # a physical good: its orders need a shipping address
    item_name: str = ""  # the product with its variant, "Everyday Hoodie (M)"


@dataclass(frozen=True)
class Purchase:
    order: Order
    replayed: bool
    available_after: int | None


class SkuDirectory:
    """A per-process cache of SKU facts, so a buy costs no extra SQL read.

    An edit of the product is heard through ``ProductChanged`` (``product_changed``), on every
    process; the TTL is only the backstop for a notice lost while a process was cut off from
    Redis (the bus delivers at most once).
    """

    def __init__(
        self, engine: AsyncEngine, ttl_s: float = 5.0, item_name: NameItem | None = None
    ) -> None:
        """``item_name`` is the catalog's way of naming a SKU ("Hoodie (M)"), handed in at
        composition (the title alone without it)."""
        self._engine = engine
        self._item_name = item_name or (lambda title, _attributes: title)
        self._facts = FactCache(self._look_up, ttl_s, "sku lookups")
        self.reads = 0  # SQL reads made (for tests and metrics)

    async def close(self) -> None:
        await self._facts.close()

    async def facts(self, sku_id: int) -> SkuFacts:
        return await self._facts.get(sku_id)

    def cached(self, sku_id: int) -> SkuFacts | None:
        """The facts if this process holds them fresh, else ``None`` (without waiting: an
        entry near its end is renewed in the background, as by ``facts``)."""
        return self._facts.fresh(sku_id)

    async def _look_up(self, sku_id: int) -> SkuFacts:
        self.reads += 1
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        products.c.owner_id,
                        products.c.active,
                        products.c.ships,
                        products.c.title,
                        skus.c.currency,
                        skus.c.product_id,
                        skus.c.attributes,
                    )
                    .join(products, products.c.id == skus.c.product_id)
                    .where(skus.c.id == sku_id)
                )
            ).one_or_none()
        if row is None:
            raise NotFound("SKU")
        return SkuFacts(
            seller_id=row.owner_id,
            product_id=row.product_id,
            currency=row.currency,
            active=row.active,
            ships=row.ships,
            # as long as the order's column allows (ten long attributes could pass it)
            item_name=self._item_name(row.title, dict(row.attributes))[:ITEM_NAME_MAX],
        )

    def forget(self, sku_id: int) -> None:
        self._facts.forget(sku_id)

    async def product_changed(self, event: ProductChanged) -> None:
        for sku_id in event.sku_ids:
            self.forget(sku_id)


class Purchases:
    """Holds the stock and writes the ``reserved`` order (the first half of ``checkout.buy``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        reservations: Reservations,
        directory: SkuDirectory,
        hold_ttl_s: int,
        streams: StreamDirectory | None = None,
        bounds: UnpaidBounds | None = None,
        sold_out: SoldOutBoard | None = None,
        terms: ShopTermsCache | None = None,
    ) -> None:
        """``sold_out``, if given, refuses the crowd after the last unit without calling Redis
        (``inventory.soldout``); ``terms``: the sellers' shipping and tax (``orders.pricing``)."""
        self._engine = engine
        self.sold_out = sold_out or SoldOutBoard(None)
        self._writer = OrderWriter(engine)
        self._loads = SharedCalls("stock loads")
        self._background = BackgroundTasks("purchases")
        self._reservations = reservations
        self.directory = directory
        self._hold_ttl_s = hold_ttl_s
        self.streams = streams or StreamDirectory(engine)
        self._bounds = bounds or UnpaidBounds()
        self.terms = terms or ShopTermsCache(engine)
        self.cold_loads = 0  # buys that found the SKU's counters not in Redis (see ``warm``)

    async def close(self) -> None:
        """Finish writing queued orders, then stop the work left in the background (a hold
        given back after a failed write: the reaper releases it otherwise); safe to call twice."""
        await self._writer.close()
        await self._background.close()
        await self._loads.close()
        await self.directory.close()
        await self.streams.close()
        await self.sold_out.close()

    async def warm(self, event: SkuFeatured) -> None:
        """Load what a buy of a SKU just pinned or put on sale reads (its counters in Redis, its
        facts, the stream's lineup, the seller's terms, the sold-out board's list of its
        buyers), so the first buyer of the rush pays no cold load."""
        sku_id = event.sku_id
        self.sold_out.prepare(sku_id)
        try:
            if await self._reservations.level(sku_id) is None:
                await self._loads.run(
                    sku_id, lambda: load_sku(self._engine, self._reservations, sku_id)
                )
            facts = await self.directory.facts(sku_id)
            await self.streams.facts(event.stream_id)
            await self.terms.get(facts.seller_id)
        except LiveCommerceError:
            pass  # gone meanwhile: the buy will say so

    def quick_refusal(
        self, *, buyer_id: int, sku_id: int, qty: int, stream_id: int | None
    ) -> Refusal | None:
        """The sold-out board's refusal if ``buy`` with these arguments is sure to end in it,
        decided from what this process already knows (no await, no Redis, no SQL); ``None``
        whenever anything is not known here at once (``buy`` then decides).

        ``buy`` checks the SKU and the stream before the board; each check that could answer
        otherwise is made here on the cached facts first, or the purchase goes to ``buy``."""
        if not 1 <= qty <= MAX_QTY or not self.sold_out.knows(sku_id):
            return None
        facts = self.directory.cached(sku_id)
        if facts is None or not facts.active or facts.seller_id == buyer_id:
            return None
        if stream_id is not None:
            stream = self.streams.cached(stream_id)
            if stream is None or not stream.sells(facts.product_id):
                return None
        return self.sold_out.refusal(
            sku_id=sku_id,
            buyer_id=buyer_id,
            qty=qty,
            stream_id=stream_id,
            now_ms=time.time_ns() // 1_000_000,
            per_sku_bound=self._bounds.per_sku,
        )

    async def buy(
        self,
        *,
        buyer_id: int,
        sku_id: int,
        qty: int,
        idempotency_key: str,
        stream_id: int | None = None,
        unit_price_minor: int | None = None,
    ) -> Purchase:
        """Reserve ``qty`` of ``sku_id`` for ``buyer_id`` and write the ``reserved`` order.

        Idempotent per (buyer, ``idempotency_key``): a retry returns the first order and holds
        nothing more; the same key for a different SKU or quantity is refused. A refusal takes
        nothing and leaves the key usable.

        ``stream_id``, if given, must name a stream that has not ended and whose lineup holds
        the SKU's product; only then may a flash sale of that stream apply. Without it the
        purchase is at the list price. The buyer's unpaid units are bounded (``bounds``).

        ``unit_price_minor``, if given, is the unit price the buyer was shown: if a unit costs
        more now (a flash sale ended or the price went up meanwhile), the buy is refused
        ``price_changed`` with the price now, in the same atomic step as the hold, with nothing
        taken. A lower price is taken.
        """
        if not 1 <= qty <= MAX_QTY:
            raise LiveCommerceError(ErrorCode.INVALID_INPUT, f"qty must be between 1 and {MAX_QTY}")
        facts = await self.directory.facts(sku_id)
        if not facts.active:
            raise LiveCommerceError(ErrorCode.NOT_ON_SALE, "this product is not on sale")
        if facts.seller_id == buyer_id:
            raise LiveCommerceError(ErrorCode.FORBIDDEN, "you cannot buy your own product")
        if stream_id is not None:
            try:
                (await self.streams.facts(stream_id)).check_sells(facts.product_id)
            except LiveCommerceError:
                # A retry of a purchase that went through answers with its order, even if the
                # stream has moved on since (ended, lineup changed).
                async with self._engine.connect() as conn:
                    existing = await find_order(
                        conn, buyer_id=buyer_id, idempotency_key=idempotency_key
                    )
                if existing is None:
                    raise
                return self._same_request(existing, sku_id, qty)
        now_ms = time.time_ns() // 1_000_000
        self.sold_out.check(
            sku_id=sku_id,
            buyer_id=buyer_id,
            qty=qty,
            stream_id=stream_id,
            now_ms=now_ms,
            per_sku_bound=self._bounds.per_sku,
        )
        deadline_ms = now_ms + self._hold_ttl_s * 1000
        hold_args: dict[str, Any] = {
            "sku_id": sku_id,
            "buyer_id": buyer_id,
            "qty": qty,
            "hold_id": secrets.token_hex(16),  # 128 random bits, as uuid4 but cheaper
            "idempotency_key": idempotency_key,
            "now_ms": now_ms,
            "deadline_ms": deadline_ms,
            "idempotency_ttl_s": self._hold_ttl_s * 2 + 3600,
            "stream_id": stream_id,
            "bounds": self._bounds,
            "most_per_unit": unit_price_minor,
        }
        try:
            hold = await self._reserve(sku_id, hold_args)
        except PriceChanged as changed:
            raise LiveCommerceError(
                ErrorCode.PRICE_CHANGED,
                f"the price is now {changed.unit_price} {facts.currency} a unit, not "
                f"{unit_price_minor}; nothing was bought",
                unit_price_minor=changed.unit_price,
                currency=facts.currency,
            ) from None
        self.sold_out.held(sku_id, buyer_id)
        if hold.replayed:
            return await self._replay(hold, buyer_id, sku_id, qty, idempotency_key)
        try:
            # Read once the units are held: the crowd refused by the script reads nothing.
            terms, before, ship_to = await self._order_facts(buyer_id, facts, stream_id)
        except BaseException:
            await self._reservations.forget_key(sku_id, buyer_id, hold.hold_id, idempotency_key)
            raise
        figures = price(
            unit_price=hold.unit_price,
            qty=qty,
            currency=facts.currency,
            terms=terms,
            goods_before=before,
        )
        values = {
            "buyer_id": buyer_id,
            "seller_id": facts.seller_id,
            "sku_id": sku_id,
            "stream_id": stream_id,
            "qty": qty,
            "unit_price_minor": hold.unit_price,
            "amount_minor": figures.total,  # what is charged: goods, shipping, added tax
            "shipping_minor": figures.shipping,
            "tax_minor": figures.tax,
            "shipping_address": ship_to,
            "currency": facts.currency,
            "item_name": facts.item_name or None,
            "sale_id": hold.sale_id,
            "hold_id": hold.hold_id,
            "idempotency_key": idempotency_key,
            "expires_at": datetime.fromtimestamp(deadline_ms / 1000, UTC),
        }
        written = self._writer.insert(values)
        try:
            order = await asyncio.shield(written)
        except asyncio.CancelledError:
            # The caller went away; the write goes on. Keep the hold if the order lands
            # (the reaper expires it if nobody pays), give it back if the write fails.
            hold_id, key = hold.hold_id, idempotency_key
            written.add_done_callback(
                lambda f: self._release_if_failed(f, sku_id, buyer_id, hold_id, key)
            )
            raise
        except IntegrityError:
            # The key was used before, for another SKU (whose hold lives in another slot), or
            # the row names something gone since it was checked. Either way this hold goes
            # back and this SKU's key is freed: a retry meets the same answer, not a stale hold.
            await self._reservations.forget_key(sku_id, buyer_id, hold.hold_id, idempotency_key)
            async with self._engine.connect() as conn:
                existing = await find_order(
                    conn, buyer_id=buyer_id, idempotency_key=idempotency_key
                )
            if existing is None:
                log.warning("order not written", exc_info=True)
                raise LiveCommerceError(
                    ErrorCode.CONFLICT,
                    "this purchase names a product or stream that is no longer there",
                ) from None
            return self._same_request(existing, sku_id, qty)
        except BaseException:
            await self._reservations.forget_key(sku_id, buyer_id, hold.hold_id, idempotency_key)
            raise
        return Purchase(order=order, replayed=False, available_after=hold.available_after)

    async def _reserve(self, sku_id: int, hold_args: dict[str, Any]) -> Hold:
        """``Reservations.reserve``, loading the SKU's counters first if Redis has none."""
        try:
            return await self._reservations.reserve(**hold_args)
        except NotLoaded:
            self.cold_loads += 1
            await self._loads.run(
                sku_id, lambda: load_sku(self._engine, self._reservations, sku_id)
            )
            return await self._reservations.reserve(**hold_args)

    async def _order_facts(
        self, buyer_id: int, facts: SkuFacts, stream_id: int | None
    ) -> tuple[ShopTerms, int, dict[str, str] | None]:
        """What the order's price and address need, read once the hold is taken: the
        seller's terms, the buyer's goods so far in this show (only if the shop ships free
        over a threshold), and a copy of the buyer's default address (only for goods that
        ship)."""
        terms = await self.terms.get(facts.seller_id)
        before, ship_to = 0, None
        counts = stream_id is not None and terms.free_shipping_over_minor is not None
        if counts or facts.ships:
            async with self._engine.connect() as conn:
                if counts:
                    assert stream_id is not None
                    before = await goods_before(
                        conn,
                        buyer_id=buyer_id,
                        seller_id=facts.seller_id,
                        stream_id=stream_id,
                        currency=facts.currency,
                    )
                if facts.ships:
                    address = await default_address(conn, buyer_id)
                    ship_to = address.snapshot() if address is not None else None
        return terms, before, ship_to

    def _release_if_failed(
        self, written: asyncio.Future[Order], sku_id: int, buyer_id: int, hold_id: str, key: str
    ) -> None:
        if written.cancelled() or written.exception() is not None:
            self._background.spawn(
                self._reservations.forget_key(sku_id, buyer_id, hold_id, key), "give back a hold"
            )

    async def _replay(self, hold: Hold, buyer_id: int, sku_id: int, qty: int, key: str) -> Purchase:
        async with self._engine.connect() as conn:
            existing = await find_order(conn, hold_id=hold.hold_id)
            if existing is None:
                existing = await find_order(conn, buyer_id=buyer_id, idempotency_key=key)
        if existing is None:
            raise LiveCommerceError(
                ErrorCode.CONFLICT, "this purchase is still being placed; retry in a moment"
            )
        return self._same_request(existing, sku_id, qty)

    @staticmethod
    def _same_request(existing: Order, sku_id: int, qty: int) -> Purchase:
        if existing.sku_id != sku_id or existing.qty != qty:
            raise LiveCommerceError(
                ErrorCode.IDEMPOTENCY_MISMATCH,
                "this Idempotency-Key was used for a different purchase",
                order_id=existing.id,
            )
        return Purchase(order=existing, replayed=True, available_after=None)


PURCHASES = web.AppKey("purchases", Purchases)
