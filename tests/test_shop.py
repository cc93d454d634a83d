"""The buyer's side: saved addresses, shop settings, the price (goods, shipping, tax) shown
before paying and charged, and the order confirmation email. Real SQL, Redis, localstripe
and SMTP (aiosmtpd)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.orders.pricing import price
from livecommerce.orders.shops import ShopTerms, TaxMode
from livecommerce.platform.mail import MAILER as MAILER_KEY
from tests.conftest import Account, hoodie, sign_up
from tests.mailbox import Mailbox, body_text, smtp_settings
from tests.shopping import OK_CARD, buy, card, stripe_client

HOME = {
    "name": "Ana Lima",
    "line1": "1 Harbour Street",
    "city": "Bristol",
    "postal_code": "BS1 5TR",
    "country": "gb",
}


# --- price computation (pure) ---------------------------------------------------------------


def test_flat_shipping_and_no_tax_by_default() -> None:
    figures = price(unit_price=4900, qty=2, currency="USD", terms=ShopTerms())
    assert (figures.goods, figures.shipping, figures.tax, figures.total) == (9800, 0, 0, 9800)
    flat = price(unit_price=4900, qty=1, currency="USD", terms=ShopTerms(shipping_flat_minor=599))
    assert (flat.shipping, flat.total) == (599, 5499)


def test_free_shipping_over_a_threshold_counts_the_show_so_far() -> None:
    terms = ShopTerms(shipping_flat_minor=500, free_shipping_over_minor=10000)
    assert price(unit_price=4900, qty=2, currency="USD", terms=terms).shipping == 500  # 9800
    assert price(unit_price=5000, qty=2, currency="USD", terms=terms).shipping == 0  # 10000
    later = price(unit_price=100, qty=1, currency="USD", terms=terms, goods_before=9900)
    assert (later.shipping, later.total) == (0, 100)


def test_tax_included_is_shown_not_added_and_rounds_half_up() -> None:
    terms = ShopTerms(tax_mode=TaxMode.INCLUDED, tax_rate_bp=2000)  # 20% VAT inside prices
    figures = price(unit_price=1200, qty=1, currency="EUR", terms=terms)
    assert (figures.tax, figures.total, figures.tax_included) == (200, 1200, True)
    # 999 * 2000 / 12000 = 166.5 -> 167 (half up)
    assert price(unit_price=999, qty=1, currency="EUR", terms=terms).tax == 167


def test_tax_added_on_top_of_goods_not_shipping() -> None:
    terms = ShopTerms(shipping_flat_minor=500, tax_mode=TaxMode.ADDED, tax_rate_bp=825)
    figures = price(unit_price=1999, qty=3, currency="USD", terms=terms)
    # 5997 * 8.25% = 494.75 -> 495
    assert (figures.goods, figures.shipping, figures.tax) == (5997, 500, 495)
    assert figures.total == 5997 + 500 + 495
    assert figures.to_dict()["total"] == {"amount": 6992, "currency": "USD"}
    # 0.5 of a cent rounds up: 10 * 5% = 0.5
    assert (
        price(unit_price=10, qty=1, currency="USD", terms=replace(terms, tax_rate_bp=500)).tax == 1
    )


@pytest.mark.parametrize(
    "values",
    [
        {"shipping_flat_minor": -1},
        {"tax_rate_bp": 10001},
        {"free_shipping_over_minor": 0},
        {"ship_by_days": 400},
    ],
)
def test_terms_check_themselves(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ShopTerms(**values)


# --- addresses --------------------------------------------------------------------------------


async def test_addresses_crud_and_default(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "ana")
    first = (await ana.call("POST", "/api/addresses", HOME, status=201))["address"]
    assert first["is_default"] is True and first["country"] == "GB"
    work = (
        await ana.call(
            "POST",
            "/api/addresses",
            {**HOME, "line1": "2 Office Park", "make_default": True},
            status=201,
        )
    )["address"]
    listed = (await ana.call("GET", "/api/addresses", status=200))["addresses"]
    assert [a["id"] for a in listed] == [work["id"], first["id"]]
    assert [a["is_default"] for a in listed] == [True, False]
    await ana.call("POST", f"/api/addresses/{first['id']}/default", status=200)
    edited = await ana.call(
        "PATCH", f"/api/addresses/{work['id']}", {"city": "Bath", "phone": "+44 1225 000"}, 200
    )
    assert edited["address"]["city"] == "Bath" and edited["address"]["is_default"] is False
    await ana.call("DELETE", f"/api/addresses/{first['id']}", status=200)
    left = (await ana.call("GET", "/api/addresses", status=200))["addresses"]
    assert [(a["id"], a["is_default"]) for a in left] == [(work["id"], True)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"country": "GBR"}, "country"),
        ({"country": "1A"}, "country"),
        ({"postal_code": ""}, "postal_code"),
        ({"postal_code": "<script>"}, "postal_code"),
        ({"name": "x" * 101}, "name"),
        ({"line1": "a\nb"}, "line1"),
        ({"phone": "call me"}, "phone"),
        ({"city": None}, "city"),
        ({"extra": "no"}, "extra"),
    ],
)
async def test_address_validation(
    client: TestClient[Any, Any], change: dict[str, Any], field: str
) -> None:
    ana = await sign_up(client, "ana")
    body = await ana.call("POST", "/api/addresses", {**HOME, **change}, status=422)
    assert body["error"]["code"] == "invalid_input"
    assert field in str(body["error"])


async def test_addresses_are_owner_only(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "ana")
    bo = await sign_up(client, "bo")
    mine = (await ana.call("POST", "/api/addresses", HOME, status=201))["address"]
    assert (await bo.call("GET", "/api/addresses", status=200))["addresses"] == []
    for method, path, body in [
        ("PATCH", f"/api/addresses/{mine['id']}", {"city": "Leeds"}),
        ("POST", f"/api/addresses/{mine['id']}/default", None),
        ("DELETE", f"/api/addresses/{mine['id']}", None),
    ]:
        answer = await bo.call(method, path, body, status=404)
        assert answer["error"]["code"] == "not_found"
    anonymous = await client.get("/api/addresses")
    assert anonymous.status == 401
    still = (await ana.call("GET", "/api/addresses", status=200))["addresses"]
    assert still[0]["city"] == "Bristol"


# --- shop settings --------------------------------------------------------------------------


async def test_shop_settings_defaults_update_and_validation(client: TestClient[Any, Any]) -> None:
    seller = await sign_up(client, "seller")
    defaults = (await seller.call("GET", "/api/shop/settings", status=200))["settings"]
    assert defaults == {
        "shipping_flat_minor": 0,
        "free_shipping_over_minor": None,
        "tax_mode": "included",
        "tax_rate_bp": 0,
        "ship_by_days": 3,
        "return_window_days": 30,
        "free_returns": True,
    }
    wanted = {**defaults, "shipping_flat_minor": 500, "free_shipping_over_minor": 10000}
    wanted |= {"tax_mode": "added", "tax_rate_bp": 825}
    saved = await seller.call("PUT", "/api/shop/settings", wanted, status=200)
    assert saved["settings"] == wanted
    assert (await seller.call("GET", "/api/shop/settings", status=200))["settings"] == wanted
    again = await seller.call("PUT", "/api/shop/settings", {"shipping_flat_minor": 300}, 200)
    assert again["settings"] == {**defaults, "shipping_flat_minor": 300}
    for bad in (
        {"tax_mode": "sometimes"},
        {"tax_rate_bp": 10001},
        {"shipping_flat_minor": -5},
        {"shipping_flat_minor": 0, "free_shipping_over_minor": 1000},
        {"ship_by_days": 1.5},
    ):
        body = await seller.call("PUT", "/api/shop/settings", bad, status=422)
        assert body["error"]["code"] == "invalid_input"
    other = await sign_up(client, "other")
    assert (await other.call("GET", "/api/shop/settings", status=200))["settings"] == defaults
    assert (await client.get("/api/shop/settings")).status == 401


# --- the price shown is the price charged ---------------------------------------------------


async def _shop(
    client: TestClient[Any, Any], settings: dict[str, Any], price_minor: int = 4900
) -> tuple[Account, Account, int, int]:
    seller = await sign_up(client, "seller")
    buyer = await sign_up(client, "buyer")
    await seller.call("PUT", "/api/shop/settings", settings, status=200)
    product = (
        await seller.call(
            "POST",
            "/api/products",
            {**hoodie(f"SKU-{uuid.uuid4().hex[:6]}", 20, price_minor), "ships": True},
            status=201,
        )
    )["product"]
    assert product["ships"] is True
    return seller, buyer, product["id"], product["variants"][0]["id"]


async def test_a_shipped_order_needs_an_address_and_charges_the_total_shown(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, _product, sku = await _shop(
        client, {"shipping_flat_minor": 599, "tax_mode": "added", "tax_rate_bp": 825}
    )
    quote = (await buyer.call("GET", f"/api/quote?sku_id={sku}&qty=2", status=200))["quote"]
    assert quote["ships"] is True
    assert quote["goods"]["amount"] == 9800 and quote["shipping"]["amount"] == 599
    assert quote["tax"]["amount"] == 809  # 9800 * 8.25% = 808.5 -> 809
    assert quote["total"]["amount"] == 9800 + 599 + 809
    # A saved card does not pay a parcel with nowhere to go: the order waits for an address.
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    status, body = await buy(buyer, sku, qty=2)
    assert status == 201, body
    order = body["order"]
    assert order["status"] == "reserved" and body["address_required"] is True
    assert order["amount"]["amount"] == quote["total"]["amount"]
    assert (order["goods"]["amount"], order["shipping"]["amount"]) == (9800, 599)
    assert (order["tax"]["amount"], order["tax_included"]) == (809, False)
    refused = await buyer.call("POST", f"/api/orders/{order['id']}/payment", {}, status=409)
    assert refused["error"]["code"] == "address_required"
    address = (await buyer.call("POST", "/api/addresses", HOME, status=201))["address"]
    shipped = await buyer.call(
        "PUT",
        f"/api/orders/{order['id']}/shipping-address",
        {"address_id": address["id"]},
        status=200,
    )
    assert shipped["order"]["shipping_address"]["line1"] == HOME["line1"]
    element = await buyer.call("POST", f"/api/orders/{order['id']}/payment", {}, status=200)
    intent_id = element["payment"]["client_secret"].split("_secret_")[0]
    intent = await stripe_client(settings).v1.payment_intents.retrieve_async(intent_id)
    assert intent.amount == quote["total"]["amount"] == 11208
    paid = await buyer.call(
        "POST",
        f"/api/orders/{order['id']}/payment",
        {"payment_method_id": await card(settings, OK_CARD)},
        status=200,
    )
    assert paid["order"]["status"] == "paid"
    # Editing the saved address later does not move a placed order.
    await buyer.call("PATCH", f"/api/addresses/{address['id']}", {"line1": "9 Elsewhere"}, 200)
    seen = await buyer.call("GET", f"/api/orders/{order['id']}", status=200)
    assert seen["order"]["shipping_address"]["line1"] == HOME["line1"]
    late = await buyer.call(
        "PUT",
        f"/api/orders/{order['id']}/shipping-address",
        {"address_id": address["id"]},
        status=409,
    )
    assert late["error"]["code"] == "invalid_transition"


async def test_the_default_address_is_copied_and_one_tap_pays_the_total(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _seller, buyer, _product, sku = await _shop(
        client, {"shipping_flat_minor": 450, "tax_mode": "included", "tax_rate_bp": 2000}
    )
    await buyer.call("POST", "/api/addresses", HOME, status=201)
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    status, body = await buy(buyer, sku)
    assert status == 201, body
    order = body["order"]
    assert order["status"] == "paid" and body["address_required"] is False
    assert order["shipping_address"]["postal_code"] == "BS1 5TR"
    assert (order["amount"]["amount"], order["tax"]["amount"]) == (4900 + 450, 817)
    assert order["tax_included"] is True


async def test_free_shipping_once_the_show_reaches_the_threshold(
    client: TestClient[Any, Any],
) -> None:
    seller, buyer, product, sku = await _shop(
        client, {"shipping_flat_minor": 500, "free_shipping_over_minor": 9000}
    )
    stream = (
        await seller.call("POST", "/api/streams", {"title": "Drop", "lineup": [product]}, 201)
    )["stream"]
    await buyer.call("POST", "/api/addresses", HOME, status=201)
    amounts = []
    for _ in range(3):
        quote = await buyer.call(
            "GET", f"/api/quote?sku_id={sku}&stream_id={stream['id']}", status=200
        )
        status, body = await buy(buyer, sku, stream_id=stream["id"])
        assert status == 201, body
        assert body["order"]["amount"] == quote["quote"]["total"]
        amounts.append((body["order"]["shipping"]["amount"], body["order"]["amount"]["amount"]))
    # 4900 (ships 500), 9800 reached (free), and later orders in the show ship free too.
    assert amounts == [(500, 5400), (0, 4900), (0, 4900)]
    # Outside the show, the order stands alone.
    status, body = await buy(buyer, sku)
    assert body["order"]["shipping"]["amount"] == 500


async def test_unknown_sku_quote_and_bad_address_id(client: TestClient[Any, Any]) -> None:
    _seller, buyer, _product, sku = await _shop(client, {})
    assert (await client.get("/api/quote?sku_id=999999")).status == 404
    assert (await client.get("/api/quote?sku_id=abc")).status == 422
    _status, body = await buy(buyer, sku)
    other = await sign_up(client, "other")
    theirs = (await other.call("POST", "/api/addresses", HOME, status=201))["address"]
    wrong = await buyer.call(
        "PUT",
        f"/api/orders/{body['order']['id']}/shipping-address",
        {"address_id": theirs["id"]},
        status=404,
    )
    assert wrong["error"]["code"] == "not_found"
    mine = (await buyer.call("POST", "/api/addresses", HOME, status=201))["address"]
    stolen = await other.call(
        "PUT",
        f"/api/orders/{body['order']['id']}/shipping-address",
        {"address_id": mine["id"]},
        status=403,
    )
    assert stolen["error"]["code"] == "forbidden"


# --- the receipt ----------------------------------------------------------------------------


async def test_the_receipt_email_when_paid(
    aiohttp_client: Any, settings: Settings, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server
    app = create_app(smtp_settings(settings, port, public_url="https://shop.example.test"))
    client = await aiohttp_client(app)
    _seller, buyer, _product, sku = await _shop(
        client, {"shipping_flat_minor": 599, "tax_mode": "added", "tax_rate_bp": 1000}
    )
    await buyer.call("POST", "/api/addresses", HOME, status=201)
    _status, body = await buy(buyer, sku)
    order_id = body["order"]["id"]
    paid = await buyer.call(
        "POST",
        f"/api/orders/{order_id}/payment",
        {"payment_method_id": await card(settings, OK_CARD)},
        status=200,
    )
    assert paid["order"]["status"] == "paid"
    message = await mailbox.wait_for(buyer.email, f"Your order #{order_id}")
    text = body_text(message)
    assert "1 x Hoodie (size: M)" in text and "49.00 USD" in text
    assert "Shipping" in text and "5.99 USD" in text
    assert "Tax" in text and "4.90 USD" in text
    assert "Total paid" in text and "59.89 USD" in text
    assert "1 Harbour Street" in text and "BS1 5TR Bristol" in text and "GB" in text
    assert f"https://shop.example.test/orders/{order_id}" in text
    # Paying again, syncing, or a webhook repeating it sends nothing more.
    await buyer.call("POST", f"/api/orders/{order_id}/payment", {}, status=200)
    await buyer.call("POST", f"/api/orders/{order_id}/sync", status=200)
    await app[MAILER_KEY].drain()
    assert len(mailbox.to(buyer.email)) == 1


async def test_quote_at_a_sale_price_and_ships_is_editable(client: TestClient[Any, Any]) -> None:
    seller, _buyer, product, sku = await _shop(
        client, {"shipping_flat_minor": 300, "tax_mode": "included", "tax_rate_bp": 1000}
    )
    answer = await client.get(f"/api/quote?sku_id={sku}&qty=2&unit_price_minor=2900")
    body = (await answer.json())["quote"]
    assert body["goods"]["amount"] == 5800 and body["shipping"]["amount"] == 300
    assert body["tax"]["amount"] == 527 and body["tax_included"] is True  # 5800 / 11 = 527.3
    assert body["total"]["amount"] == 6100
    changed = await seller.call("PATCH", f"/api/products/{product}", {"ships": False}, 200)
    assert changed["product"]["ships"] is False
    listed = await client.get(f"/api/quote?sku_id={sku}")
    assert (await listed.json())["quote"]["ships"] is False
