"""The whole path in a real browser: Debian's Chromium, headless, driven by Playwright.

A creator goes live from the studio with Chromium's fake camera; viewer pages show the video
moving; the moderator pins a product and starts a 30 s flash sale from the console; a viewer sees
the card and the countdown within a second, buys with a saved card and sees the order confirmed;
the stock drops on a second viewer's page; the sale ends and Buy is disabled. Every page is
saved as a screenshot under ``test-artifacts/e2e/``.

WebRTC stays on loopback: the server announces 127.0.0.1 only and drops other candidates, and
Chromium is allowed loopback candidates without mDNS names. No ICE server is configured.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.processes import ServerProcess
from tests.browsing import DESKTOP, PHONE, Shop
from tests.browsing import open_page as _page
from tests.browsing import screenshot as _shot
from tests.conftest import hoodie
from tests.mailbox import body_text
from tests.shopping import DECLINED_CARD, OK_CARD, THREE_DS_CARD

FRAMES = (
    "() => { const v = document.getElementById('video');"
    " return v && v.readyState >= 2 ? v.getVideoPlaybackQuality().totalVideoFrames : 0; }"
)


async def _frames(page: Any) -> int:
    return int(await page.evaluate(FRAMES))


async def test_go_live_pin_flash_sale_and_buy_in_chromium(
    shop: tuple[Shop, int, int, int], browser: Any
) -> None:
    store, stream_id, _product_id, sku_id = shop

    # The login page and home, as a newcomer sees them.
    newcomer = await _page(browser, store, None, PHONE)
    await newcomer.goto("/login")
    await newcomer.fill("#login-email", store.emails["watcher"])
    await newcomer.fill("#login-password", "correct horse")
    await _shot(newcomer, "01-login")
    await newcomer.click("#login button")
    await newcomer.wait_for_url(f"{store.url}/")
    await newcomer.wait_for_selector("#upcoming .card")
    await _shot(newcomer, "02-home")

    # The creator goes live from the studio with the fake camera.
    studio = await _page(browser, store, "creator", DESKTOP)
    await studio.goto(f"/studio/{stream_id}")
    await studio.wait_for_function(
        "() => document.getElementById('on-air').textContent.includes('Camera ready')"
    )
    await studio.click("#go-live")
    await studio.wait_for_function(
        "() => document.getElementById('on-air').textContent === 'You are live.'"
    )

    # Two viewers: the video plays and its frames advance.
    buyer = await _page(browser, store, "buyer", PHONE)
    watcher = await _page(browser, store, "watcher", PHONE)
    for page in (buyer, watcher):
        await page.goto(f"/watch/{stream_id}")
        await page.wait_for_function(
            "() => document.getElementById('status').textContent === 'LIVE'"
        )
    for page in (buyer, watcher):
        await page.wait_for_function(f"() => ({FRAMES})() >= 5", timeout=20000)
        first = await _frames(page)
        await asyncio.sleep(1.5)
        assert await _frames(page) > first + 10, "the video should keep moving"
    await studio.wait_for_function("() => document.getElementById('status').textContent === 'LIVE'")
    await _shot(studio, "03-studio-live")

    # The moderator pins the product and starts a 30 s flash sale from the console.
    console = await _page(browser, store, "moderator", DESKTOP)
    await console.goto(f"/console/{stream_id}")
    await console.click(f"#lineup button[data-sku='{sku_id}']")
    await buyer.wait_for_selector("#product:not(.hidden)", timeout=1000)
    stock_before = await watcher.text_content("#stock")
    assert stock_before == "12 left"
    await console.select_option("#sale-sku", str(sku_id))
    await console.fill("#sale-price", "29.00")
    await console.fill("#sale-qty", "5")
    await console.fill("#sale-seconds", "30")
    await console.click("#start-sale")
    started = time.monotonic()
    await buyer.wait_for_function(
        "() => document.getElementById('countdown').textContent.startsWith('Flash sale ends in')",
        timeout=1000,
    )
    assert time.monotonic() - started < 1.0
    assert "$29.00" in (await buyer.text_content("#product-price") or "")
    countdown = await buyer.text_content("#countdown")
    assert countdown is not None and countdown.endswith(("0:30", "0:29", "0:28"))
    await _shot(console, "04-console-sale")
    await _shot(buyer, "05-viewer-sale")

    # One tap (and a confirmation): paid with the saved card.
    await buyer.click("#buy")
    await buyer.wait_for_selector("#confirm-buy")
    assert "•••• 4242" in (await buyer.text_content("#sheet-body") or "")
    await _shot(buyer, "06-viewer-confirm")
    await buyer.click("#confirm-buy")
    await buyer.wait_for_function(
        "() => document.getElementById('sheet-title').textContent === 'Order confirmed'",
        timeout=15000,
    )
    await _shot(buyer, "07-viewer-paid")
    await buyer.click("#sheet-actions button")

    # The second viewer sees the sale's own units drop (5 on sale; the SKU has 11 left).
    await watcher.wait_for_function(
        "() => document.getElementById('stock').textContent === '4 left'", timeout=5000
    )
    sale_line = "document.getElementById('sale-countdown').textContent"
    await console.wait_for_function(f"() => {sale_line}.endsWith('4 of 5 units left')")
    await _shot(watcher, "08-second-viewer-stock")

    # The second viewer has no card yet: a first checkout through Stripe.js (the emulator's
    # stand-in card field here; the Payment Element in production) saves one and pays.
    await watcher.click("#buy")
    await watcher.wait_for_selector("#confirm-buy")
    assert "add a card" in (await watcher.text_content("#sheet-body") or "")
    await watcher.click("#confirm-buy")
    await watcher.wait_for_selector("#card-form input[placeholder=number]", timeout=10000)
    for field, value in (
        ("number", OK_CARD),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "10001"),
    ):
        await watcher.fill(f"#card-form input[placeholder={field}]", value)
    await _shot(watcher, "09-first-checkout-card")
    await watcher.click("#save-card")
    await watcher.wait_for_function(
        "() => document.getElementById('sheet-title').textContent === 'Order confirmed'",
        timeout=15000,
    )
    await _shot(watcher, "10-first-checkout-paid")
    await buyer.wait_for_function(
        "() => document.getElementById('stock').textContent === '3 left'", timeout=5000
    )

    # The sale ends on time, and Buy is disabled.
    remaining = 30 - (time.monotonic() - started)
    await buyer.wait_for_function(
        "() => document.getElementById('buy').disabled"
        " && document.getElementById('buy').textContent === 'Sale ended'",
        timeout=int((remaining + 5) * 1000),
    )
    await _shot(buyer, "11-viewer-sale-ended")
    await _shot(console, "12-console-after-sale")
    await studio.wait_for_function(
        "() => document.getElementById('fig-units').textContent === '2'", timeout=10000
    )
    await _shot(studio, "13-studio-figures")

    for page in (newcomer, studio, buyer, watcher, console):
        assert page.errors == [], page.errors


async def test_declined_card_3d_secure_sold_out_and_offline_states(
    shop: tuple[Shop, int, int, int], browser: Any
) -> None:
    store = shop[0]
    for who, number in (("declined", DECLINED_CARD), ("secure", THREE_DS_CARD)):
        await store.person(who)
        await store.save_card(who, number)
    await store.person("late")
    draft = {**hoodie("E2E-LAST-ONE", 1), "image_url": f"{store.url}/static/img/product.svg"}
    product = (await store.call("creator", "POST", "/api/products", draft))["product"]
    stream = (
        await store.call(
            "creator", "POST", "/api/streams", {"title": "Last one", "lineup": [product["id"]]}
        )
    )["stream"]
    await store.call(
        "creator", "POST", f"/api/streams/{stream['id']}/pin", {"product_id": product["id"]}
    )

    # Nobody is on air: the page says so, and the shop still works.
    declined = await _page(browser, store, "declined", PHONE)
    await declined.goto(f"/watch/{stream['id']}")
    await declined.wait_for_selector("#overlay:not(.hidden)")
    # "Loading the show…" first, until the room's state arrives: then it says offline.
    await declined.wait_for_function(
        "() => document.querySelector('#overlay').textContent.includes('offline')", timeout=15000
    )
    assert "offline" in (await declined.text_content("#overlay") or "")
    await declined.wait_for_selector("#product:not(.hidden)")
    assert await declined.text_content("#stock") == "1 left"
    await _shot(declined, "20-viewer-offline")

    await declined.click("#buy")
    await declined.click("#confirm-buy")
    await declined.wait_for_function(
        "() => document.getElementById('sheet-title').textContent === 'Payment declined'",
        timeout=15000,
    )
    assert "declined" in (await declined.text_content("#sheet-body") or "").lower()
    await _shot(declined, "21-viewer-declined")
    await declined.click("#sheet-actions button")
    # The unit went back on the shelf.
    await declined.wait_for_function(
        "() => document.getElementById('stock').textContent === '1 left'", timeout=5000
    )

    # 3-D Secure: the bank's confirmation (the emulator's stand-in of it), then paid.
    secure = await _page(browser, store, "secure", PHONE)
    await secure.goto(f"/watch/{stream['id']}")
    await secure.wait_for_selector("#product:not(.hidden)")
    await secure.click("#buy")
    await secure.click("#confirm-buy")
    await secure.wait_for_selector("text=Complete authentication", timeout=15000)
    await _shot(secure, "22-viewer-3d-secure")
    await secure.click("text=Complete authentication")
    await secure.wait_for_function(
        "() => document.getElementById('sheet-title').textContent === 'Order confirmed'",
        timeout=15000,
    )

    # That was the last one: everyone's Buy turns into Sold out.
    late = await _page(browser, store, "late", PHONE)
    await late.goto(f"/watch/{stream['id']}")
    for page in (late, declined):
        await page.wait_for_function(
            "() => document.getElementById('buy').disabled"
            " && document.getElementById('buy').textContent === 'Sold out'",
            timeout=5000,
        )
    await _shot(late, "23-viewer-sold-out")
    for page in (declined, secure, late):
        assert page.errors == [], page.errors


# ``next`` values that browsers would read as another site (tab, backslash, scheme-relative...).
OFF_SITE = (
    "/\\evil.example/",
    "/%5Cevil.example/",
    "/%09/evil.example/",
    "//evil.example/",
    "/%2F/evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "%0A/evil.example/",
)


async def test_log_in_goes_only_to_this_site_and_an_invited_moderator_joins(
    shop: tuple[Shop, int, int, int], browser: Any
) -> None:
    store, stream_id, _product_id, _sku_id = shop
    newcomer = await _page(browser, store, None, PHONE)
    for raw in OFF_SITE:
        await newcomer.goto(f"/login?next={raw}")
        await newcomer.fill("#login-email", store.emails["watcher"])
        await newcomer.fill("#login-password", "correct horse")
        await newcomer.click("#login button")
        await newcomer.wait_for_url(f"{store.url}/", timeout=5000)
    await newcomer.goto(f"/login?next=/watch/{stream_id}%3Fx%3D1")
    await newcomer.fill("#login-email", store.emails["watcher"])
    await newcomer.fill("#login-password", "correct horse")
    await newcomer.click("#login button")
    await newcomer.wait_for_url(f"{store.url}/watch/{stream_id}?x=1", timeout=5000)

    # The creator invites a helper by email from the studio's Team card.
    await store.person("helper")
    studio = await _page(browser, store, "creator", DESKTOP)
    await studio.goto(f"/studio/{stream_id}")
    await studio.wait_for_selector("#moderators li[data-user]")
    await studio.fill("#invite-email", store.emails["helper"])
    await studio.click("#invite")
    await studio.wait_for_selector("#invitations li[data-invitation]")
    assert store.emails["helper"] in (await studio.text_content("#invitations") or "")
    await _shot(studio, "30-studio-team-invited")

    # The helper sees it on the home page, accepts, and lands in the moderator console.
    helper = await _page(browser, store, "helper", DESKTOP)
    await helper.goto("/")
    await helper.wait_for_selector("#invited:not(.hidden) li[data-invitation]")
    assert "Friday drop" in (await helper.text_content("#invited") or "")
    await _shot(helper, "31-home-invitation")
    await helper.click("#invited button.primary")
    await helper.wait_for_url(f"{store.url}/console/{stream_id}")
    await helper.wait_for_selector(f"#lineup button[data-sku='{_sku_id}']")

    await studio.reload()
    await studio.wait_for_function(
        "() => (document.getElementById('moderators')?.textContent || '').includes('Helper')"
    )
    assert "No pending invitations" in (await studio.text_content("#invitations") or "")
    for page in (newcomer, studio, helper):
        assert page.errors == [], page.errors


async def test_new_shopper_adds_an_address_sees_shipping_and_tax_pays_and_gets_a_receipt(
    redis_url: str,
    localstripe_url: str,
    tmp_path: Path,
    browser: Any,
    smtp_server: tuple[int, Any],
) -> None:
    smtp_port, mailbox = smtp_server
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
            "SMTP_PORT": str(smtp_port),
            "SMTP_TLS": "none",
            "PUBLIC_URL": "https://shop.example.test",
        },
        tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        async with aiohttp.ClientSession() as session:
            store = Shop(server, session, localstripe_url)
            await store.person("creator")
            await store.person("shopper")
            draft = {
                **hoodie("E2E-SHIPS", 3),
                "image_url": f"{store.url}/static/img/product.svg",
                "ships": True,
            }
            product = (await store.call("creator", "POST", "/api/products", draft))["product"]
            stream = (
                await store.call(
                    "creator",
                    "POST",
                    "/api/streams",
                    {"title": "Parcel", "lineup": [product["id"]]},
                )
            )["stream"]
            await store.call(
                "creator", "POST", f"/api/streams/{stream['id']}/pin", {"product_id": product["id"]}
            )

            # The creator sets shipping and tax from the studio's settings form (on a phone).
            studio = await _page(browser, store, "creator", PHONE)
            await studio.goto(f"/studio/{stream['id']}")
            await studio.wait_for_selector("#shop-shipping_flat_minor")
            await studio.fill("#shop-shipping_flat_minor", "5.00")
            await studio.select_option("#shop-tax_mode", "added")
            await studio.fill("#shop-tax_rate_bp", "10")
            await studio.click("#shop-save")
            await studio.wait_for_function(
                "() => document.getElementById('shop-status').textContent === 'Saved.'"
            )
            await studio.locator("#shop-settings").scroll_into_view_if_needed()
            await _shot(studio, "29-studio-shop-settings")
            saved = (await store.call("creator", "GET", "/api/shop/settings"))["settings"]
            assert saved["shipping_flat_minor"] == 500 and saved["tax_rate_bp"] == 1000
            assert saved["tax_mode"] == "added"

            shopper = await _page(browser, store, "shopper", PHONE)
            await shopper.goto(f"/watch/{stream['id']}")
            await shopper.wait_for_selector("#product:not(.hidden)")
            await shopper.click("#buy")
            await shopper.wait_for_selector("#confirm-buy")
            # Before anything is held or paid: goods, shipping, tax and total.
            sheet = await shopper.text_content("#sheet-body") or ""
            assert "$49.00" in sheet and "$5.00" in sheet and "$4.90" in sheet, sheet
            assert "$58.90" in sheet and "shipping address in the next step" in sheet, sheet
            await _shot(shopper, "30-new-shopper-price")
            await shopper.click("#confirm-buy")
            await shopper.wait_for_selector("#addr-name", timeout=10000)
            for field, value in (
                ("name", "Ana Lima"),
                ("line1", "1 Harbour Street"),
                ("city", "Bristol"),
                ("postal_code", "BS1 5TR"),
                ("country", "GB"),
            ):
                await shopper.fill(f"#addr-{field}", value)
            await _shot(shopper, "31-new-shopper-address")
            await shopper.click("#save-address")
            await shopper.wait_for_selector("#card-form input[placeholder=number]", timeout=10000)
            sheet = await shopper.text_content("#sheet-body") or ""
            assert "$58.90" in sheet and "1 Harbour Street" in sheet, sheet
            assert "$58.90" in (await shopper.text_content("#save-card") or "")
            for field, value in (
                ("number", OK_CARD),
                ("exp_month", "12"),
                ("exp_year", "34"),
                ("cvc", "123"),
                ("postal_code", "10001"),
            ):
                await shopper.fill(f"#card-form input[placeholder={field}]", value)
            await _shot(shopper, "32-new-shopper-card")
            await shopper.click("#save-card")
            await shopper.wait_for_function(
                "() => document.getElementById('sheet-title').textContent === 'Order confirmed'",
                timeout=15000,
            )
            assert "$58.90" in (await shopper.text_content("#sheet-body") or "")
            await _shot(shopper, "33-new-shopper-paid")
            (order,) = (await store.call("shopper", "GET", "/api/orders"))["orders"]
            assert order["amount"]["amount"] == 5890 and order["status"] == "paid"
            assert order["shipping_address"]["city"] == "Bristol"
            receipt = await mailbox.wait_for(
                store.emails["shopper"], f"Your order #{order['id']}", timeout_s=15
            )
            text = body_text(receipt)
            assert "58.90 USD" in text and "1 Harbour Street" in text
            assert f"https://shop.example.test/orders/{order['id']}" in text
            # Follow the creator from the watch page.
            await shopper.click("#sheet-actions button")
            await shopper.click("#follow button.follow")
            await shopper.wait_for_selector("#follow button.follow[aria-pressed=true]")
            following = await store.call("shopper", "GET", "/api/following")
            assert following["creators"] == [product["owner_id"]]
            for page in (studio, shopper):
                assert page.errors == [], page.errors
    finally:
        server.stop()


TIMES = "\u00d7"  # the multiplication sign the pages write: "2 x Glow Serum"


def _text_is(selector: str, text: str) -> str:
    return f"() => document.querySelector({selector!r})?.textContent === {text!r}"


async def test_sale_units_sold_out_variants_quantity_and_the_bag_in_chromium(
    shop: tuple[Shop, int, int, int], browser: Any
) -> None:
    store = shop[0]
    tag = uuid.uuid4().hex[:6]
    hoodie_draft = {
        "title": "Everyday Hoodie",
        "description": "Heavyweight cotton, relaxed fit.",
        "image_url": f"{store.url}/static/img/product.svg",
        "variants": [
            {
                "sku": f"HOOD-{size}-{tag}",
                "price_minor": 4900,
                "currency": "USD",
                "stock_on_hand": units,
                "attributes": {"size": size},
            }
            for size, units in (("S", 5), ("M", 40), ("L", 3))
        ],
    }
    serum_draft = {
        "title": "Glow Serum",
        "description": "Vitamin C serum.",
        "variants": [
            {
                "sku": f"SERUM-{tag}",
                "price_minor": 2900,
                "currency": "USD",
                "stock_on_hand": 6,
                "attributes": {"volume": "30 ml"},
            }
        ],
    }
    hoodie_product = (await store.call("creator", "POST", "/api/products", hoodie_draft))["product"]
    serum = (await store.call("creator", "POST", "/api/products", serum_draft))["product"]
    small, medium, _large = (v["id"] for v in hoodie_product["variants"])
    stream = (
        await store.call(
            "creator",
            "POST",
            "/api/streams",
            {"title": "Hoodie drop", "lineup": [hoodie_product["id"], serum["id"]]},
        )
    )["stream"]
    stream_id = stream["id"]
    await store.call(
        "creator",
        "POST",
        f"/api/streams/{stream_id}/pin",
        {"product_id": hoodie_product["id"], "sku_id": medium},
    )
    await store.save_card("watcher", OK_CARD)

    phone = await _page(browser, store, "buyer", PHONE)
    desktop = await _page(browser, store, "watcher", DESKTOP)
    for page in (phone, desktop):
        await page.goto(f"/watch/{stream_id}")
        await page.wait_for_selector("#product:not(.hidden)")
        # The pinned variant is named on the card, not just the product.
        await page.wait_for_function(_text_is("#product-title", "Everyday Hoodie (M)"))
        await page.wait_for_function(_text_is("#stock", "40 left"))
    await _shot(phone, "40-card-variant-named-phone")

    # A flash sale of 2 units on M: every viewer sees the sale's 2 left, not the 40 in stock.
    await store.call(
        "creator",
        "POST",
        f"/api/streams/{stream_id}/sales",
        {
            "sku_id": medium,
            "sale_price": 2900,
            "quantity": 2,
            "duration_s": 120,
            "per_buyer_limit": 2,
        },
    )
    for page in (phone, desktop):
        await page.wait_for_function(_text_is("#stock", "2 left"), timeout=5000)
    await _shot(desktop, "41-sale-units-left-desktop")

    # The phone takes both: quantity 2 (its per-buyer limit), named with its variant.
    await phone.select_option("#qty", "2")
    await phone.click("#buy")
    await phone.wait_for_selector("#confirm-buy")
    assert await phone.text_content("#confirm-line") == f"2 {TIMES} Everyday Hoodie (M) for $58.00"
    await _shot(phone, "42-confirm-variant-and-quantity-phone")
    await phone.click("#confirm-buy")
    await phone.wait_for_function(_text_is("#sheet-title", "Order confirmed"), timeout=15000)
    assert await phone.text_content("#order-item") == f"2 {TIMES} Everyday Hoodie (M)"
    await _shot(phone, "43-order-confirmed-variant-phone")
    await phone.click("#sheet-actions button")

    # The other viewer never tapped: its card turns to Sold out, Buy off, by itself.
    await desktop.wait_for_function(
        "() => document.getElementById('buy').disabled"
        " && document.getElementById('buy').textContent === 'Sold out'"
        " && document.getElementById('stock').textContent === 'Sold out'",
        timeout=5000,
    )
    assert await desktop.text_content("#countdown") == "Flash sale sold out"
    await _shot(desktop, "44-sale-sold-out-second-viewer-desktop")

    # It picks size S instead (list price, 5 in stock) and three of them.
    await desktop.click(f"label[for='variant-{small}']")
    await desktop.wait_for_function(_text_is("#product-title", "Everyday Hoodie (S)"))
    await desktop.wait_for_function(_text_is("#stock", "5 left"))
    assert "$49.00" in (await desktop.text_content("#product-price") or "")
    assert not await desktop.is_disabled("#buy")
    await desktop.select_option("#qty", "3")
    await desktop.click("#buy")
    await desktop.wait_for_selector("#confirm-buy")
    confirm_line = await desktop.text_content("#confirm-line")
    assert confirm_line == f"3 {TIMES} Everyday Hoodie (S) for $147.00"
    await desktop.click("#confirm-buy")
    await desktop.wait_for_function(_text_is("#sheet-title", "Order confirmed"), timeout=15000)
    assert await desktop.text_content("#order-item") == f"3 {TIMES} Everyday Hoodie (S)"
    await desktop.click("#sheet-actions button")
    await desktop.wait_for_function(_text_is("#stock", "2 left"), timeout=5000)

    # The bag, from the keyboard on the phone: every product of the show, bought in place.
    await phone.focus("#bag-open")
    await phone.keyboard.press("Enter")
    await phone.wait_for_selector("#bag[aria-busy='false']")
    assert await phone.evaluate("document.activeElement.classList.contains('bag-close')")
    items = await phone.locator(".bag-item h3").all_text_contents()
    assert items == ["Everyday Hoodie", "Glow Serum"]
    serum_item = f".bag-item[data-product='{serum['id']}']"
    placeholder = await phone.get_attribute(f"{serum_item} img", "src")
    assert placeholder == "/static/img/product.svg"
    assert "Vitamin C serum." in (await phone.text_content(serum_item) or "")
    assert "6 left" in (await phone.text_content(serum_item) or "")
    await _shot(phone, "45-bag-phone")
    await phone.select_option(f"#bag-qty-{serum['id']}", "2")
    await phone.focus(f"{serum_item} button.primary")
    await phone.keyboard.press("Enter")
    await phone.wait_for_selector("#confirm-buy")
    assert await phone.text_content("#confirm-line") == f"2 {TIMES} Glow Serum (30 ml) for $58.00"
    await phone.click("#confirm-buy")
    await phone.wait_for_function(_text_is("#sheet-title", "Order confirmed"), timeout=15000)
    assert await phone.text_content("#order-item") == f"2 {TIMES} Glow Serum (30 ml)"
    await _shot(phone, "46-bag-paid-phone")
    await phone.click("#sheet-actions button")
    # Still in the stream, with the bag open and its stock brought down live.
    assert await phone.is_visible("#bag")
    assert await phone.is_visible("#video")
    await phone.wait_for_function(
        f"() => document.querySelector(\"{serum_item} .stock\").textContent === '4 left'",
        timeout=5000,
    )
    await phone.keyboard.press("Escape")
    await phone.wait_for_selector("#bag", state="hidden")
    assert await phone.evaluate("document.activeElement.id") == "bag-open"

    # The bag on a desktop: the same products, the sale SKU marked sold out.
    await desktop.click("#bag-open")
    hoodie_item = f".bag-item[data-product='{hoodie_product['id']}']"
    await desktop.wait_for_selector("#bag[aria-busy='false']")
    await desktop.select_option(f"#bag-variant-{hoodie_product['id']}", str(medium))
    await desktop.wait_for_function(
        f"() => document.querySelector(\"{hoodie_item} button.primary\").textContent === 'Sold out'"
    )
    await _shot(desktop, "47-bag-desktop")

    orders = (await store.call("buyer", "GET", "/api/orders"))["orders"]
    assert sorted(o["item_name"] for o in orders) == [
        "Everyday Hoodie (M)",
        "Glow Serum (30 ml)",
    ]
    for page in (phone, desktop):
        assert page.errors == [], page.errors
