"""Server events of /live: each documented one has a typed payload, with exactly its keys."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.live.rooms.messages import (
    SERVER_EVENTS,
    CardVariant,
    ChatMessage,
    PinnedCard,
    SaleView,
    pinned_card,
    sale_view,
)
from livecommerce.live.rooms.roomstate import FlashSale, PinnedProduct, PinnedVariant
from tests.conftest import accept_invitation, hoodie, sign_up
from tests.liveclient import Viewer
from tests.shopping import OK_CARD, card

README = Path(__file__).resolve().parent.parent / "README.md"

# The wire contract the clients (browser pages, tests/node) read: every key of every event.
DOCUMENTED_KEYS: dict[str, set[str]] = {
    "room:state": {
        "stream_id",
        "status",
        "phase",
        "title",
        "role",
        "pinned",
        "sale",
        "stock",
        "sale_left",
        "sale_mine",
        "on_air",
        "viewers",
        "chat",
        "chat_settings",
        "server_time",
    },
    "product:pinned": {"stream_id", "product", "stock", "stock_by_sku"},
    "product:unpinned": {"stream_id"},
    "sale:started": {"stream_id", "sale", "stock", "server_time"},
    "sale:ended": {"stream_id", "sale_id", "ended_at"},
    "stream:status": {"stream_id", "status", "on_air", "phase"},
    "stock:changed": {"stream_id", "sku_id", "available", "sale_left"},
    "purchase:feed": {"stream_id", "sku_id", "qty", "at"},  # never who bought
    "chat:message": {"id", "stream_id", "user", "text", "at"},
    "chat:deleted": {"stream_id", "id"},
    "chat:muted": {"stream_id", "user_id", "display_name", "until"},
    "chat:unmuted": {"stream_id", "user_id", "display_name"},
    "chat:slowmode": {"stream_id", "seconds"},
    "reactions": {"stream_id", "counts"},
    "viewers": {"stream_id", "count"},
    "order:update": {"order"},
    "session:ended": {"code", "message"},
}
CARD_KEYS = {
    "product_id",
    "sku_id",
    "title",
    "image_url",
    "price",
    "currency",
    "pinned_at",
    "variant",
    "variants",
}
VARIANT_KEYS = {"sku_id", "label", "attributes", "price", "currency"}
SALE_KEYS = {
    "sale_id",
    "stream_id",
    "product_id",
    "sku_id",
    "sale_price",
    "list_price",
    "currency",
    "quantity",
    "per_buyer_limit",
    "starts_at",
    "ends_at",
}

CARD = PinnedProduct(
    product_id=3,
    sku_id=7,
    title="Hoodie",
    image_url=None,
    price=4900,
    currency="USD",
    pinned_at=1_700_000_000_000,
    variant="M",
    variants=(
        PinnedVariant(sku_id=7, label="M", attributes={"size": "M"}, price=4900, currency="USD"),
        PinnedVariant(sku_id=8, label="L", attributes={"size": "L"}, price=4900, currency="USD"),
    ),
)
SALE = FlashSale(
    sale_id="ab12",
    stream_id=1,
    product_id=3,
    sku_id=7,
    sale_price=2900,
    list_price=4900,
    currency="USD",
    quantity=3,
    per_buyer_limit=1,
    starts_at=1_700_000_000_000,
    ends_at=1_700_000_010_000,
)
MESSAGE: ChatMessage = {
    "id": "c0ffee",
    "stream_id": 1,
    "user": {"id": 2, "display_name": "fan", "role": "viewer"},
    "text": "love it",
    "at": 1_700_000_000_000,
}
SAMPLES: dict[str, Any] = {
    "room:state": {
        "stream_id": 1,
        "status": "live",
        "phase": "on_air",
        "title": "Drop",
        "role": "viewer",
        "pinned": pinned_card(CARD),
        "sale": sale_view(SALE),
        "stock": {"7": 20, "8": 3},
        "sale_left": 2,
        "sale_mine": 1,
        "on_air": True,
        "viewers": 4,
        "chat": [MESSAGE],
        "chat_settings": {"slow_mode_s": 0, "blocked_words": None},
        "server_time": 1_700_000_000_000,
    },
    "product:pinned": {
        "stream_id": 1,
        "product": pinned_card(CARD),
        "stock": 20,
        "stock_by_sku": {"7": 20, "8": 3},
    },
    "product:unpinned": {"stream_id": 1},
    "sale:started": {"stream_id": 1, "sale": sale_view(SALE), "stock": 20, "server_time": 1},
    "sale:ended": {"stream_id": 1, "sale_id": "ab12", "ended_at": 1},
    "stream:status": {"stream_id": 1, "status": "live", "on_air": True, "phase": "on_air"},
    "stock:changed": {"stream_id": 1, "sku_id": 7, "available": 18, "sale_left": 1},
    "purchase:feed": {"stream_id": 1, "sku_id": 7, "qty": 2, "at": 1},
    "chat:message": MESSAGE,
    "chat:deleted": {"stream_id": 1, "id": "c0ffee"},
    "chat:muted": {"stream_id": 1, "user_id": 2, "display_name": "fan", "until": 1},
    "chat:unmuted": {"stream_id": 1, "user_id": 2, "display_name": "fan"},
    "chat:slowmode": {"stream_id": 1, "seconds": 5},
    "reactions": {"stream_id": 1, "counts": {"heart": 3}},
    "viewers": {"stream_id": 1, "count": 4},
    "order:update": {"order": {"id": 9, "status": "paid"}},
    "session:ended": {"code": "not_authenticated", "message": "you were logged out"},
}


def _typed_keys(payload: Any) -> set[str]:
    return set(payload.__required_keys__) | set(payload.__optional_keys__)


def _documented_events() -> set[str]:
    """Every server event the README names: the room's list, and each other "hears `x`"."""
    text = README.read_text()
    section = text.split("## Live rooms", 1)[1].split("\n## ", 1)[0]
    listing = re.search(r"The room hears (.*?)\n\n", section, re.S)
    assert listing is not None, "the README lists what the room hears"
    names = set(re.findall(r"`([^`]+)`", listing.group(1)))
    names |= set(re.findall(r"hears `([a-z]+(?::[a-z]+)?)`", text))
    return names


