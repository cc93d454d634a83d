"""What happens in a live room, whoever asks (Socket.IO event or its REST twin).

Every action checks the caller's role on the server and tells the room through ``emit`` (given
at construction), which the Socket.IO server sends through its Redis manager so every process's
viewers hear it. Orders reach the rooms as events (``events.orders``), heard only on the process
where they happened: the broadcast itself already reaches every process. The chat and its
moderation are ``chat.RoomChat`` (``LiveRooms.chat``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.roles import allow, role_in_stream
from livecommerce.accounts.users import User
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.bus import EventBus
from livecommerce.events.orders import OrderChanged, Purchased
from livecommerce.events.sales import SaleEnded
from livecommerce.events.stock import OnHandChanged, SkuFeatured
from livecommerce.events.streams import StreamOffAir, StreamOnAir
from livecommerce.inventory.rebuild import load_sku
from livecommerce.inventory.reservations import Reservations
from livecommerce.live.rooms.access import MODERATORS, require_moderator, stream_room, user_room
from livecommerce.live.rooms.chat import RoomChat
from livecommerce.live.rooms.flashsales import FlashSales
from livecommerce.live.rooms.messages import (
    Emit,
    RoomStateMessage,
    SaleView,
    pinned_card,
    sale_view,
)
from livecommerce.live.rooms.roomstate import (
    FlashSale,
    PinnedProduct,
    PinnedVariant,
    RoomState,
    now_ms,
)
from livecommerce.live.streams import (
    StreamStatus,
    get_stream,
    pin_check,
    set_status,
    show_phase,
    streams_listing_sku,
)
from livecommerce.orders.orders import stream_sales
from livecommerce.platform.backgroundtasks import BackgroundTasks

log = logging.getLogger(__name__)


class ShownVariant(Protocol):
    """One SKU of the shown product, as a viewer chooses it."""

    @property
    def sku_id(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def attributes(self) -> dict[str, str]: ...
    @property
    def price(self) -> int: ...
    @property
    def currency(self) -> str: ...


class ShownProduct(Protocol):
    """What a pin shows of one SKU of a catalog product, and the product's other SKUs."""

    @property
    def product_id(self) -> int: ...
    @property
    def sku_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def image_url(self) -> str | None: ...
    @property
    def price(self) -> int: ...  # minor units of ``currency``
    @property
    def currency(self) -> str: ...
    @property
    def variant(self) -> str: ...  # the SKU's label: "M", "M / Black" (empty: no attributes)
    @property
    def variants(self) -> Sequence[ShownVariant]: ...


ReadCard = Callable[[int, int | None], Awaitable[ShownProduct | None]]
"""``(product_id, sku_id)`` -> that SKU's card (the product's first SKU if None), None if the
SKU is not of the product; raises ``NotFound`` for no such product. Given at composition, so
the rooms never import the catalog."""

STOCK_PUSH_MS = 250  # at most four stock:changed per product per second, however fast it sells
REACTION_BURST_S = 0.5
REACTIONS = ("heart", "fire", "clap", "laugh", "wow")
ON_AIR_TTL_S = 15  # the media process refreshes it every few seconds while the stream is on air


