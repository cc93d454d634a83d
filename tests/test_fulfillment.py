"""Fulfillment: the order state machine's new steps, parcels (consolidation), ship-by, the pick
list, the carrier CSV, packing slips, tracking links, who may act, and what the buyer hears."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.orders.carriers import carrier_key, tracking_url
from livecommerce.orders.orders import OrderStatus, check_transition
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import shop_settings, utcnow
from tests.conftest import accept_invitation, sign_up
from tests.liveclient import Viewer
from tests.mailbox import Mailbox, body_text, smtp_settings
from tests.orderdesk import HOME, OFFICE, open_show, set_order_times

S = OrderStatus

ALLOWED = [
    (S.PAID, S.PACKED),
    (S.PACKED, S.SHIPPED),
    (S.SHIPPED, S.DELIVERED),
    (S.DELIVERED, S.RETURN_REQUESTED),
    (S.RETURN_REQUESTED, S.RETURN_APPROVED),
    (S.RETURN_REQUESTED, S.DELIVERED),
    (S.RETURN_APPROVED, S.REFUNDED),
    (S.RETURN_APPROVED, S.DELIVERED),
    (S.PACKED, S.REFUNDED),
]
REFUSED = [
    (S.RESERVED, S.PACKED),
    (S.PAID, S.SHIPPED),
    (S.PAID, S.DELIVERED),
    (S.PACKED, S.DELIVERED),
    (S.PACKED, S.PAID),
    (S.SHIPPED, S.PACKED),
    (S.DELIVERED, S.SHIPPED),
    (S.DELIVERED, S.RETURN_APPROVED),
    (S.RETURN_APPROVED, S.RETURN_REQUESTED),
    (S.REFUNDED, S.DELIVERED),
    (S.REFUNDED, S.RETURN_REQUESTED),
]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_fulfillment_and_return_steps_are_allowed(current: S, target: S) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_skipping_or_going_back_is_refused(current: S, target: S) -> None:
    with pytest.raises(LiveCommerceError) as caught:
        check_transition(current, target)
    assert caught.value.code is ErrorCode.INVALID_TRANSITION
    assert caught.value.status == 409


def test_tracking_links_of_common_carriers() -> None:
    expected = {
        "UPS": "https://www.ups.com/track?tracknum=1Z999",
        "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels=1Z999",
        "FedEx": "https://www.fedex.com/fedextrack/?trknbr=1Z999",
        "DHL": "https://www.dhl.com/global-en/home/tracking.html?tracking-id=1Z999",
        "Royal Mail": "https://www.royalmail.com/track-your-item#/tracking-results/1Z999",
        "DPD": "https://www.dpd.com/tracking/?parcelNumber=1Z999",
        "La Poste": "https://www.laposte.fr/outils/suivre-vos-envois?code=1Z999",
        "Colissimo": "https://www.laposte.fr/outils/suivre-vos-envois?code=1Z999",
    }
    for carrier, url in expected.items():
        assert tracking_url(carrier, "1Z999") == url, carrier
    assert carrier_key("Royal Mail") == "royal_mail"
    assert tracking_url("Pigeon Express", "1Z999") is None
    assert tracking_url("UPS", None) is None
    # A number is a path or query value, never markup or another parameter.
    assert tracking_url("ups", "A&B <x>") == "https://www.ups.com/track?tracknum=A%26B%20%3Cx%3E"


async def test_two_orders_to_one_address_make_one_parcel(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    show = await open_show(client, settings)
    first = await show.paid(HOME)
    second = await show.paid({**HOME, "city": "  springfield "}, qty=2)  # same address, retyped
    elsewhere = await show.paid(OFFICE)
    other_show = (await show.seller.call("POST", "/api/streams", {"title": "Sunday"}, status=201))[
        "stream"
    ]
    later = await show.paid(HOME, stream=other_show["id"])

    desk = await show.seller.call("GET", f"/api/orderdesk?stream_id={show.stream}", status=200)
    groups = {tuple(o["id"] for o in g["orders"]) for g in desk["to_pack"]}
    assert groups == {(first["id"], second["id"]), (elsewhere["id"],)}
    assert later["id"] not in {o["id"] for g in desk["to_pack"] for o in g["orders"]}
    everything = await show.seller.call("GET", "/api/orderdesk", status=200)
    assert len(everything["to_pack"]) == 3
    assert {s["id"] for s in everything["shows"]} == {show.stream, other_show["id"]}

    parcel = (
        await show.seller.call(
            "POST", "/api/parcels", {"order_ids": [first["id"], second["id"]]}, status=201
        )
    )["parcel"]
    assert parcel["status"] == "packed" and parcel["order_ids"] == [first["id"], second["id"]]
    assert [o["status"] for o in parcel["orders"]] == ["packed", "packed"]
    # Different address, different show: never one parcel.
    for ids in ([elsewhere["id"], later["id"]], [elsewhere["id"], later["id"]][::-1]):
        response = await show.seller.call("POST", "/api/parcels", {"order_ids": ids})
        assert response["error"]["code"] == "invalid_input"
    response = await show.seller.client.post(
        "/api/parcels", json={"order_ids": [first["id"]]}, headers=show.seller.headers
    )
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "invalid_transition"
    desk = await show.seller.call("GET", f"/api/orderdesk?stream_id={show.stream}", status=200)
    assert [g["orders"][0]["id"] for g in desk["to_pack"]] == [elsewhere["id"]]
    assert [p["id"] for p in desk["parcels"]] == [parcel["id"]]


async def test_pack_ship_deliver_and_the_buyer_hears_each_step(
    aiohttp_client: Any, settings: Settings, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server
    app = create_app(smtp_settings(settings, port))
    client = await aiohttp_client(app)
    show = await open_show(client, settings)
    first, second = await show.paid(), await show.paid()
    ears = Viewer()
    await ears.connect(str(client.make_url("/")).rstrip("/"), show.buyer.token)
    try:
        parcel = (
            await show.seller.call(
                "POST", "/api/parcels", {"order_ids": [first["id"], second["id"]]}, status=201
            )
        )["parcel"]
        path = f"/api/parcels/{parcel['id']}"
        early = await show.seller.client.post(f"{path}/deliver", headers=show.seller.headers)
        assert early.status == 409
        assert (await early.json())["error"]["code"] == "invalid_transition"
        bad = await show.seller.client.post(
            f"{path}/ship",
            json={"carrier": "UPS", "tracking_number": "<script>"},
            headers=show.seller.headers,
        )
        assert bad.status == 422
        shipped = (
            await show.seller.call(
                "POST",
                f"{path}/ship",
                {"carrier": "Royal Mail", "tracking_number": "AB123456789GB"},
                status=200,
            )
        )["parcel"]
        assert shipped["carrier"] == "royal_mail"
        assert shipped["tracking_url"].endswith("/tracking-results/AB123456789GB")
        again = await show.seller.client.post(
            f"{path}/ship",
            json={"carrier": "UPS", "tracking_number": "1Z"},
            headers=show.seller.headers,
        )
        assert again.status == 409
        seen = (await show.buyer.call("GET", f"/api/orders/{first['id']}", status=200))["order"]
        assert (seen["status"], seen["carrier"], seen["tracking"]) == (
            "shipped",
            "royal_mail",
            "AB123456789GB",
        )
        assert seen["tracking_url"] == shipped["tracking_url"]
        update = await ears.wait_for("order:update")
        assert update["order"]["id"] in (first["id"], second["id"])
        for status in ("packed", "shipped"):
            await _heard(ears, first["id"], status)
        delivered = (await show.seller.call("POST", f"{path}/deliver", status=200))["parcel"]
        assert delivered["status"] == "delivered"
        assert [o["status"] for o in delivered["orders"]] == ["delivered", "delivered"]
        heard = await _heard(ears, second["id"], "delivered")
        assert heard["tracking_url"] == shipped["tracking_url"]
    finally:
        await ears.sio.disconnect()
    for subject in ("is packed", "has shipped", "was delivered"):
        message = await mailbox.wait_for(show.buyer.email, subject)
        assert f"#{first['id']}, #{second['id']}" in str(message["Subject"])
    text = body_text(await mailbox.wait_for(show.buyer.email, "has shipped"))
    assert "Royal Mail" in text and "AB123456789GB" in text and shipped["tracking_url"] in text
    # One email per step for the parcel, not one per order (besides each order's receipt).
    steps = [m for m in mailbox.to(show.buyer.email) if "is confirmed" not in str(m["Subject"])]
    assert len(steps) == 3, [str(m["Subject"]) for m in steps]


async def _heard(ears: Viewer, order_id: int, status: str) -> dict[str, Any]:
    for _ in range(250):
        for name, data in ears.events:
            order = data.get("order", {})
            if name == "order:update" and (order.get("id"), order.get("status")) == (
                order_id,
                status,
            ):
                return order  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise AssertionError(f"order {order_id} never heard as {status}: {ears.events}")


async def test_ship_by_deadline_and_late_flag(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    show = await open_show(client, settings)
    old, fresh = await show.paid(), await show.paid(OFFICE)
    now = utcnow()
    await set_order_times(client, old["id"], paid_at=now - timedelta(days=4))
    desk = await show.seller.call("GET", "/api/orderdesk", status=200)
    by_order = {g["orders"][0]["id"]: g for g in desk["to_pack"]}
    # No shop settings row: three days.
    assert by_order[old["id"]]["late"] is True
    assert by_order[fresh["id"]]["late"] is False
    assert desk["late"] == 1
    assert desk["to_pack"][0]["orders"][0]["id"] == old["id"]  # late ones first
    deadline = by_order[fresh["id"]]["orders"][0]["ship_by"]
    paid_at = by_order[fresh["id"]]["orders"][0]["paid_at"]
    assert _days_between(paid_at, deadline) == 3
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(
            shop_settings.insert().values(seller_id=show.seller.id, ship_by_days=7, updated_at=now)
        )
    desk = await show.seller.call("GET", "/api/orderdesk", status=200)
    by_order = {g["orders"][0]["id"]: g for g in desk["to_pack"]}
    assert by_order[old["id"]]["late"] is False and desk["late"] == 0
    assert _days_between(paid_at, by_order[fresh["id"]]["ship_by"]) == 7
    # Shipped orders are never late, however old.
    await set_order_times(client, old["id"], paid_at=now - timedelta(days=30))
    parcel = (
        await show.seller.call("POST", "/api/parcels", {"order_ids": [old["id"]]}, status=201)
    )["parcel"]
    desk = await show.seller.call("GET", "/api/orderdesk", status=200)
    assert desk["parcels"][0]["late"] is True  # packed, still not shipped
    await show.seller.call(
        "POST",
        f"/api/parcels/{parcel['id']}/ship",
        {"carrier": "dhl", "tracking_number": "JD014600006281230704"},
        status=200,
    )
    desk = await show.seller.call("GET", "/api/orderdesk", status=200)
    assert desk["parcels"][0]["late"] is False and desk["late"] == 0


def _days_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)) / timedelta(days=1)


async def test_pick_list_and_carrier_csv(client: TestClient[Any, Any], settings: Settings) -> None:
    show = await open_show(client, settings)
    a, b = await show.paid(qty=2), await show.paid(qty=1)
    c = await show.paid({**OFFICE, "name": '=HYPERLINK("x")', "line2": "Suite, 4"}, qty=3)
    picks = (
        await show.seller.call(
            "GET", f"/api/orderdesk/picklist?stream_id={show.stream}", status=200
        )
    )["picks"]
    assert len(picks) == 1
    assert (picks[0]["sku_id"], picks[0]["qty"], picks[0]["orders"]) == (show.sku, 6, 3)
    assert picks[0]["title"] == "Hoodie" and picks[0]["variant"] == {"size": "M"}

    one = (
        await show.seller.call(
            "POST", "/api/parcels", {"order_ids": [a["id"], b["id"]]}, status=201
        )
    )["parcel"]
    two = (await show.seller.call("POST", "/api/parcels", {"order_ids": [c["id"]]}, status=201))[
        "parcel"
    ]
    picks = (await show.seller.call("GET", "/api/orderdesk/picklist", status=200))["picks"]
    assert picks == []  # everything is packed
    response = await show.seller.client.get(
        f"/api/orderdesk/export.csv?stream_id={show.stream}", headers=show.seller.headers
    )
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == [
        "name",
        "address_line1",
        "address_line2",
        "city",
        "region",
        "postal_code",
        "country",
        "phone",
        "items",
        "reference",
    ]
    assert len(rows) == 3  # one row per parcel, not per order
    first, second = rows[1], rows[2]
    assert first[:8] == [
        HOME["name"],
        HOME["line1"],
        HOME["line2"],
        HOME["city"],
        HOME["region"],
        HOME["postal_code"],
        HOME["country"],
        HOME["phone"],
    ]
    sku = (await show.order(a["id"]))["sku_id"]
    assert first[8].count("Hoodie (size: M)") == 2 and "2 x Hoodie" in first[8]
    assert first[9] == f"P{one['id']}-{a['id']}-{b['id']}"
    assert second[0] == '\'=HYPERLINK("x")'  # never run as a formula
    assert second[2] == "Suite, 4"
    assert second[9] == f"P{two['id']}-{c['id']}" and sku == show.sku
    # Shipped parcels leave the export.
    await show.seller.call(
        "POST",
        f"/api/parcels/{one['id']}/ship",
        {"carrier": "usps", "tracking_number": "9400111899223197428490"},
        status=200,
    )
    response = await show.seller.client.get(
        "/api/orderdesk/export.csv", headers=show.seller.headers
    )
    assert len(list(csv.reader(io.StringIO(await response.text())))) == 2


async def test_packing_slip_is_printable_and_escaped(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    show = await open_show(client, settings)
    order = await show.paid({**HOME, "name": "<b>Bea</b>"}, qty=2)
    parcel = (
        await show.seller.call("POST", "/api/parcels", {"order_ids": [order["id"]]}, status=201)
    )["parcel"]
    response = await show.seller.client.get(
        f"/api/parcels/{parcel['id']}/slip", headers=show.seller.headers
    )
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert "orderdesk.css" in page and "&lt;b&gt;Bea&lt;/b&gt;" in page and "<b>Bea" not in page
    assert "Hoodie" in page and "size: M" in page and f"#{order['id']}" in page
    stranger = await sign_up(client, "stranger")
    response = await client.get(f"/api/parcels/{parcel['id']}/slip", headers=stranger.headers)
    assert response.status == 403


async def test_only_the_seller_and_their_team_fulfil(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    show = await open_show(client, settings)
    order = await show.paid()
    stranger = await sign_up(client, "stranger")
    moderator = await sign_up(client, "moderator")
    # A stranger's desk is empty; they cannot pack, see or ship the seller's parcel.
    desk = await stranger.call("GET", "/api/orderdesk", status=200)
    assert desk["to_pack"] == [] and desk["parcels"] == [] and desk["shows"] == []
    assert (await stranger.call("GET", "/api/orderdesk/picklist", status=200))["picks"] == []
    for who in (stranger, show.buyer):
        body = await who.call("POST", "/api/parcels", {"order_ids": [order["id"]]}, status=403)
        assert body["error"]["code"] == "forbidden"
    await show.seller.call(
        "POST", f"/api/streams/{show.stream}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    desk = await moderator.call("GET", "/api/orderdesk", status=200)
    assert [g["orders"][0]["id"] for g in desk["to_pack"]] == [order["id"]]
    parcel = (
        await moderator.call("POST", "/api/parcels", {"order_ids": [order["id"]]}, status=201)
    )["parcel"]
    for who in (stranger, show.buyer):
        await who.call("GET", f"/api/parcels/{parcel['id']}", status=403)
        await who.call(
            "POST",
            f"/api/parcels/{parcel['id']}/ship",
            {"carrier": "ups", "tracking_number": "1Z"},
            status=403,
        )
    response = await stranger.client.get("/api/orderdesk/export.csv", headers=stranger.headers)
    assert len((await response.text()).strip().splitlines()) == 1  # the header alone
    # A moderator of another seller's stream cannot ship this seller's orders sold elsewhere.
    elsewhere = await show.paid(stream=None)
    await moderator.call("POST", "/api/parcels", {"order_ids": [elsewhere["id"]]}, status=403)
    await show.seller.call("GET", "/api/parcels/999999", status=404)
    await show.seller.call("POST", "/api/parcels", {"order_ids": []}, status=422)
    await show.seller.call("POST", "/api/parcels", {"order_ids": [999999]}, status=404)