def test_the_fields_the_readme_names_are_in_their_payloads() -> None:
    # "the room hears `on_air: false`", "`status: "ended"`": fields of stream:status
    named = set(re.findall(r"hears `([a-z_]+): [^`]+`", README.read_text()))
    named |= set(re.findall(r"`stream:status` with `([a-z_]+)`", README.read_text()))
    assert named == {"on_air", "status"}
    assert named <= _typed_keys(SERVER_EVENTS["stream:status"])


def test_every_documented_server_event_has_a_typed_payload() -> None:
    documented = _documented_events()
    assert {"room:state", "session:ended", "stream:status", "order:update"} <= documented
    assert documented == set(SERVER_EVENTS)
    assert set(DOCUMENTED_KEYS) == documented


def test_a_sample_of_each_serialises_to_exactly_the_documented_keys() -> None:
    for event, payload in SERVER_EVENTS.items():
        wire = json.loads(json.dumps(SAMPLES[event]))
        assert set(wire) == DOCUMENTED_KEYS[event] == _typed_keys(payload), event
    assert _typed_keys(PinnedCard) == CARD_KEYS
    assert _typed_keys(CardVariant) == VARIANT_KEYS
    assert _typed_keys(SaleView) == SALE_KEYS
    assert "buyer_id" not in _typed_keys(SERVER_EVENTS["purchase:feed"])


def test_cards_and_sales_go_out_as_their_dataclasses_always_did() -> None:
    # Same keys, same order, same values: the JSON is byte-for-byte that of asdict().
    assert json.dumps(pinned_card(CARD)) == json.dumps(dataclasses.asdict(CARD))
    assert json.dumps(sale_view(SALE)) == json.dumps(dataclasses.asdict(SALE))


