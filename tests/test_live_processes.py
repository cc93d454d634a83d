"""Two ``livecommerce serve`` processes behave as one live room.

Viewers sit on different processes, joined only through Redis (the Socket.IO manager and the room
state): a pin made on A reaches a viewer on B, a flash sale ends exactly once for everyone, and
the viewer count falls when a process dies with its sockets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio

from bench.processes import ServerProcess
from livecommerce.config import Settings
from tests.conftest import hoodie
from tests.liveclient import Viewer
from tests.shopping import OK_CARD, card


class Remote:
    """A signed-up user calling a server process over HTTP."""

    def __init__(self, session: aiohttp.ClientSession, token: str, user_id: int) -> None:
        self.session = session
        self.token = token
        self.id = user_id

    async def call(self, method: str, url: str, json: Any = None, status: int = 200) -> Any:
        async with self.session.request(
            method, url, json=json, headers={"Authorization": f"Bearer {self.token}"}
        ) as response:
            body = await response.json()
            assert response.status == status, body
            return body


async def _sign_up(session: aiohttp.ClientSession, base: str, name: str) -> Remote:
    async with session.post(
        f"{base}/api/accounts",
        json={
            "email": f"{name}-{uuid.uuid4().hex[:6]}@example.com",
            "password": "correct horse",
            "display_name": name,
        },
    ) as response:
        body = await response.json()
        assert response.status == 201, body
    session.cookie_jar.clear()
    return Remote(session, body["token"], body["user"]["id"])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as made:
        yield made


async def test_pin_on_one_process_reaches_viewers_on_the_other_and_a_sale_ends_once(
    server_processes: list[ServerProcess],
    session: aiohttp.ClientSession,
    viewers: list[Viewer],
) -> None:
    a, b = server_processes
    creator = await _sign_up(session, a.url, "creator")
    product = (
        await creator.call("POST", f"{b.url}/api/products", hoodie("TWO-1", 12), status=201)
    )["product"]
    stream = (
        await creator.call(
            "POST",
            f"{a.url}/api/streams",
            {"title": "Two processes", "lineup": [product["id"]]},
            status=201,
        )
    )["stream"]
    stream_id, sku_id = stream["id"], product["variants"][0]["id"]

    host, on_a, on_b, also_b = Viewer(), Viewer(), Viewer(), Viewer()
    viewers += [host, on_a, on_b, also_b]
    await host.connect(a.url, creator.token)
    await on_a.connect(a.url)
    await on_b.connect(b.url)
    await also_b.connect(b.url)
    for viewer in (on_a, on_b, also_b):
        assert (await viewer.call("join", {"stream_id": stream_id}))["ok"]

    # The pin is made on A; the viewers on B hear it through Redis.
    assert (await host.call("pin", {"stream_id": stream_id, "product_id": product["id"]}))["ok"]
    for viewer in (on_a, on_b, also_b):
        card = await viewer.wait_for("product:pinned", stream_id=stream_id)
        assert card["product"]["sku_id"] == sku_id and card["stock"] == 12

    # A REST twin on B, heard on A.
    await creator.call("DELETE", f"{b.url}/api/streams/{stream_id}/pin")
    await on_a.wait_for("product:unpinned", stream_id=stream_id)

    # A late joiner on B sees the sale started on A; the sale ends on time, once, everywhere,
    # although both processes run a sale clock.
    started = await host.call(
        "sale:start",
        {
            "stream_id": stream_id,
            "sku_id": sku_id,
            "sale_price": 1900,
            "quantity": 5,
            "duration_s": 10,
        },
    )
    sale = started["sale"]
    late = Viewer()
    viewers.append(late)
    await late.connect(b.url)
    state = (await late.call("join", {"stream_id": stream_id}))["state"]
    assert state["sale"]["sale_id"] == sale["sale_id"]
    assert state["sale"]["ends_at"] == sale["ends_at"]

    await asyncio.sleep(10.5)
    for viewer in (on_a, on_b, also_b, late):
        ended = await viewer.wait_for("sale:ended", sale_id=sale["sale_id"])
        assert ended["ended_at"] >= sale["ends_at"]
    await asyncio.sleep(1.0)  # a second announcement would have come by now
    for viewer in (on_a, on_b, also_b, late):
        assert viewer.count("sale:ended") == 1, viewer.events
    room = await creator.call("GET", f"{a.url}/api/streams/{stream_id}/room")
    assert room["room"]["sale"] is None


async def test_the_viewer_count_falls_when_a_process_dies(
    server_processes: list[ServerProcess],
    session: aiohttp.ClientSession,
    viewers: list[Viewer],
) -> None:
    a, b = server_processes
    creator = await _sign_up(session, a.url, "creator")
    stream = (await creator.call("POST", f"{a.url}/api/streams", {"title": "Crash"}, status=201))[
        "stream"
    ]
    stream_id = stream["id"]
    watcher = Viewer()
    viewers.append(watcher)
    await watcher.connect(a.url)
    assert (await watcher.call("join", {"stream_id": stream_id}))["ok"]
    doomed = [Viewer() for _ in range(3)]
    viewers += doomed
    for viewer in doomed:
        await viewer.connect(b.url)
        assert (await viewer.call("join", {"stream_id": stream_id}))["ok"]
    await watcher.wait_for("viewers", count=4)

    # Heartbeats (every 0.5 s here) keep everyone counted well past one entry's lifetime.
    await asyncio.sleep(3.5)
    room = await creator.call("GET", f"{a.url}/api/streams/{stream_id}/room")
    assert room["room"]["viewers"] == 4

    # B dies without a word: its sockets are never refreshed again and drop out of the count.
    watcher.events.clear()
    b.kill()
    await watcher.wait_for("viewers", count=1)
    room = await creator.call("GET", f"{a.url}/api/streams/{stream_id}/room")
    assert room["room"]["viewers"] == 1


async def test_log_out_on_one_process_disconnects_the_socket_on_the_other(
    server_processes: list[ServerProcess],
    session: aiohttp.ClientSession,
    viewers: list[Viewer],
) -> None:
    a, b = server_processes
    ava = await _sign_up(session, a.url, "ava")
    await ava.call("GET", f"{a.url}/api/me")  # A's token cache now knows the token
    socket = Viewer()
    viewers.append(socket)
    await socket.connect(a.url, ava.token)
    assert (await socket.call("clock:sync", {}))["ok"]

    started = asyncio.get_running_loop().time()
    await ava.call("DELETE", f"{b.url}/api/sessions")
    await socket.wait_disconnected(within_s=1.0)
    assert asyncio.get_running_loop().time() - started < 1.0
    # A forgot the token at once too (its cache would have believed it for 15 s).
    await ava.call("GET", f"{a.url}/api/me", status=401)
    again = Viewer()
    refused: list[Any] = []
    again.sio.on("connect_error", lambda data: refused.append(data), namespace="/live")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await again.connect(a.url, ava.token)
    assert refused[0]["message"] == "not_authenticated"


async def test_a_purchase_on_one_process_is_told_once_on_every_process(
    server_processes: list[ServerProcess],
    session: aiohttp.ClientSession,
    viewers: list[Viewer],
    localstripe_url: str,
) -> None:
    """Order events travel between processes, and so do Socket.IO broadcasts: the room and the
    buyer hear each change once, not once per process."""
    a, b = server_processes
    creator = await _sign_up(session, a.url, "creator")
    buyer = await _sign_up(session, a.url, "buyer")
    product = (
        await creator.call("POST", f"{a.url}/api/products", hoodie("ONCE-1", 5), status=201)
    )["product"]
    stream = (
        await creator.call(
            "POST", f"{a.url}/api/streams", {"title": "Once", "lineup": [product["id"]]}, 201
        )
    )["stream"]
    stream_id, sku_id = stream["id"], product["variants"][0]["id"]
    stripe_js = Settings(stripe_secret_key="sk_test_livecommerce", stripe_api_base=localstripe_url)
    pm = await card(stripe_js, OK_CARD)
    await buyer.call("POST", f"{a.url}/api/cards", {"payment_method_id": pm}, status=201)

    own, on_a, on_b = Viewer(), Viewer(), Viewer()
    viewers += [own, on_a, on_b]
    await own.connect(a.url, buyer.token)
    await on_a.connect(a.url)
    await on_b.connect(b.url)
    for viewer in (on_a, on_b):
        assert (await viewer.call("join", {"stream_id": stream_id}))["ok"]

    # One tap over HTTP on B; the buyer's socket is on A.
    async with session.post(
        f"{b.url}/api/purchases",
        json={"sku_id": sku_id, "stream_id": stream_id},
        headers={"Authorization": f"Bearer {buyer.token}", "Idempotency-Key": "once-1"},
    ) as response:
        body = await response.json()
        assert response.status == 201, body
    assert body["order"]["status"] == "paid"
    update = await own.wait_for("order:update")
    assert update["order"] == body["order"]
    for viewer in (on_a, on_b):
        feed = await viewer.wait_for("purchase:feed", stream_id=stream_id)
        assert feed["sku_id"] == sku_id and feed["qty"] == 1
        await viewer.wait_for("stock:changed", stream_id=stream_id, available=4)
    await asyncio.sleep(1.0)  # a second telling would have come by now
    assert own.count("order:update") == 1, own.events
    for viewer in (on_a, on_b):
        assert viewer.count("purchase:feed") == 1, viewer.events
        assert viewer.count("order:update") == 0  # the buyer's own room only


async def test_pins_back_to_back_on_two_processes_reach_every_viewer_in_one_order(
    server_processes: list[ServerProcess],
    session: aiohttp.ClientSession,
    viewers: list[Viewer],
) -> None:
    """Moderators on both processes pin as fast as they can; every viewer, on either process,
    sees the cards in one order (no two viewers disagree on which came first) and ends on the
    card the room holds."""
    a, b = server_processes
    creator = await _sign_up(session, a.url, "creator")
    pins = 25  # per moderator, within the socket's event burst
    products = [  # one per pin: each card is told apart by its product
        (await creator.call("POST", f"{a.url}/api/products", hoodie(f"ORD-{n}"), status=201))[
            "product"
        ]["id"]
        for n in range(2 * pins)
    ]
    stream = (
        await creator.call(
            "POST", f"{a.url}/api/streams", {"title": "Order", "lineup": products}, status=201
        )
    )["stream"]
    stream_id = stream["id"]
    host_a, host_b = Viewer(), Viewer()
    watchers = [Viewer() for _ in range(6)]
    viewers += [host_a, host_b, *watchers]
    await host_a.connect(a.url, creator.token)
    await host_b.connect(b.url, creator.token)
    for n, viewer in enumerate(watchers):
        await viewer.connect((a, b)[n % 2].url)
        assert (await viewer.call("join", {"stream_id": stream_id}))["ok"]

    acks = await asyncio.gather(
        *(
            host.call("pin", {"stream_id": stream_id, "product_id": products[2 * n + h]})
            for n in range(pins)
            for h, host in enumerate((host_a, host_b))
        )
    )
    assert all(ack["ok"] for ack in acks), acks
    await asyncio.sleep(1.0)  # every broadcast has arrived by now
    room = (await creator.call("GET", f"{b.url}/api/streams/{stream_id}/room"))["room"]

    def seen(viewer: Viewer) -> list[int]:
        return [
            data["product"]["product_id"]
            for event, data in viewer.events
            if event == "product:pinned"
        ]

    last = room["pinned"]["product_id"]
    orders = [seen(viewer) for viewer in watchers]
    for order in orders:
        assert order and order[-1] == last, (order, last)
        assert len(set(order)) == len(order)  # no card twice
    # Any two cards two viewers both saw came in the same order to both.
    for one in orders:
        rank = {card: i for i, card in enumerate(one)}
        for other in orders:
            common = [card for card in other if card in rank]
            assert [rank[card] for card in common] == sorted(rank[card] for card in common)
