"""Returns: the shop's policy and window, request, approve (RMA) or refuse, and the receipt that
refunds through Stripe and restocks, once however many "received" calls race."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.orders.orders import Order, OrderStatus
from livecommerce.orders.returns import OrderReturn, refund_for
from livecommerce.platform.db.tables import refunds, utcnow
from tests.conftest import sign_up
from tests.mailbox import Mailbox, body_text, smtp_settings
from tests.orderdesk import count_rows, open_show, set_order_times
from tests.shopping import stock_on_hand


async def _post(who: Any, path: str, body: Any = None) -> tuple[int, Any]:
    response = await who.client.post(path, json=body, headers=who.headers)
    return response.status, await response.json()


async def test_policy_and_window(client: TestClient[Any, Any], settings: Settings) -> None:
    show = await open_show(client, settings)
    policy = await show.seller.call("GET", "/api/shop/returns-policy", status=200)
    assert policy["policy"] == {"return_window_days": 30, "free_returns": True}
    changed = await show.seller.call(
        "PUT",
        "/api/shop/returns-policy",
        {"return_window_days": 14, "free_returns": False},
        status=200,
    )
    assert changed["policy"] == {"return_window_days": 14, "free_returns": False}
    await show.seller.call(
        "PUT", "/api/shop/returns-policy", {"return_window_days": 400, "free_returns": True}, 422
    )
    # Before delivery: no return.
    paid = await show.paid()
    status, body = await _post(
        show.buyer, f"/api/orders/{paid['id']}/returns", {"qty": 1, "reason": "too big"}
    )
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    order = await show.delivered(qty=2)
    seen = await show.buyer.call("GET", f"/api/orders/{order['id']}/returns", status=200)
    assert seen["policy"]["return_window_days"] == 14 and seen["returnable_qty"] == 2
    assert seen["return_by"] is not None and seen["returns"] == []
    # Past the window: refused, and it says until when it was open.
    await set_order_times(client, order["id"], delivered_at=utcnow() - timedelta(days=15))
    status, body = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "too big"}
    )
    assert status == 409 and body["error"]["return_by"]
    await set_order_times(client, order["id"], delivered_at=utcnow() - timedelta(days=13))
    status, body = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 3, "reason": "too big"}
    )
    assert status == 422 and body["error"]["returnable_qty"] == 2
    status, body = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "   "}
    )
    assert status == 422
    status, body = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "too big"}
    )
    assert status == 201, body
    assert body["order"]["status"] == "return_requested"
    assert body["return"]["status"] == "requested" and body["return"]["rma"] is None
    # One open return at a time.
    status, body = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "again"}
    )
    assert status == 409


async def test_refused_return_goes_back_to_delivered(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    show = await open_show(client, settings)
    order = await show.delivered()
    _s, asked = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "changed my mind"}
    )
    return_id = asked["return"]["id"]
    status, body = await _post(show.seller, f"/api/returns/{return_id}/refuse", {"reason": ""})
    assert status == 422
    status, body = await _post(
        show.seller, f"/api/returns/{return_id}/refuse", {"reason": "worn and washed"}
    )
    assert status == 200, body
    assert body["return"]["status"] == "refused"
    assert body["return"]["refusal_reason"] == "worn and washed"
    assert body["order"]["status"] == "delivered"
    for step, payload in (("approve", {}), ("refuse", {"reason": "x"}), ("receive", {})):
        status, body = await _post(show.seller, f"/api/returns/{return_id}/{step}", payload)
        assert status == 409 and body["error"]["code"] == "invalid_transition", step
    seen = await show.buyer.call("GET", f"/api/orders/{order['id']}/returns", status=200)
    assert [r["status"] for r in seen["returns"]] == ["refused"]
    assert seen["returnable_qty"] == 1  # a refused return takes nothing out of the window


async def test_approve_receive_refunds_through_stripe_and_restocks(
    aiohttp_client: Any, settings: Settings, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server
    app = create_app(smtp_settings(settings, port))
    client = await aiohttp_client(app)
    show = await open_show(client, settings, stock=10)
    order = await show.delivered(qty=3)
    assert await stock_on_hand(client, show.sku) == 7
    # Partial: one unit of three.
    _s, asked = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "too small"}
    )
    return_id = asked["return"]["id"]
    status, _b = await _post(show.seller, f"/api/returns/{return_id}/receive", {})
    assert status == 409  # not approved yet
    status, body = await _post(
        show.seller, f"/api/returns/{return_id}/approve", {"note": "Use the box it came in."}
    )
    assert status == 200, body
    approved = body["return"]
    assert approved["status"] == "approved" and approved["rma"].startswith(f"RMA-{order['id']}-")
    assert "prepaid return label" in approved["instructions"]
    assert "Use the box it came in." in approved["instructions"]
    assert body["order"]["status"] == "return_approved"
    mail = await mailbox.wait_for(show.buyer.email, approved["rma"])
    assert "prepaid return label" in body_text(mail)
    status, body = await _post(
        show.seller, f"/api/returns/{return_id}/receive", {"resellable_qty": 2}
    )
    assert status == 422  # more than came back
    status, body = await _post(
        show.seller, f"/api/returns/{return_id}/receive", {"resellable_qty": 1}
    )
    assert status == 200, body
    assert body["return"]["status"] == "received"
    assert body["refund"]["status"] == "succeeded" and body["refund"]["amount"] == 4900
    assert body["order"]["status"] == "delivered"  # two units are still with the buyer
    assert body["order"]["refunded"]["amount"] == 4900 and body["order"]["restocked_qty"] == 1
    assert await stock_on_hand(client, show.sku) == 8
    level = await client.app[RESERVATIONS].level(show.sku)
    assert level is not None and level.available == 8
    await mailbox.wait_for(show.buyer.email, "Refund on its way")

    # The rest, with "buyer pays postage", one unit not resellable: everything left is refunded.
    await show.seller.call(
        "PUT",
        "/api/shop/returns-policy",
        {"return_window_days": 30, "free_returns": False},
        status=200,
    )
    _s, asked = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 2, "reason": "not for me"}
    )
    return_id = asked["return"]["id"]
    _s, body = await _post(show.seller, f"/api/returns/{return_id}/approve", {})
    assert "buyer pays postage" in body["return"]["instructions"].lower()
    assert body["return"]["free_returns"] is False
    _s, body = await _post(show.seller, f"/api/returns/{return_id}/receive", {"resellable_qty": 1})
    assert body["order"]["status"] == "refunded", body
    assert body["order"]["refunded"]["amount"] == order["amount"]["amount"]
    assert body["order"]["restocked_qty"] == 2
    assert await stock_on_hand(client, show.sku) == 9
    seen = await show.buyer.call("GET", f"/api/orders/{order['id']}/returns", status=200)
    assert seen["order"]["status"] == "refunded" and seen["returnable_qty"] == 0
    assert [r["refund"]["amount"] for r in seen["returns"]] == [4900, 9800]
    listed = await show.seller.call("GET", "/api/returns?status=received", status=200)
    assert {r["id"] for r in listed["returns"]} == {r["id"] for r in seen["returns"]}


async def test_two_received_calls_at_once_refund_once(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    show = await open_show(client, settings, stock=5)
    order = await show.delivered(qty=2)
    _s, asked = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 2, "reason": "broken"}
    )
    return_id = asked["return"]["id"]
    await _post(show.seller, f"/api/returns/{return_id}/approve", {})
    results = await asyncio.gather(
        *(_post(show.seller, f"/api/returns/{return_id}/receive", {}) for _ in range(4))
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409, 409, 409], results
    assert all(
        body["error"]["code"] == "invalid_transition" for status, body in results if status == 409
    )
    refunded = await count_rows(
        client,
        sa.select(sa.func.count()).select_from(refunds).where(refunds.c.order_id == order["id"]),
    )
    assert refunded == 1
    seen = (await show.buyer.call("GET", f"/api/orders/{order['id']}", status=200))["order"]
    assert seen["status"] == "refunded"
    assert seen["refunded"]["amount"] == seen["amount"]["amount"]
    assert seen["restocked_qty"] == 2
    assert await stock_on_hand(client, show.sku) == 5


async def test_only_the_buyer_returns_and_only_the_seller_answers(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    show = await open_show(client, settings)
    order = await show.delivered()
    stranger = await sign_up(client, "stranger")
    status, body = await _post(
        stranger, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "mine now"}
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    await stranger.call("GET", f"/api/orders/{order['id']}/returns", status=403)
    status, _b = await _post(
        show.seller, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "seller"}
    )
    assert status == 403
    _s, asked = await _post(
        show.buyer, f"/api/orders/{order['id']}/returns", {"qty": 1, "reason": "too big"}
    )
    return_id = asked["return"]["id"]
    for who in (stranger, show.buyer):
        for step, payload in (
            ("approve", {}),
            ("refuse", {"reason": "no"}),
            ("receive", {}),
        ):
            status, body = await _post(who, f"/api/returns/{return_id}/{step}", payload)
            assert status == 403, (step, body)
    assert (await stranger.call("GET", "/api/returns", status=200))["returns"] == []
    status, _b = await _post(show.seller, "/api/returns/999999/approve", {})
    assert status == 404
    await show.seller.call("GET", "/api/returns?status=lost", status=422)


def _sold(*, qty: int, unit: int, shipping: int, tax: int, tax_added: bool) -> Order:
    now = utcnow()
    goods = unit * qty
    return Order(
        id=1,
        buyer_id=2,
        seller_id=3,
        sku_id=4,
        stream_id=None,
        qty=qty,
        unit_price_minor=unit,
        amount_minor=goods + shipping + (tax if tax_added else 0),
        currency="EUR",
        sale_id=None,
        status=OrderStatus.DELIVERED,
        hold_id="h",
        idempotency_key="k",
        payment_intent_id="pi_1",
        payment_status="succeeded",
        failure_code=None,
        failure_message=None,
        refunded_minor=0,
        restocked_qty=0,
        created_at=now,
        expires_at=now,
        paid_at=now,
        shipping_minor=shipping,
        tax_minor=tax,
    )


def _back(qty: int) -> OrderReturn:
    return OrderReturn(
        id=1,
        order_id=1,
        buyer_id=2,
        seller_id=3,
        qty=qty,
        reason="r",
        status="receiving",
        rma=None,
        instructions=None,
        free_returns=True,
        refusal_reason=None,
        resellable_qty=None,
        refund_minor=None,
        created_at=utcnow(),
        decided_at=None,
        received_at=None,
    )


def test_a_partial_return_refunds_added_tax_but_not_tax_already_in_the_price() -> None:
    # Three at 40.00 with 20% VAT inside the price (20.00 of the 120.00 is tax), shipping 5.00:
    # one unit back refunds 40.00, not 40.00 plus its "share" of the included 20.00.
    included = _sold(qty=3, unit=4000, shipping=500, tax=2000, tax_added=False)
    assert included.amount_minor == 12500
    assert refund_for(included, [_back(1)], 1) == 4000
    # The same with 20% added on top (24.00): one unit back refunds 40.00 + 8.00.
    added = _sold(qty=3, unit=4000, shipping=500, tax=2400, tax_added=True)
    assert added.amount_minor == 14900
    assert refund_for(added, [_back(1)], 1) == 4800
    # Every unit back refunds all that is left, shipping included, in both modes.
    assert refund_for(included, [_back(1), _back(2)], 2) == 12500
    assert refund_for(added, [_back(3)], 3) == 14900
