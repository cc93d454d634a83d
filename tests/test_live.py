"""Live rooms with real Socket.IO clients against the real app, Redis and SQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.live.rooms.rooms import ROOMS
from livecommerce.live.transport.joins import SharedSnapshots
from livecommerce.platform.resources import REDIS
from tests.conftest import Account, accept_invitation, hoodie, sign_up
from tests.liveclient import Viewer
from tests.test_checkout import OK_CARD
from tests.test_checkout import card as saved_card_for


@pytest.fixture
async def live(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


async def _stage(client: TestClient[Any, Any]) -> tuple[Account, Account, Account, int, int, int]:
    creator = await sign_up(client, "creator")
    moderator = await sign_up(client, "moderator")
    viewer = await sign_up(client, "viewer")
    product = (
        await creator.call(
            "POST", "/api/products", hoodie(f"L-{uuid.uuid4().hex[:6]}", 20), status=201
        )
    )["product"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product["id"]]}, status=201
        )
    )["stream"]
    await creator.call(
        "POST", f"/api/streams/{stream['id']}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    return creator, moderator, viewer, stream["id"], product["id"], product["variants"][0]["id"]


def _url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def test_pin_sale_buy_and_chat_reach_viewers(
    live: TestClient[Any, Any], viewers: list[Viewer], settings: Settings
) -> None:
    _creator, moderator, buyer, stream_id, product_id, sku_id = await _stage(live)
    pm = await saved_card_for(settings, OK_CARD)
    await buyer.call("POST", "/api/cards", {"payment_method_id": pm}, status=201)
    url = _url(live)
    mod, fan, anon = Viewer(), Viewer(), Viewer()
    viewers += [mod, fan, anon]
    await mod.connect(url, moderator.token)
    await fan.connect(url, buyer.token)
    await anon.connect(url)
    for v in (mod, fan, anon):
        joined = await v.call("join", {"stream_id": stream_id})
        assert joined["ok"] and joined["state"]["stream_id"] == stream_id
    assert (await anon.wait_for("room:state"))["viewers"] >= 1

    refused = await fan.call("pin", {"stream_id": stream_id, "product_id": product_id})
    assert refused["error"]["code"] == "forbidden"
    pinned = await mod.call("pin", {"stream_id": stream_id, "product_id": product_id})
    assert pinned["ok"]
    card = await anon.wait_for("product:pinned", stream_id=stream_id)
    assert card["product"]["sku_id"] == sku_id and card["stock"] == 20

    started = await mod.call(
        "sale:start",
        {
            "stream_id": stream_id,
            "sku_id": sku_id,
            "sale_price": 2900,
            "quantity": 3,
            "duration_s": 10,
            "per_buyer_limit": 2,
        },
    )
    assert started["ok"]
    sale = (await anon.wait_for("sale:started"))["sale"]
    assert sale["sale_price"] == 2900 and sale["ends_at"] - sale["starts_at"] == 10_000
    clock = await anon.call("clock:sync", {"client_time": 1})
    assert abs(clock["server_time"] - time.time() * 1000) < 5_000

    # A late joiner sees the pinned card and the sale.
    late = Viewer()
    viewers.append(late)
    await late.connect(url)
    state = (await late.call("join", {"stream_id": stream_id}))["state"]
    assert state["pinned"]["product_id"] == product_id
    assert state["sale"]["sale_id"] == sale["sale_id"]

    anonymous_buy = await anon.call("buy", {"sku_id": sku_id, "idempotency_key": "a"})
    assert anonymous_buy["error"]["code"] == "not_authenticated"
    bought = await fan.call(
        "buy", {"sku_id": sku_id, "qty": 2, "idempotency_key": "k1", "stream_id": stream_id}
    )
    assert bought["ok"] and bought["order"]["unit_price"]["amount"] == 2900
    assert bought["order"]["status"] == "paid"  # one tap with the saved card
    over = await fan.call(
        "buy", {"sku_id": sku_id, "qty": 1, "idempotency_key": "k2", "stream_id": stream_id}
    )
    assert over["error"]["code"] == "limit_exceeded"
    feed = await anon.wait_for("purchase:feed")
    assert feed["qty"] == 2 and "buyer_id" not in feed
    stock = await anon.wait_for("stock:changed", sku_id=sku_id)
    assert stock["available"] == 18

    said = await fan.call("chat:send", {"stream_id": stream_id, "text": "love it"})
    assert said["ok"]
    message = await anon.wait_for("chat:message")
    assert message["text"] == "love it"
    too_fast = await fan.call("chat:send", {"stream_id": stream_id, "text": "again"})
    assert too_fast["error"]["code"] == "rate_limited"
    assert (await anon.call("chat:send", {"stream_id": stream_id, "text": "hi"}))["error"][
        "code"
    ] == "not_authenticated"
    deleted = await mod.call("chat:delete", {"stream_id": stream_id, "message_id": message["id"]})
    assert deleted["ok"]
    await anon.wait_for("chat:deleted", id=message["id"])
    muted = await mod.call(
        "chat:mute", {"stream_id": stream_id, "user_id": buyer.id, "seconds": 60}
    )
    assert muted["ok"]
    await asyncio.sleep(0.8)
    silenced = await fan.call("chat:send", {"stream_id": stream_id, "text": "hello?"})
    assert silenced["error"]["code"] == "forbidden"

    for _ in range(5):
        assert (await anon.call("reaction:send", {"stream_id": stream_id, "kind": "fire"}))["ok"]
    burst = await anon.wait_for("reactions")
    assert burst["counts"]["fire"] >= 1
    assert anon.count("reactions") <= 2

    stopped = await mod.call("sale:stop", {"stream_id": stream_id, "sale_id": sale["sale_id"]})
    assert stopped["ok"]
    await anon.wait_for("sale:ended", sale_id=sale["sale_id"])
    await asyncio.sleep(0.3)
    assert anon.count("sale:ended") == 1


async def test_bad_events_get_error_acks(live: TestClient[Any, Any], viewers: list[Viewer]) -> None:
    _c, _m, buyer, stream_id, _p, _s = await _stage(live)
    v = Viewer()
    viewers.append(v)
    await v.connect(_url(live), buyer.token)
    assert (await v.call("join", {"stream_id": "x"}))["error"]["code"] == "invalid_input"
    assert (await v.call("join", None))["error"]["code"] == "invalid_input"
    assert (await v.call("join", {"stream_id": 999999}))["error"]["code"] == "not_found"
    assert (await v.call("nonsense", {}))["error"]["code"] == "unknown_event"
    assert (await v.call("chat:send", {"stream_id": stream_id, "text": "x" * 5000}))["error"][
        "code"
    ] == "payload_too_large"
    assert (await v.call("buy", [1, 2, 3]))["error"]["code"] == "invalid_input"
    assert (await v.call("clock:sync", {}))["ok"]  # still connected and answering
    bad = Viewer()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await bad.connect(_url(live), "not-a-token")


async def test_chat_moderation_has_rest_twins(
    live: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    _creator, moderator, buyer, stream_id, _p, _s = await _stage(live)
    fan, anon = Viewer(), Viewer()
    viewers += [fan, anon]
    await fan.connect(_url(live), buyer.token)
    await anon.connect(_url(live))
    for v in (fan, anon):
        assert (await v.call("join", {"stream_id": stream_id}))["ok"]
    base = f"/api/streams/{stream_id}"

    message = (await fan.call("chat:send", {"stream_id": stream_id, "text": "first!"}))["message"]
    # Viewers may not moderate, over REST either; bad input is named.
    await buyer.call("DELETE", f"{base}/chat/{message['id']}", status=403)
    await buyer.call("PUT", f"{base}/chat/slowmode", {"seconds": 5}, status=403)
    bad = await moderator.call("PUT", f"{base}/chat/slowmode", {"seconds": -1}, status=422)
    assert bad["error"]["code"] == "invalid_input"
    await moderator.call("DELETE", f"{base}/chat/0123456789ab", status=404)

    await moderator.call("DELETE", f"{base}/chat/{message['id']}")
    await anon.wait_for("chat:deleted", id=message["id"])
    room = (await moderator.call("GET", f"{base}/room"))["room"]
    assert message["id"] not in [m["id"] for m in room["chat"]]

    words = await moderator.call(
        "PUT", f"{base}/chat/blocklist", {"words": ["Spam", "scam ", "spam"]}
    )
    assert words["words"] == ["scam", "spam"]
    assert (await moderator.call("GET", f"{base}/room"))["room"]["chat_settings"][
        "blocked_words"
    ] == ["scam", "spam"]
    assert (await buyer.call("GET", f"{base}/room"))["room"]["chat_settings"][
        "blocked_words"
    ] is None  # the list itself is for the team only
    await asyncio.sleep(0.8)
    refused = await fan.call("chat:send", {"stream_id": stream_id, "text": "free SPAMcoin"})
    assert refused["error"]["code"] == "invalid_input"

    slow = await moderator.call("PUT", f"{base}/chat/slowmode", {"seconds": 30})
    assert slow["seconds"] == 30
    await anon.wait_for("chat:slowmode", seconds=30)
    assert (await fan.call("chat:send", {"stream_id": stream_id, "text": "one"}))["ok"]
    again = await fan.call("chat:send", {"stream_id": stream_id, "text": "two"})
    assert again["error"]["code"] == "rate_limited" and "30 s" in again["error"]["message"]

    muted = await moderator.call(
        "POST", f"{base}/mutes", {"user_id": buyer.id, "seconds": 60}, status=201
    )
    assert muted["until"] > time.time() * 1000 + 50_000
    heard = await anon.wait_for("chat:muted", user_id=buyer.id)
    assert heard["until"] == muted["until"]
    await moderator.call("PUT", f"{base}/chat/slowmode", {"seconds": 0})
    silenced = await fan.call("chat:send", {"stream_id": stream_id, "text": "hello?"})
    assert silenced["error"]["code"] == "forbidden"
    team = await moderator.call(
        "POST", f"{base}/mutes", {"user_id": moderator.id, "seconds": 60}, status=403
    )
    assert team["error"]["code"] == "forbidden"
    # A console opened after the mute learns of it: the team may list who is muted.
    listed = await moderator.call("GET", f"{base}/mutes", status=200)
    assert listed["mutes"] == [
        {"user_id": buyer.id, "display_name": heard["display_name"], "until": muted["until"]}
    ]
    assert (await buyer.call("GET", f"{base}/mutes", status=403))["error"]["code"] == "forbidden"
    other = await sign_up(live, "other")
    await moderator.call("POST", f"{base}/mutes", {"user_id": other.id, "seconds": 10}, status=201)
    assert [m["user_id"] for m in (await moderator.call("GET", f"{base}/mutes"))["mutes"]] == [
        other.id,
        buyer.id,
    ]  # soonest lifted first
    # Its time comes (the mute's own key expires with it; the list drops it by its score).
    state = live.app[ROOMS].state
    await live.app[REDIS].zadd(state._key(stream_id, "mutes"), {str(other.id): 1}, xx=True)
    listed = await moderator.call("GET", f"{base}/mutes")
    assert [m["user_id"] for m in listed["mutes"]] == [buyer.id]  # a lapsed mute is gone
    lifted = await moderator.call("DELETE", f"{base}/mutes/{buyer.id}", status=200)
    assert lifted["lifted"] is True
    assert (await moderator.call("GET", f"{base}/mutes"))["mutes"] == []


async def test_a_pin_shows_the_chosen_sku_of_a_lineup_product(live: TestClient[Any, Any]) -> None:
    creator, moderator, _buyer, stream_id, product_id, sku_id = await _stage(live)
    other = (
        await creator.call(
            "POST", "/api/products", hoodie(f"O-{uuid.uuid4().hex[:6]}", 5, 1200), status=201
        )
    )["product"]
    base = f"/api/streams/{stream_id}/pin"
    wrong_sku = {"product_id": product_id, "sku_id": other["variants"][0]["id"]}
    refused = await moderator.call("POST", base, wrong_sku, status=422)
    assert refused["error"]["message"] == "that SKU is not of this product"
    off_lineup = await moderator.call("POST", base, {"product_id": other["id"]}, status=422)
    assert "lineup" in off_lineup["error"]["message"]
    pinned = await moderator.call(
        "POST", base, {"product_id": product_id, "sku_id": sku_id}, status=201
    )
    assert pinned["pinned"]["sku_id"] == sku_id
    assert (pinned["pinned"]["price"], pinned["pinned"]["currency"]) == (4900, "USD")
    assert pinned["pinned"]["title"] == "Hoodie"
    room = (await moderator.call("GET", f"/api/streams/{stream_id}/room"))["room"]
    assert room["pinned"] == pinned["pinned"] and room["stock"] == {str(sku_id): 20}


async def test_heartbeats_keep_viewers_counted_until_they_leave(
    aiohttp_client: Any, settings: Settings, viewers: list[Viewer]
) -> None:
    # Heartbeat every 0.5 s, so an entry nobody refreshes lives 1.5 s.
    client = await aiohttp_client(create_app(replace(settings, viewer_heartbeat_s=0.5)))
    creator = await sign_up(client, "creator")
    stream = (await creator.call("POST", "/api/streams", {"title": "Beat"}, status=201))["stream"]
    a, b = Viewer(), Viewer()
    viewers += [a, b]
    for v in (a, b):
        await v.connect(_url(client))
        assert (await v.call("join", {"stream_id": stream["id"]}))["ok"]
    await asyncio.sleep(3.5)  # more than two lifetimes of an entry
    room = (await creator.call("GET", f"/api/streams/{stream['id']}/room"))["room"]
    assert room["viewers"] == 2
    assert a.count("viewers") >= 3  # the count is repeated with the beats
    await b.sio.disconnect()
    await a.wait_for("viewers", count=1)


async def test_socketio_buys_meet_the_same_stream_checks_and_unpaid_bounds(
    live: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    _creator, _moderator, buyer, stream_id, _product_id, sku_id = await _stage(live)
    other = await sign_up(live, "other")
    elsewhere = (
        await other.call("POST", "/api/streams", {"title": "Other", "lineup": []}, status=201)
    )["stream"]["id"]
    fan = Viewer()
    viewers.append(fan)
    await fan.connect(_url(live), buyer.token)
    missing = await fan.call(
        "buy", {"sku_id": sku_id, "idempotency_key": "s1", "stream_id": 999_999}
    )
    assert missing["error"]["code"] == "not_found" and "999999" in missing["error"]["message"]
    foreign = await fan.call(
        "buy", {"sku_id": sku_id, "idempotency_key": "s1", "stream_id": elsewhere}
    )
    assert foreign["error"]["code"] == "not_in_lineup"
    bought = await fan.call(
        "buy", {"sku_id": sku_id, "qty": 5, "idempotency_key": "s1", "stream_id": stream_id}
    )
    assert bought["ok"] and bought["order"]["status"] == "reserved"  # no saved card: unpaid
    more = await fan.call("buy", {"sku_id": sku_id, "idempotency_key": "s2"})
    assert more["error"]["code"] == "too_many_unpaid"


async def test_a_client_that_starts_on_long_polling_upgrades_and_hears_the_room(
    live: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    """socket.io clients start on HTTP long-polling by default, then upgrade to a websocket:
    engine.io's own handshake and writer serve that socket (one that starts on websocket is
    written to as its packets are sent)."""
    _creator, moderator, _viewer, stream_id, product_id, sku_id = await _stage(live)
    url = _url(live)
    mod, upgraded = Viewer(), Viewer()
    viewers += [mod, upgraded]
    await mod.connect(url, moderator.token)
    await upgraded.connect(url, transports=("polling", "websocket"))
    assert (await upgraded.call("join", {"stream_id": stream_id}))["ok"]
    deadline = time.monotonic() + 5
    # polled: the client tells no event of its upgrade
    while upgraded.sio.transport() != "websocket" and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert upgraded.sio.transport() == "websocket"
    for _ in range(2):  # after the upgrade, broadcasts and acks still reach it
        assert (await mod.call("pin", {"stream_id": stream_id, "product_id": product_id}))["ok"]
        assert (await mod.call("unpin", {"stream_id": stream_id}))["ok"]
    assert (await mod.call("pin", {"stream_id": stream_id, "product_id": product_id}))["ok"]
    deadline = time.monotonic() + 5
    while upgraded.count("product:pinned") < 3 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    cards = [data for name, data in upgraded.events if name == "product:pinned"]
    assert len(cards) == 3 and cards[-1]["product"]["sku_id"] == sku_id
    clock = await upgraded.call("clock:sync", {"client_time": 1})
    assert abs(clock["server_time"] - time.time() * 1000) < 5_000


async def test_a_crowd_joining_shares_a_snapshot_that_a_pin_makes_stale_at_once(
    aiohttp_client: Any, settings: Settings, viewers: list[Viewer]
) -> None:
    """Anonymous joiners of one moment share one ``room:state`` read and one presence write;
    a joiner right after a pin (within the sharing window) still sees that pin."""
    live = await aiohttp_client(create_app(replace(settings, sockets_per_address=100)))
    _creator, moderator, _viewer, stream_id, product_id, _sku = await _stage(live)
    url = _url(live)
    mod = Viewer()
    crowd = [Viewer() for _ in range(30)]
    viewers += [mod, *crowd]
    await mod.connect(url, moderator.token)
    await asyncio.gather(*(v.connect(url) for v in crowd[:-1]))
    joined = await asyncio.gather(*(v.call("join", {"stream_id": stream_id}) for v in crowd[:-1]))
    assert all(j["ok"] and j["state"]["pinned"] is None for j in joined)
    assert max(j["state"]["viewers"] for j in joined) == len(crowd) - 1
    for viewer in crowd[:-1]:
        assert (await viewer.wait_for("room:state"))["stream_id"] == stream_id

    late = crowd[-1]
    await late.connect(url)
    await crowd[0].call("join", {"stream_id": stream_id})  # a fresh shared read, then a pin
    assert (await mod.call("pin", {"stream_id": stream_id, "product_id": product_id}))["ok"]
    state = (await late.call("join", {"stream_id": stream_id}))["state"]
    assert state["pinned"]["product_id"] == product_id
    assert state["viewers"] == len(crowd)


async def test_shared_snapshots_are_read_once_and_never_older_than_a_broadcast() -> None:
    heard = {"stream:1": 0}
    reads: list[int] = []

    async def read(stream_id: int) -> dict[str, Any]:
        reads.append(stream_id)
        await asyncio.sleep(0.01)
        if len(reads) == 3:
            heard["stream:1"] += 1  # a broadcast while this read is under way
        return {"read": len(reads)}

    shared = SharedSnapshots(read, lambda room: heard.setdefault(room, 0), share_s=60)
    states = await asyncio.gather(*(shared.get(1, "stream:1") for _ in range(20)))
    assert states == [{"read": 1}] * 20 and len(reads) == 1
    assert await shared.get(1, "stream:1") == {"read": 1}
    heard["stream:1"] += 1  # the room heard a broadcast: the shared read is stale
    assert await shared.get(1, "stream:1") == {"read": 2}
    heard["stream:1"] += 1
    # the third read saw a broadcast come meanwhile: read again
    assert await shared.get(1, "stream:1") == {"read": 4}


async def test_a_restock_or_count_shows_in_the_room_at_once(
    live: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    """The seller's stock changes (an adjustment, an edit of the product) reach the rooms that
    list the product: a card that said "sold out" offers the units again, and a count down
    shows too."""
    creator, moderator, buyer, stream_id, product_id, sku_id = await _stage(live)
    anon = Viewer()
    viewers.append(anon)
    await anon.connect(_url(live))
    assert (await anon.call("join", {"stream_id": stream_id}))["ok"]
    pinned = await (await _as(live, moderator, viewers)).call(
        "pin", {"stream_id": stream_id, "product_id": product_id}
    )
    assert pinned["ok"]
    await anon.wait_for("product:pinned", stream_id=stream_id)

    taken = {"delta": -20, "reason": "damaged"}
    await creator.call("POST", f"/api/skus/{sku_id}/adjustments", taken, status=201)
    out = await anon.wait_for("stock:changed", sku_id=sku_id, available=0)
    assert out["stream_id"] == stream_id
    received = {"delta": 5, "reason": "received"}
    await creator.call("POST", f"/api/skus/{sku_id}/adjustments", received, status=201)
    back = await anon.wait_for("stock:changed", sku_id=sku_id, available=5)
    assert back["stream_id"] == stream_id
    code = (await creator.call("GET", f"/api/products/{product_id}"))["product"]["variants"][0][
        "sku"
    ]
    edit = {"variants": [{"sku": code, "stock_on_hand": 12}]}
    await creator.call("PATCH", f"/api/products/{product_id}", edit, status=200)
    await anon.wait_for("stock:changed", sku_id=sku_id, available=12)
    # A buy still shows as before (the push is the same one).
    response = await live.post(
        "/api/purchases",
        json={"sku_id": sku_id, "qty": 1, "stream_id": stream_id, "pay_with_saved_card": False},
        headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status == 201, await response.text()
    await anon.wait_for("stock:changed", sku_id=sku_id, available=11)


async def _as(client: TestClient[Any, Any], account: Account, viewers: list[Viewer]) -> Viewer:
    viewer = Viewer()
    viewers.append(viewer)
    await viewer.connect(_url(client), account.token)
    return viewer
