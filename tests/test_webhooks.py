"""Stripe webhooks move only this deployment's orders, for the amount and currency ordered."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import orders
from tests.conftest import Account
from tests.shopping import OK_CARD, buy, card, open_shop, signed, stock_on_hand, stripe_client


async def _deliver(
    client: TestClient[Any, Any], settings: Settings, intent: dict[str, Any]
) -> dict[str, Any]:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": intent},
    }
    payload, signature = signed(event, settings.stripe_webhook_secret)
    response = await client.post(
        "/api/stripe/webhook", data=payload, headers={"Stripe-Signature": signature}
    )
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def _paid_elsewhere(
    settings: Settings, amount: int, currency: str, metadata: dict[str, str]
) -> dict[str, Any]:
    """A PaymentIntent made and paid on the same Stripe account by someone else."""
    stripe = stripe_client(settings)
    pm = await card(settings, OK_CARD)
    intent = await stripe.v1.payment_intents.create_async(
        params={
            "amount": amount,
            "currency": currency,
            "payment_method_types": ["card"],
            "payment_method": pm,
            "confirm": True,
            "metadata": metadata,
        }
    )
    assert intent.status == "succeeded"
    return dict(intent.to_dict())


async def _hold_id(client: TestClient[Any, Any], order_id: int) -> str:
    async with client.app[ENGINE].connect() as conn:
        hold = (
            await conn.execute(sa.select(orders.c.hold_id).where(orders.c.id == order_id))
        ).scalar_one()
    return str(hold)


async def _reserved_order(client: TestClient[Any, Any]) -> tuple[Account, int, int]:
    _seller, buyer, sku = await open_shop(client, stock=1)
    status, body = await buy(buyer, sku)
    assert status == 201 and body["order"]["status"] == "reserved"
    return buyer, sku, body["order"]["id"]


async def _untouched(client: TestClient[Any, Any], buyer: Account, sku: int, order: int) -> None:
    seen = await buyer.call("GET", f"/api/orders/{order}", status=200)
    assert seen["order"]["status"] == "reserved"
    assert seen["order"]["paid_at"] is None
    assert await stock_on_hand(client, sku) == 1
    level = await client.app[RESERVATIONS].level(sku)
    assert level is not None and (level.available, level.held, level.sold) == (0, 1, 0)


async def test_another_deployments_intent_with_our_order_id_is_refused(
    client: TestClient[Any, Any], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Order ids repeat across deployments: metadata.order_id alone must move nothing."""
    buyer, sku, order_id = await _reserved_order(client)
    intent = await _paid_elsewhere(
        settings, 4900, "usd", {"order_id": str(order_id), "hold_id": uuid.uuid4().hex}
    )
    with caplog.at_level(logging.WARNING, logger="livecommerce.payments.webhooks"):
        result = await _deliver(client, settings, intent)
    assert result["result"] == "refused" and result["code"] == "unknown_payment_intent"
    assert any("unknown_payment_intent" in r.getMessage() for r in caplog.records)
    await _untouched(client, buyer, sku, order_id)


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [(100, "usd", "amount_mismatch"), (4900, "eur", "currency_mismatch")],
)
async def test_an_intent_for_another_amount_or_currency_is_refused(
    client: TestClient[Any, Any], settings: Settings, amount: int, currency: str, code: str
) -> None:
    """Even an intent carrying the order's own hold id moves nothing if the sum differs."""
    buyer, sku, order_id = await _reserved_order(client)
    hold_id = await _hold_id(client, order_id)
    intent = await _paid_elsewhere(
        settings, amount, currency, {"order_id": str(order_id), "hold_id": hold_id}
    )
    result = await _deliver(client, settings, intent)
    assert result == {"event": result["event"], "result": "refused", "code": code}
    await _untouched(client, buyer, sku, order_id)


async def test_a_second_intent_for_an_order_with_one_recorded_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    buyer, sku, order_id = await _reserved_order(client)
    await buyer.call("POST", f"/api/orders/{order_id}/payment", {}, status=200)  # records one
    hold_id = await _hold_id(client, order_id)
    other = await _paid_elsewhere(
        settings, 4900, "usd", {"order_id": str(order_id), "hold_id": hold_id}
    )
    result = await _deliver(client, settings, other)
    assert result["result"] == "refused" and result["code"] == "payment_intent_mismatch"
    await _untouched(client, buyer, sku, order_id)


async def test_our_own_unrecorded_intent_still_pays_the_order(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """The intent was made but its id never reached SQL (the answer was lost): the webhook,
    matching the order's hold id, amount and currency, still records it and marks it paid."""
    buyer, sku, order_id = await _reserved_order(client)
    hold_id = await _hold_id(client, order_id)
    intent = await _paid_elsewhere(
        settings, 4900, "usd", {"order_id": str(order_id), "hold_id": hold_id}
    )
    result = await _deliver(client, settings, intent)
    assert result["result"] == "paid"
    seen = await buyer.call("GET", f"/api/orders/{order_id}", status=200)
    assert seen["order"]["status"] == "paid"
    assert await stock_on_hand(client, sku) == 0
