"""What the server tells ``/live`` clients: one typed payload per server event.

The rooms build these and the transport sends them as they are: each payload is a
``TypedDict``, so it costs nothing beyond the dict that goes to the wire, while mypy checks
every key and value where it is built. ``Emit`` ties each event name to its payload, so a
room cannot send ``stock:changed`` with the body of ``viewers``. ``SERVER_EVENTS`` lists them
all (the README's "Live rooms" section names each one).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypedDict, overload

from livecommerce.live.rooms.roomstate import FlashSale, PinnedProduct


class CardVariant(TypedDict):
    """A variant (SKU) of the pinned product, as the viewer chooses among them."""

    sku_id: int
    label: str
    attributes: dict[str, str]
    price: int
    currency: str


class PinnedCard(TypedDict):
    """The product card over the video (``PinnedProduct`` on the wire): ``title`` is the
    product's, ``variant`` the pinned SKU's label ("M"; empty without attributes)."""

    product_id: int
    sku_id: int
    title: str
    image_url: str | None
    price: int
    currency: str
    pinned_at: int
    variant: str
    variants: list[CardVariant]


class SaleView(TypedDict):
    """A flash sale as viewers see it (``FlashSale`` on the wire); times in server epoch ms."""

    sale_id: str
    stream_id: int
    product_id: int
    sku_id: int
    sale_price: int
    list_price: int
    currency: str
    quantity: int
    per_buyer_limit: int
    starts_at: int
    ends_at: int


class ChatAuthor(TypedDict):
    id: int
    display_name: str
    role: str


class ChatMessage(TypedDict):
    """``chat:message``; also the chat history of ``room:state`` (kept as such in Redis)."""

    id: str
    stream_id: int
    user: ChatAuthor
    text: str
    at: int


class ChatSettings(TypedDict):
    slow_mode_s: int
    blocked_words: list[str] | None  # the team's business: None for everyone else


class RoomStateMessage(TypedDict):
    """``room:state``: everything a late joiner needs to draw the room."""

    stream_id: int
    status: str  # scheduled, live, ended: the stored status
    phase: str  # scheduled, on_air, paused, ended: what to show (``streams.show_phase``)
    title: str
    role: str
    pinned: PinnedCard | None
    sale: SaleView | None
    stock: dict[str, int]  # units left by SKU id (as a string: a JSON key)
    sale_left: int | None  # units left in the running sale (None: no sale running)
    sale_mine: int  # units the joiner holds or bought in it (its per-buyer limit counts them)
    on_air: bool
    viewers: int
    chat: list[ChatMessage]
    chat_settings: ChatSettings
    server_time: int


class ProductPinned(TypedDict):
    stream_id: int
    product: PinnedCard
    stock: int  # units left of the pinned SKU
    stock_by_sku: dict[str, int]  # units left of each of the product's variants


class ProductUnpinned(TypedDict):
    stream_id: int


class SaleStarted(TypedDict):
    stream_id: int
    sale: SaleView
    stock: int  # units of the SKU left at all (the sale's own are ``sale.quantity``)
    server_time: int


class SaleEndedMessage(TypedDict):
    stream_id: int
    sale_id: str
    ended_at: int


class StreamStatusMessage(TypedDict):
    stream_id: int
    status: str
    on_air: bool
    phase: str  # scheduled, on_air, paused, ended (``streams.show_phase``)


class ChatDeleted(TypedDict):
    stream_id: int
    id: str


class ChatMuted(TypedDict):
    stream_id: int
    user_id: int
    display_name: str
    until: int  # epoch ms


class ChatUnmuted(TypedDict):
    stream_id: int
    user_id: int
    display_name: str


class ChatSlowMode(TypedDict):
    stream_id: int
    seconds: int


class Reactions(TypedDict):
    stream_id: int
    counts: dict[str, int]  # by kind, over the last burst


class StockChanged(TypedDict):
    stream_id: int
    sku_id: int
    available: int
    sale_left: int | None  # units left in this room's running sale of the SKU (None: none)


class PurchaseFeed(TypedDict):
    """Social proof: what sold, never who bought."""

    stream_id: int
    sku_id: int
    qty: int
    at: int


class OrderUpdate(TypedDict):
    """To the buyer alone: their order as ``GET /api/orders/{id}`` shows it."""

    order: dict[str, Any]


class Viewers(TypedDict):
    stream_id: int
    count: int


class SessionEnded(TypedDict):
    """To each socket of a revoked token, just before it is disconnected."""

    code: str
    message: str


SERVER_EVENTS: dict[str, type[Any]] = {
    "room:state": RoomStateMessage,
    "product:pinned": ProductPinned,
    "product:unpinned": ProductUnpinned,
    "sale:started": SaleStarted,
    "sale:ended": SaleEndedMessage,
    "stream:status": StreamStatusMessage,
    "stock:changed": StockChanged,
    "purchase:feed": PurchaseFeed,
    "chat:message": ChatMessage,
    "chat:deleted": ChatDeleted,
    "chat:muted": ChatMuted,
    "chat:unmuted": ChatUnmuted,
    "chat:slowmode": ChatSlowMode,
    "reactions": Reactions,
    "viewers": Viewers,
    "order:update": OrderUpdate,
    "session:ended": SessionEnded,
}
"""Every server event of ``/live`` and its payload type."""


def pinned_card(card: PinnedProduct) -> PinnedCard:
    return {
        "product_id": card.product_id,
        "sku_id": card.sku_id,
        "title": card.title,
        "image_url": card.image_url,
        "price": card.price,
        "currency": card.currency,
        "pinned_at": card.pinned_at,
        "variant": card.variant,
        "variants": [
            {
                "sku_id": v.sku_id,
                "label": v.label,
                "attributes": v.attributes,
                "price": v.price,
                "currency": v.currency,
            }
            for v in card.variants
        ],
    }


def sale_view(sale: FlashSale) -> SaleView:
    return {
        "sale_id": sale.sale_id,
        "stream_id": sale.stream_id,
        "product_id": sale.product_id,
        "sku_id": sale.sku_id,
        "sale_price": sale.sale_price,
        "list_price": sale.list_price,
        "currency": sale.currency,
        "quantity": sale.quantity,
        "per_buyer_limit": sale.per_buyer_limit,
        "starts_at": sale.starts_at,
        "ends_at": sale.ends_at,
    }


class Emit(Protocol):
    """Send a room event to a Socket.IO room (every process's sockets in it).

    One overload per event the rooms broadcast; ``room:state`` and ``session:ended`` go to
    one socket and are sent by the namespace itself. ``version``: the one a pin or unpin got in
    Redis (``RoomState.pin``): a broadcast older than one already delivered is dropped.
    """

    @overload
    async def __call__(
        self,
        event: Literal["product:pinned"],
        data: ProductPinned,
        room: str,
        *,
        version: int | None = None,
    ) -> None: ...
    @overload
    async def __call__(
        self,
        event: Literal["product:unpinned"],
        data: ProductUnpinned,
        room: str,
        *,
        version: int | None = None,
    ) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["sale:started"], data: SaleStarted, room: str
    ) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["sale:ended"], data: SaleEndedMessage, room: str
    ) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["stream:status"], data: StreamStatusMessage, room: str
    ) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["stock:changed"], data: StockChanged, room: str
    ) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["purchase:feed"], data: PurchaseFeed, room: str
    ) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["chat:message"], data: ChatMessage, room: str
    ) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["chat:deleted"], data: ChatDeleted, room: str
    ) -> None: ...
    @overload
    async def __call__(self, event: Literal["chat:muted"], data: ChatMuted, room: str) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["chat:unmuted"], data: ChatUnmuted, room: str
    ) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["chat:slowmode"], data: ChatSlowMode, room: str
    ) -> None: ...
    @overload
    async def __call__(self, event: Literal["reactions"], data: Reactions, room: str) -> None: ...
    @overload
    async def __call__(self, event: Literal["viewers"], data: Viewers, room: str) -> None: ...
    @overload
    async def __call__(
        self, event: Literal["order:update"], data: OrderUpdate, room: str
    ) -> None: ...
