"""The order desk and a return in a real browser (Debian's Chromium, headless, via Playwright).

A seller packs two orders of one buyer, same show and address, as one parcel, ships it with a
carrier and tracking number and marks it delivered; the buyer asks to return an order from their
order page, the seller approves it (the buyer sees the RMA live), marks it received, and the
buyer sees it refunded. Emails go to a real SMTP server. Screenshots land under
``test-artifacts/e2e/``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import stripe

from bench.processes import ServerProcess
from livecommerce.platform.db.engine import create_engine
from livecommerce.platform.db.tables import orders
from tests.conftest import hoodie
from tests.mailbox import Mailbox, body_text
from tests.orderdesk import HOME
from tests.shopping import OK_CARD

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_FOUND = Path(CHROMIUM).exists()
REQUIRE_BROWSER = os.environ.get("LC_REQUIRE_BROWSER") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
ARGS = ["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


class Store:
    def __init__(self, url: str, session: aiohttp.ClientSession, stripe_url: str) -> None:
        self.url = url
        self.session = session
        self.stripe_url = stripe_url
        self.tokens: dict[str, str] = {}
        self.emails: dict[str, str] = {}

    async def call(
        self, who: str | None, method: str, path: str, json: Any = None, **more: str
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        headers.update(more)
        async with self.session.request(
            method, f"{self.url}{path}", json=json, headers=headers
        ) as response:
            body = await response.json()
            assert response.status < 300, body
            return body

    async def person(self, who: str) -> None:
        email = f"{who}-{uuid.uuid4().hex[:6]}@example.com"
        body = await self.call(
            None,
            "POST",
            "/api/accounts",
            {"email": email, "password": "correct horse", "display_name": who.title()},
        )
        self.session.cookie_jar.clear()
        self.tokens[who], self.emails[who] = body["token"], email

    async def save_card(self, who: str) -> None:
        client = stripe.StripeClient(
            "sk_test_livecommerce",
            base_addresses={"api": self.stripe_url},
            http_client=stripe.HTTPXClient(),
        )
        pm = await client.v1.payment_methods.create_async(
            params={
                "type": "card",
                "card": {"number": OK_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        await self.call(who, "POST", "/api/cards", {"payment_method_id": pm.id})


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM_FOUND:
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def _page(browser: Any, store: Store, who: str, viewport: dict[str, int]) -> Any:
    context = await browser.new_context(viewport=viewport, base_url=store.url)
    response = await context.request.post(
        "/api/sessions", data={"email": store.emails[who], "password": "correct horse"}
    )
    assert response.ok, await response.text()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.errors = errors
    return page


async def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_seller_ships_a_consolidated_parcel_and_handles_a_return(
    redis_url: str,
    localstripe_url: str,
    tmp_path: Path,
    smtp_server: tuple[int, Mailbox],
    browser: Any,
) -> None:
    port, mailbox = smtp_server
    server = ServerProcess(
        {
            "DATA_DIR": str(tmp_path),
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": f"e2e{uuid.uuid4().hex[:8]}",
            "STRIPE_SECRET_KEY": "sk_test_livecommerce",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_livecommerce",
            "STRIPE_WEBHOOK_SECRET": f"whsec_{uuid.uuid4().hex}",
            "STRIPE_API_BASE": localstripe_url,
            "ICE_HOSTS": "127.0.0.1",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_TLS": "none",
        },
        tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        async with aiohttp.ClientSession() as session:
            store = Store(server.url, session, localstripe_url)
            await store.person("seller")
            await store.person("buyer")
            await store.save_card("buyer")
            product = (await store.call("seller", "POST", "/api/products", hoodie("E2E-DESK", 10)))[
                "product"
            ]
            sku = product["variants"][0]["id"]
            stream = (await store.call("seller", "POST", "/api/streams", {"title": "Friday drop"}))[
                "stream"
            ]
            bought = []
            for qty in (1, 2):
                body = await store.call(
                    "buyer",
                    "POST",
                    "/api/purchases",
                    {"sku_id": sku, "qty": qty},
                    **{"Idempotency-Key": uuid.uuid4().hex},
                )
                assert body["order"]["status"] == "paid", body
                bought.append(body["order"]["id"])
            # Sold in the show, to the buyer's home (as the room's buy and address book write).
            engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'livecommerce.db'}")
            async with engine.begin() as conn:
                await conn.execute(
                    orders.update()
                    .where(orders.c.id.in_(bought))
                    .values(stream_id=stream["id"], shipping_address=HOME)
                )
            await engine.dispose()
            await _walk_through(browser, store, bought, mailbox)
    finally:
        server.stop()


async def _walk_through(browser: Any, store: Store, bought: list[int], mailbox: Mailbox) -> None:
    first, second = bought
    desk = await _page(browser, store, "seller", DESKTOP)
    await desk.goto("/orderdesk")
    group = desk.locator("#to-pack li[data-buyer]")
    await group.first.wait_for()
    assert await group.count() == 1  # two orders, one parcel
    assert "Pack parcel (2 orders)" in await group.first.inner_text()
    assert "3" in await desk.locator("#picks").inner_text()
    await _shot(desk, "desk-01-to-pack")
    await group.first.get_by_role("button", name="Pack parcel (2 orders)").click()
    parcel = desk.locator("#parcels li[data-parcel]")
    await parcel.first.wait_for()
    assert "packed" in await parcel.first.inner_text()
    await desk.wait_for_function(
        "() => document.getElementById('to-pack').textContent.includes('Nothing to pack')"
    )
    parcel_id = await parcel.first.get_attribute("data-parcel")
    await parcel.first.get_by_label("Carrier", exact=True).select_option("ups")
    await parcel.first.get_by_label("Tracking number").fill("1Z999AA10123456784")
    await parcel.first.get_by_role("button", name="Ship").click()
    link = desk.locator(f"#parcels li[data-parcel='{parcel_id}'] a[href*='ups.com']")
    await link.wait_for()
    assert (
        await link.get_attribute("href") == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    )
    await _shot(desk, "desk-02-shipped")
    slip = await desk.context.new_page()
    await slip.goto(f"/api/parcels/{parcel_id}/slip")
    assert "Bea Buyer" in await slip.inner_text("body")
    # Its stylesheet loaded under the pages' CSP: the ship-to box has its border.
    border = "getComputedStyle(document.querySelector('.ship-to')).borderTopStyle"
    assert await slip.evaluate(border) == "solid"
    await _shot(slip, "desk-03-packing-slip")
    await slip.close()
    await desk.get_by_role("button", name="Mark delivered").click()
    await desk.wait_for_function(
        "() => document.getElementById('parcels').textContent.includes('delivered')"
    )

    buyer = await _page(browser, store, "buyer", PHONE)
    await buyer.goto(f"/orders/{first}/return")
    await buyer.wait_for_function(
        "() => document.getElementById('order-status').dataset.status === 'delivered'"
    )
    assert await buyer.locator("#tracking-link").get_attribute("href") == (
        "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    )
    await buyer.get_by_label("Units to return").fill("1")
    await buyer.get_by_label("Why?").fill("Too small for me")
    await buyer.get_by_role("button", name="Ask for a return").click()
    await buyer.wait_for_function(
        "() => document.getElementById('order-status').dataset.status === 'return_requested'"
    )
    await _shot(buyer, "return-01-requested")

    await desk.reload()
    request = desk.locator("#returns li[data-return]")
    await request.first.wait_for()
    assert "Too small for me" in await request.first.inner_text()
    await request.first.get_by_role("button", name="Approve").click()
    await desk.locator("#returns li[data-return]", has_text="RMA").first.wait_for()
    # The buyer's page hears it (order:update) and shows the RMA and the instructions.
    await buyer.locator("#returns", has_text="RMA number").wait_for()
    assert "prepaid return label" in await buyer.inner_text("#returns")
    await _shot(buyer, "return-02-approved")

    await desk.get_by_role("button", name="Mark received and refund").click()
    await desk.locator("#returns li[data-return]", has_text="Refunded").first.wait_for()
    await _shot(desk, "desk-04-return-received")
    await buyer.wait_for_function(
        "() => document.getElementById('order-status').dataset.status === 'refunded'"
    )
    assert "Refunded" in await buyer.inner_text("#refunded")
    await _shot(buyer, "return-03-refunded")

    # The desk on a phone: nothing wider than the screen.
    phone = await _page(browser, store, "seller", PHONE)
    await phone.goto("/orderdesk")
    await phone.locator("#parcels li[data-parcel]").first.wait_for()
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await _shot(phone, "desk-05-phone")

    email = store.emails["buyer"]
    shipped = await mailbox.wait_for(email, "has shipped")
    assert f"#{first}, #{second}" in str(shipped["Subject"]) and "1Z999AA10123456784" in body_text(
        shipped
    )
    assert "RMA-" in str((await mailbox.wait_for(email, "Return approved"))["Subject"])
    await mailbox.wait_for(email, "Refund on its way")
    assert desk.errors == [] and buyer.errors == [] and phone.errors == []
