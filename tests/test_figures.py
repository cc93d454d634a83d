"""The show's figures: from real purchases through the buy use-case, real Socket.IO viewers
counted by the room's heartbeat, and a pin and a flash sale marked on the timeline."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import stream_moments
from tests.conftest import accept_invitation, hoodie, sign_up
from tests.liveclient import Viewer
from tests.shopping import OK_CARD, buy, card

SAMPLE_S = 0.5


async def _moments(client: TestClient[Any, Any], stream_id: int, kind: str) -> int:
    async with client.app[ENGINE].connect() as conn:
        count = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    stream_moments.c.stream_id == stream_id, stream_moments.c.kind == kind
                )
            )
        ).scalar_one()
    return int(count)


async def test_figures_of_a_show_with_viewers_a_pin_a_sale_and_purchases(
    aiohttp_client: Any, settings: Settings, viewers: list[Viewer]
) -> None:
    client = await aiohttp_client(
        create_app(replace(settings, viewer_heartbeat_s=0.2, figures_sample_s=SAMPLE_S))
    )
    creator = await sign_up(client, "creator")
    moderator = await sign_up(client, "moderator")
    ana, bo = await sign_up(client, "ana"), await sign_up(client, "bo")
    product = (
        await creator.call(
            "POST", "/api/products", hoodie(f"F-{uuid.uuid4().hex[:6]}", 20), status=201
        )
    )["product"]
    sku = product["variants"][0]["id"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product["id"]]}, status=201
        )
    )["stream"]["id"]
    await creator.call(
        "POST", f"/api/streams/{stream}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    for buyer in (ana, bo):
        pm = await card(settings, OK_CARD)
        await buyer.call("POST", "/api/cards", {"payment_method_id": pm}, status=201)

    # Four people watch: two buyers, and two anonymous viewers.
    url = str(client.make_url("/")).rstrip("/")
    watching = [Viewer() for _ in range(4)]
    viewers += watching
    for viewer, token in zip(watching, (ana.token, bo.token, None, None), strict=True):
        await viewer.connect(url, token)
        assert (await viewer.call("join", {"stream_id": stream}))["ok"]
    started = time.monotonic()
    await watching[0].wait_for("viewers", count=4)
    await asyncio.sleep(SAMPLE_S * 2)  # a sample is taken while all four watch

    await moderator.call(
        "POST", f"/api/streams/{stream}/pin", {"product_id": product["id"]}, status=201
    )
    await moderator.call(
        "POST",
        f"/api/streams/{stream}/sales",
        {"sku_id": sku, "sale_price": 1500, "quantity": 5, "duration_s": 60, "per_buyer_limit": 2},
        status=201,
    )
    status, body = await buy(ana, sku, qty=2, stream_id=stream)
    assert status == 201 and body["order"]["status"] == "paid", body
    status, body = await buy(bo, sku, qty=1, stream_id=stream)
    assert status == 201 and body["order"]["status"] == "paid", body
    # One viewer leaves: the peak stays 4, the later samples say 3.
    await watching[3].sio.disconnect()
    await watching[0].wait_for("viewers", count=3)
    await asyncio.sleep(SAMPLE_S * 3)
    elapsed = time.monotonic() - started

    # Only the team reads the figures.
    refused = await ana.call("GET", f"/api/streams/{stream}/figures", status=403)
    assert refused["error"]["code"] == "forbidden"
    missing = await creator.call("GET", "/api/streams/999999/figures", status=404)
    assert missing["error"]["code"] == "not_found"

    figures = (await moderator.call("GET", f"/api/streams/{stream}/figures", status=200))["figures"]
    assert figures["gross"] == [{"amount": 3 * 1500, "currency": "USD"}]
    assert (figures["units"], figures["orders"], figures["buyers"]) == (3, 2, 2)
    assert figures["peak_viewers"] == 4
    assert 3 <= figures["average_viewers"] <= 4
    assert figures["conversion"] == 0.5  # 2 distinct buyers / 4 peak viewers
    (row,) = figures["products"]
    assert row == {
        "product_id": product["id"],
        "title": "Hoodie",
        "units": 3,
        "orders": 2,
        "gross": {"USD": 4500},
    }
    timeline = figures["timeline"]
    kinds = [(m["kind"], m["product_id"]) for m in timeline["moments"]]
    assert kinds == [("pin", product["id"]), ("sale", product["id"])]
    assert timeline["moments"][0]["label"] == "Hoodie"
    assert sum(p["units"] for p in timeline["purchases"]) == 3
    assert all(timeline["start"] <= p["at"] <= timeline["end"] for p in timeline["purchases"])
    pin_at = timeline["moments"][0]["at"]
    assert all(p["at"] >= pin_at - timeline["bucket_ms"] for p in timeline["purchases"])
    counts = [v for _at, v in timeline["viewers"]]
    assert max(counts) == 4 and counts[-1] == 3

    # Cheap: one sample per stream per period across the app, not one per viewer or beat
    # (five beats a second here, each heard by four viewers).
    samples = await _moments(client, stream, "viewers")
    assert 2 <= samples <= elapsed / SAMPLE_S + 2


async def test_a_burst_of_pins_is_noted_in_a_few_transactions(
    aiohttp_client: Any, settings: Settings
) -> None:
    """Fifty pins at once: every one is on the timeline, written by one writer in batches
    rather than fifty transactions queueing for the database (SQLite's single write lock)."""
    client = await aiohttp_client(create_app(settings))
    creator = await sign_up(client, "creator")
    ids = []
    for name in ("a", "b"):
        body = hoodie(f"{name.upper()}-{uuid.uuid4().hex[:6]}", 5)
        ids.append((await creator.call("POST", "/api/products", body, status=201))["product"]["id"])
    stream = (
        await creator.call("POST", "/api/streams", {"title": "Burst", "lineup": ids}, status=201)
    )["stream"]["id"]
    engine = client.app[ENGINE]
    commits: list[float] = []

    def committed(_conn: Any) -> None:
        commits.append(time.monotonic())

    sa.event.listen(engine.sync_engine, "commit", committed)
    try:
        pins = [
            creator.call("POST", f"/api/streams/{stream}/pin", {"product_id": ids[i % 2]})
            for i in range(50)
        ]
        await asyncio.gather(*pins)
    finally:
        sa.event.remove(engine.sync_engine, "commit", committed)
    assert await _moments(client, stream, "pin") == 50
    # every other commit of the app meanwhile counts too: still far fewer than one per pin
    assert len(commits) < 25, len(commits)