async def test_what_the_clients_hear_has_exactly_the_typed_keys(
    client: TestClient[Any, Any], viewers: list[Viewer], settings: Settings
) -> None:
    """The real app, real sockets: every server event heard in a show is typed, key for key."""
    creator = await sign_up(client, "creator")
    moderator = await sign_up(client, "moderator")
    buyer = await sign_up(client, "buyer")
    product = (
        await creator.call(
            "POST", "/api/products", hoodie(f"T-{uuid.uuid4().hex[:6]}", 20), status=201
        )
    )["product"]
    sku_id = product["variants"][0]["id"]
    stream_id = (
        await creator.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product["id"]]}, status=201
        )
    )["stream"]["id"]
    await creator.call(
        "POST", f"/api/streams/{stream_id}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    pm = await card(settings, OK_CARD)
    await buyer.call("POST", "/api/cards", {"payment_method_id": pm}, status=201)

    url = str(client.make_url("/")).rstrip("/")
    mod, fan = Viewer(), Viewer()
    viewers += [mod, fan]
    await mod.connect(url, moderator.token)
    await fan.connect(url, buyer.token)
    for v in (mod, fan):
        assert (await v.call("join", {"stream_id": stream_id}))["ok"]
    room = {"stream_id": stream_id}
    assert (await mod.call("pin", {**room, "product_id": product["id"]}))["ok"]
    sale = {**room, "sku_id": sku_id, "sale_price": 2900, "quantity": 3, "duration_s": 10}
    sale_id = (await mod.call("sale:start", sale))["sale"]["sale_id"]
    assert (await mod.call("join", room))["state"]["sale"]["sale_id"] == sale_id
    bought = await fan.call(
        "buy", {"sku_id": sku_id, "qty": 1, "idempotency_key": "t1", "stream_id": stream_id}
    )
    assert bought["order"]["status"] == "paid"
    said = (await fan.call("chat:send", {**room, "text": "love it"}))["message"]
    assert (await fan.call("reaction:send", {**room, "kind": "heart"}))["ok"]
    assert (await mod.call("chat:delete", {**room, "message_id": said["id"]}))["ok"]
    assert (await mod.call("chat:mute", {**room, "user_id": buyer.id, "seconds": 60}))["ok"]
    assert (await mod.call("chat:unmute", {**room, "user_id": buyer.id}))["lifted"] is True
    assert (await mod.call("chat:slowmode", {**room, "seconds": 5}))["ok"]
    assert (await mod.call("sale:stop", {**room, "sale_id": sale_id}))["ok"]
    assert (await mod.call("unpin", room))["ok"]
    for event in (
        "room:state",
        "product:pinned",
        "sale:started",
        "purchase:feed",
        "stock:changed",
        "chat:message",
        "reactions",
        "chat:deleted",
        "chat:muted",
        "chat:unmuted",
        "chat:slowmode",
        "sale:ended",
        "product:unpinned",
        "viewers",
    ):
        await mod.wait_for(event)
    await fan.wait_for("order:update")
    heard = mod.events + fan.events
    assert len({name for name, _ in heard}) >= 15
    for name, data in heard:
        assert name in SERVER_EVENTS, name
        assert set(data) == _typed_keys(SERVER_EVENTS[name]), name
        if name == "room:state" and data["pinned"] is not None:
            assert set(data["pinned"]) == CARD_KEYS
        if name == "room:state" and data["sale"] is not None:
            assert set(data["sale"]) == SALE_KEYS
        if name == "product:pinned":
            assert set(data["product"]) == CARD_KEYS
            assert all(set(v) == VARIANT_KEYS for v in data["product"]["variants"])
        if name == "sale:started":
            assert set(data["sale"]) == SALE_KEYS
        if name == "chat:message":
            assert set(data["user"]) == {"id", "display_name", "role"}
