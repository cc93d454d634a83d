"""The order desk and a return in a real browser (Debian's Chromium, headless, via Playwright).

A seller packs two orders of one buyer, same show and address, as one parcel, ships it with a
carrier and tracking number and marks it delivered; the buyer asks to return an order from their
order page, the seller approves it (the buyer sees the RMA live), marks it received, and the
buyer sees it refunded. Emails go to a real SMTP server. Screenshots land under
``test-artifacts/e2e/``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from livecommerce.platform.db.engine import create_engine
from livecommerce.platform.db.tables import orders
from tests.browsing import PHONE, Shop, open_page, running_shop, screenshot
from tests.conftest import hoodie
from tests.mailbox import Mailbox, body_text, smtp_env
from tests.orderdesk import HOME

DESKTOP = {"width": 1280, "height": 900}


async def test_seller_ships_a_consolidated_parcel_and_handles_a_return(
    redis_url: str,
    localstripe_url: str,
    tmp_path: Path,
    smtp_server: tuple[int, Mailbox],
    browser: Any,
) -> None:
    port, mailbox = smtp_server
    async with running_shop(redis_url, tmp_path, localstripe_url, smtp_env(port)) as store:
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


async def _walk_through(browser: Any, store: Shop, bought: list[int], mailbox: Mailbox) -> None:
    first, second = bought
    desk = await open_page(browser, store, "seller", DESKTOP)
    await desk.goto("/orderdesk")
    group = desk.locator("#to-pack li[data-buyer]")
    await group.first.wait_for()
    assert await group.count() == 1  # two orders, one parcel
    assert "Pack parcel (2 orders)" in await group.first.inner_text()
    assert "3" in await desk.locator("#picks").inner_text()
    await screenshot(desk, "desk-01-to-pack", full_page=True)
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
    await screenshot(desk, "desk-02-shipped", full_page=True)
    slip = await desk.context.new_page()
    await slip.goto(f"/api/parcels/{parcel_id}/slip")
    assert "Bea Buyer" in await slip.inner_text("body")
    # Its stylesheet loaded under the pages' CSP: the ship-to box has its border.
    border = "getComputedStyle(document.querySelector('.ship-to')).borderTopStyle"
    assert await slip.evaluate(border) == "solid"
    await screenshot(slip, "desk-03-packing-slip", full_page=True)
    await slip.close()
    await desk.get_by_role("button", name="Mark delivered").click()
    await desk.wait_for_function(
        "() => document.getElementById('parcels').textContent.includes('delivered')"
    )

    buyer = await open_page(browser, store, "buyer", PHONE)
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
    await screenshot(buyer, "return-01-requested", full_page=True)

    await desk.reload()
    request = desk.locator("#returns li[data-return]")
    await request.first.wait_for()
    assert "Too small for me" in await request.first.inner_text()
    await request.first.get_by_role("button", name="Approve").click()
    await desk.locator("#returns li[data-return]", has_text="RMA").first.wait_for()
    # The buyer's page hears it (order:update) and shows the RMA and the instructions.
    await buyer.locator("#returns", has_text="RMA number").wait_for()
    assert "prepaid return label" in await buyer.inner_text("#returns")
    await screenshot(buyer, "return-02-approved", full_page=True)

    await desk.get_by_role("button", name="Mark received and refund").click()
    await desk.locator("#returns li[data-return]", has_text="Refunded").first.wait_for()
    await screenshot(desk, "desk-04-return-received", full_page=True)
    await buyer.wait_for_function(
        "() => document.getElementById('order-status').dataset.status === 'refunded'"
    )
    assert "Refunded" in await buyer.inner_text("#refunded")
    await screenshot(buyer, "return-03-refunded", full_page=True)

    # The desk on a phone: nothing wider than the screen.
    phone = await open_page(browser, store, "seller", PHONE)
    await phone.goto("/orderdesk")
    await phone.locator("#parcels li[data-parcel]").first.wait_for()
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await screenshot(phone, "desk-05-phone", full_page=True)

    email = store.emails["buyer"]
    shipped = await mailbox.wait_for(email, "has shipped")
    assert f"#{first}, #{second}" in str(shipped["Subject"]) and "1Z999AA10123456784" in body_text(
        shipped
    )
    assert "RMA-" in str((await mailbox.wait_for(email, "Return approved"))["Subject"])
    await mailbox.wait_for(email, "Refund on its way")
    assert desk.errors == [] and buyer.errors == [] and phone.errors == []
