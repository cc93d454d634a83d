"""Helpers for checkout tests: a shop with a SKU, buying, cards made as Stripe.js makes them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import sqlalchemy as sa
import stripe
from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import skus
from tests.conftest import Account, hoodie, sign_up

OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches, then every charge is declined
THREE_DS_CARD = "4000002760003184"  # always asks for 3-D Secure


def stripe_client(settings: Settings) -> stripe.StripeClient:
    """Stripe as another party sees it (Stripe.js, another deployment on the same account)."""
    return stripe.StripeClient(
        settings.stripe_secret_key,
        base_addresses={"api": settings.stripe_api_base},
        http_client=stripe.HTTPXClient(),
    )


async def card(settings: Settings, number: str) -> str:
    """A PaymentMethod, made the way Stripe.js makes one in the browser."""
    pm = await stripe_client(settings).v1.payment_methods.create_async(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return str(pm.id)


async def open_shop(
    client: TestClient[Any, Any], stock: int = 5, price: int = 4900
) -> tuple[Account, Account, int]:
    """A seller with one SKU, and a buyer; returns (seller, buyer, sku id)."""
    seller = await sign_up(client, "seller")
    buyer = await sign_up(client, "buyer")
    product = (
        await seller.call(
            "POST",
            "/api/products",
            hoodie(f"SKU-{uuid.uuid4().hex[:6]}", stock, price),
            status=201,
        )
    )["product"]
    return seller, buyer, product["variants"][0]["id"]


async def buy(
    account: Account, sku_id: int, qty: int = 1, key: str | None = None, **extra: Any
) -> tuple[int, dict[str, Any]]:
    response = await account.client.post(
        "/api/purchases",
        json={"sku_id": sku_id, "qty": qty, **extra},
        headers={**account.headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )
    return response.status, await response.json()


async def stock_on_hand(client: TestClient[Any, Any], sku_id: int) -> int:
    async with client.app[ENGINE].connect() as conn:
        value = (
            await conn.execute(sa.select(skus.c.stock_on_hand).where(skus.c.id == sku_id))
        ).scalar_one()
    return int(value)


def signed(event: dict[str, Any], secret: str) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header, signed as Stripe signs them."""
    payload = json.dumps(event).encode()
    stamp = int(time.time())
    signature = hmac.new(secret.encode(), b"%d.%s" % (stamp, payload), hashlib.sha256).hexdigest()
    return payload, f"t={stamp},v1={signature}"