class LiveRooms:
    def __init__(
        self,
        engine: AsyncEngine,
        state: RoomState,
        sales: FlashSales,
        reservations: Reservations,
        emit: Emit,
        read_card: ReadCard,
        events: EventBus | None = None,
    ) -> None:
        """``events``, if given, hears ``SkuFeatured`` on every pin and sale start, so every
        process warms what a buy of that SKU reads before the crowd taps Buy."""
        self._engine = engine
        self._events = events
        self._read_card = read_card
        self.state = state
        self.sales = sales
        self._reservations = reservations
        self.emit = emit
        self.chat = RoomChat(engine, state, emit)
        self._reactions: dict[int, Counter[str]] = {}
        self._reaction_flush: asyncio.TimerHandle | None = None
        self._flushes = BackgroundTasks("reaction bursts")
        self._stock_pushes: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._closed = False

    def subscribe(self, events: EventBus) -> None:
        """Hear the orders and sales changed on this process (only: the broadcast reaches the
        others)."""
        events.subscribe(SaleEnded, self._announce_sale_end, local_only=True)
        events.subscribe(Purchased, self.purchased, local_only=True)
        events.subscribe(OrderChanged, self.order_changed, local_only=True)
        events.subscribe(OnHandChanged, self.on_hand_changed, local_only=True)

    async def snapshot(self, stream_id: int, user: User | None) -> RoomStateMessage:
        """``room:state``: everything a late joiner needs to draw the room."""
        async with self._engine.connect() as conn:
            stream = await get_stream(conn, stream_id)
            role = await role_in_stream(conn, stream_id, user.id if user else None)
        pinned = await self.state.pinned(stream_id)
        sale = await self.state.sale(stream_id)
        slow_s, blocked = await self.state.chat_settings(stream_id)
        shown = {v.sku_id for v in pinned.variants} if pinned else set()
        shown |= {s for s in (pinned and pinned.sku_id, sale and sale.sku_id) if s}
        stock = await self._available_by_sku(sorted(shown))
        on_air = await self.state.on_air(stream_id)
        return {
            "stream_id": stream_id,
            "status": stream.status.value,
            "phase": show_phase(stream.status, on_air).value,
            "title": stream.title,
            "role": role.value,
            "pinned": pinned_card(pinned) if pinned else None,
            "sale": self._sale_view(sale),
            "stock": stock,
            "sale_left": await self._sale_left(sale),
            "sale_mine": await self._sale_mine(sale, user),
            "on_air": on_air and stream.status is not StreamStatus.ENDED,
            "viewers": await self.state.viewers(stream_id),
            "chat": await self.state.recent_chat(stream_id),
            # the word list is the moderators' business; viewers only meet its refusals
            "chat_settings": {
                "slow_mode_s": slow_s,
                "blocked_words": blocked if role.can_moderate else None,
            },
            "server_time": now_ms(),
        }

    async def _available(self, sku_id: int) -> int:
        """Units left to buy. A SKU nobody bought since start-up is loaded into Redis now, from
        SQL, so the room sees the real figure and the first rush never finds it cold."""
        level = await self._reservations.level(sku_id)
        if level is None:
            await load_sku(self._engine, self._reservations, sku_id)
            level = await self._reservations.level(sku_id)
        return level.available if level else 0

    async def _available_by_sku(self, sku_ids: list[int]) -> dict[str, int]:
        """``_available`` of many SKUs (a product's variants), keyed by id as a string; those
        already in Redis are read in one round trip."""
        levels = await self._reservations.levels(sku_ids)
        return {
            str(sku): level.available if level else await self._available(sku)
            for sku, level in levels.items()
        }

    async def _sale_mine(self, sale: FlashSale | None, user: User | None) -> int:
        if sale is None or user is None:
            return 0
        window = await self._reservations.sale(sale.sku_id)
        if window is None or window.sale_id != sale.sale_id:
            return 0
        return await self._reservations.sale_units_of(sale.sku_id, user.id)

    async def _sale_left(self, sale: FlashSale | None) -> int | None:
        """Units the room's running sale has left (held and paid ones are gone); None if none."""
        if sale is None:
            return None
        window = await self._reservations.sale(sale.sku_id)
        if window is None or window.sale_id != sale.sale_id:
            return None
        return window.left_for(sale.stream_id, now_ms())

    @staticmethod
    def _sale_view(sale: FlashSale | None) -> SaleView | None:
        return sale_view(sale) if sale else None

    # -- moderator actions ----------------------------------------------------------------

    async def pin(
        self, stream_id: int, user: User | None, product_id: int, sku_id: int | None
    ) -> PinnedProduct:
        if user is None:
            raise LiveCommerceError(ErrorCode.NOT_AUTHENTICATED, "log in first")
        async with self._engine.connect() as conn:
            role, listed = await pin_check(conn, stream_id, user.id, product_id)
        allow(role, *MODERATORS)
        if not listed:
            raise LiveCommerceError(
                ErrorCode.INVALID_INPUT, "only a product of the stream's lineup can be pinned"
            )
        shown = await self._read_card(product_id, sku_id)
        if shown is None:
            raise LiveCommerceError(ErrorCode.INVALID_INPUT, "that SKU is not of this product")
        card = PinnedProduct(
            product_id=shown.product_id,
            sku_id=shown.sku_id,
            title=shown.title,
            image_url=shown.image_url,
            price=shown.price,
            currency=shown.currency,
            pinned_at=now_ms(),
            variant=shown.variant,
            variants=tuple(
                PinnedVariant(
                    sku_id=v.sku_id,
                    label=v.label,
                    attributes=dict(v.attributes),
                    price=v.price,
                    currency=v.currency,
                )
                for v in shown.variants
            ),
        )
        version = await self.state.pin(stream_id, card)
        stock_by_sku = await self._available_by_sku([v.sku_id for v in card.variants])
        stock = stock_by_sku.get(str(card.sku_id))
        await self.emit(
            "product:pinned",
            {
                "stream_id": stream_id,
                "product": pinned_card(card),
                "stock": await self._available(card.sku_id) if stock is None else stock,
                "stock_by_sku": stock_by_sku,
            },
            stream_room(stream_id),
            version=version,
        )
        await self._featured(card.sku_id, stream_id)
        return card

    async def _featured(self, sku_id: int, stream_id: int) -> None:
        if self._events is not None:
            await self._events.publish(SkuFeatured(sku_id=sku_id, stream_id=stream_id))

    async def unpin(self, stream_id: int, user: User | None) -> None:
        await require_moderator(self._engine, stream_id, user)
        version = await self.state.unpin(stream_id)
        await self.emit(
            "product:unpinned", {"stream_id": stream_id}, stream_room(stream_id), version=version
        )

    async def start_sale(self, stream_id: int, user: User | None, **terms: int) -> FlashSale:
        await require_moderator(self._engine, stream_id, user)
        sale = await self.sales.start(stream_id, **terms)
        await self.emit(
            "sale:started",
            {
                "stream_id": stream_id,
                "sale": sale_view(sale),
                "stock": await self._available(sale.sku_id),
                "server_time": now_ms(),
            },
            stream_room(stream_id),
        )
        await self._featured(sale.sku_id, stream_id)
        return sale

    async def stop_sale(self, stream_id: int, user: User | None, sale_id: str) -> FlashSale:
        await require_moderator(self._engine, stream_id, user)
        return await self.sales.stop(stream_id, sale_id)

    async def _announce_sale_end(self, sale: SaleEnded) -> None:
        await self.emit(
            "sale:ended",
            {"stream_id": sale.stream_id, "sale_id": sale.sale_id, "ended_at": now_ms()},
            stream_room(sale.stream_id),
        )

    async def sales_figures(self, stream_id: int, user: User | None) -> dict[str, Any]:
        """The stream's sales figures so far (the team only)."""
        await require_moderator(self._engine, stream_id, user)
        async with self._engine.connect() as conn:
            return await stream_sales(conn, stream_id)

    async def stream_on_air(self, event: StreamOnAir) -> None:
        """The media relay's word: the publisher's frames are flowing (told again every few
        seconds while they do). The first time a scheduled show goes on air it becomes live."""
        await self._on_air_changed(event.stream_id, True)

    async def stream_off_air(self, event: StreamOffAir) -> None:
        """The media relay's word: the publisher's frames stopped."""
        await self._on_air_changed(event.stream_id, False)

    async def _on_air_changed(self, stream_id: int, on_air: bool) -> None:
        """Record it; on a change (not a refresh) the room hears ``stream:status``. Subscribe
        with ``local_only``: the process holding the media writes the record, once, in order."""
        if not await self.state.set_on_air(stream_id, on_air, ON_AIR_TTL_S):
            return  # a refresh, not a change
        async with self._engine.connect() as conn:
            status = (await get_stream(conn, stream_id)).status
        if on_air and status is StreamStatus.SCHEDULED:
            try:
                status = (await set_status(self._engine, stream_id, StreamStatus.LIVE)).status
            except LiveCommerceError as exc:
                if exc.code is not ErrorCode.INVALID_TRANSITION:
                    raise
                status = StreamStatus.ENDED  # the creator ended the show meanwhile
        await self._tell_status(stream_id, status, on_air)

    async def stream_status_changed(self, stream_id: int, status: StreamStatus) -> None:
        """The creator moved the show (e.g. ended it): the room hears ``stream:status``."""
        await self._tell_status(stream_id, status, await self.state.on_air(stream_id))

    async def _tell_status(self, stream_id: int, status: StreamStatus, on_air: bool) -> None:
        await self.emit(
            "stream:status",
            {
                "stream_id": stream_id,
                "status": status.value,
                "on_air": on_air and status is not StreamStatus.ENDED,
                "phase": show_phase(status, on_air).value,
            },
            stream_room(stream_id),
        )

    async def on_air_among(self, stream_ids: list[int]) -> set[int]:
        """Which of these shows are on air (for listings: ``Shopstream.to_dict``)."""
        return await self.state.on_air_among(stream_ids)

    # -- reactions, stock, purchases --------------------------------------------------------

    def react(self, stream_id: int, kind: str) -> None:
        """Count a reaction; the room gets one ``reactions`` burst per half second."""
        if kind not in REACTIONS:
            raise LiveCommerceError(
                ErrorCode.INVALID_INPUT, f"a reaction is one of {', '.join(REACTIONS)}"
            )
        self._reactions.setdefault(stream_id, Counter())[kind] += 1
        if self._reaction_flush is None:
            loop = asyncio.get_running_loop()
            self._reaction_flush = loop.call_later(
                REACTION_BURST_S,
                lambda: self._flushes.spawn(self._flush_reactions(), "flush"),
            )

    async def _flush_reactions(self) -> None:
        bursts, self._reactions, self._reaction_flush = self._reactions, {}, None
        for stream_id, counts in bursts.items():
            await self.emit(
                "reactions",
                {"stream_id": stream_id, "counts": dict(counts)},
                stream_room(stream_id),
            )

    async def stock_changed(self, stream_id: int, sku_id: int) -> None:
        """Tell the room the stock left: once per ``STOCK_PUSH_MS`` per SKU, on all processes.

        Returns at once: the push waits for its coalescing window in the background, so a
        buyer's answer or the reaper's batch never waits for it. Changes that come while a
        push is pending on this process are folded into it without a Redis call.
        """
        key = (stream_id, sku_id)
        if key in self._stock_pushes or self._closed:
            return  # closed: an order event that came in late starts no new push
        task = asyncio.create_task(self._push_stock(stream_id, sku_id), name="stock-push")
        self._stock_pushes[key] = task
        task.add_done_callback(lambda done: self._stock_push_done(key, done))

    def _stock_push_done(self, key: tuple[int, int], task: asyncio.Task[None]) -> None:
        if self._stock_pushes.get(key) is task:
            del self._stock_pushes[key]
        if not task.cancelled() and task.exception() is not None:
            log.warning("stock push failed: %s", task.exception())

    async def _push_stock(self, stream_id: int, sku_id: int) -> None:
        if not await self.state.first_to(
            f"stockpush:{{stream{stream_id}}}:{sku_id}", STOCK_PUSH_MS
        ):
            return  # another push (maybe on another process) is pending and will read later
        await asyncio.sleep(STOCK_PUSH_MS / 1000)  # trailing edge: the latest figure wins
        # From here on a new change starts a new push: this one may have read too early.
        self._stock_pushes.pop((stream_id, sku_id), None)
        level, window = await self._reservations.offer(sku_id)
        if level is None:
            return
        await self.emit(
            "stock:changed",
            {
                "stream_id": stream_id,
                "sku_id": sku_id,
                "available": level.available,
                # The sale's own units run out first: the card shows them, and "sold out"
                # once they are gone even while the SKU has units left at its list price.
                "sale_left": window.left_for(stream_id, now_ms()) if window else None,
            },
            stream_room(stream_id),
        )

    async def purchased(self, order: Purchased) -> None:
        """A unit was just held: the room sees the stock left."""
        if order.stream_id is not None:
            await self.stock_changed(order.stream_id, order.sku_id)

    async def on_hand_changed(self, change: OnHandChanged) -> None:
        """The seller restocked or counted a SKU: every room listing its product sees the
        units left (a card that said "sold out" offers it again)."""
        async with self._engine.connect() as conn:
            listing = await streams_listing_sku(conn, change.sku_id)
        for stream_id in listing:
            await self.stock_changed(stream_id, change.sku_id)

    async def order_changed(self, order: OrderChanged) -> None:
        """The buyer hears every change of their order; once it is paid, the room gets its
        social proof (who bought is never said); units that went back show in the stock."""
        await self.emit("order:update", {"order": order.view}, user_room(order.buyer_id))
        if order.stream_id is None:
            return
        if order.status == "paid":
            await self.emit(
                "purchase:feed",
                {
                    "stream_id": order.stream_id,
                    "sku_id": order.sku_id,
                    "qty": order.qty,
                    "at": now_ms(),
                },
                stream_room(order.stream_id),
            )
        else:
            await self.stock_changed(order.stream_id, order.sku_id)

    async def close(self) -> None:
        """Stop pending pushes and wait for them; safe to call twice."""
        self._closed = True
        if self._reaction_flush is not None:
            self._reaction_flush.cancel()
        await self._flushes.close()
        pushes = list(self._stock_pushes.values())
        for task in pushes:
            task.cancel()
        await asyncio.gather(*pushes, return_exceptions=True)
        self._stock_pushes.clear()
        await self.sales.close()


ROOMS = web.AppKey("rooms", LiveRooms)
