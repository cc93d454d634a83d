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
    # The console's estimate of the server's clock 5 s behind: it still shows no more than 30 s.
    await console.evaluate(
        "() => { window.__realNow = Date.now; Date.now = () => window.__realNow() - 5000; }"
    )
    await console.wait_for_timeout(600)
    assert (await console.text_content("#sale-countdown") or "").startswith(
        "Sale running: 30 s left"
    )
    await console.evaluate("() => { Date.now = window.__realNow; }")
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
    # stand-in card field here; the Payment Element in production) pays, and keeps the card.
    await watcher.click("#buy")
    await watcher.wait_for_selector("#confirm-buy")
    assert "add a card" in (await watcher.text_content("#sheet-body") or "")
    await watcher.click("#confirm-buy")
    await watcher.wait_for_selector("#card-form input[placeholder=number]", timeout=10000)
    await _fill_card(watcher, OK_CARD)
    await _shot(watcher, "09-first-checkout-card")
    await watcher.click("#pay-card")
    await watcher.wait_for_function(
        "() => document.getElementById('sheet-title').textContent === 'Order confirmed'",
        timeout=15000,
    )
    await _shot(watcher, "10-first-checkout-paid")
    await buyer.wait_for_function(
        "() => document.getElementById('stock').textContent === '3 left'", timeout=5000
    )

    # A third viewer opens the confirmation at the sale price and leaves it open while the sale
    # ends: it cannot be paid at a price that is gone, and nothing is charged.
    await store.person("lastcall")
    await store.save_card("lastcall")
    lastcall = await _page(browser, store, "lastcall", PHONE)
    await lastcall.goto(f"/watch/{stream_id}")
    await lastcall.wait_for_selector("#product:not(.hidden)", timeout=5000)
    await lastcall.click("#buy")
    await lastcall.wait_for_selector("#confirm-buy:not([disabled])")
    assert "$29.00" in (await lastcall.text_content("#confirm-line") or "")

    # The sale ends on time, and Buy is disabled.
    remaining = 30 - (time.monotonic() - started)
    await buyer.wait_for_function(
        "() => document.getElementById('buy').disabled"
        " && document.getElementById('buy').textContent === 'Sale ended'",
        timeout=int((remaining + 5) * 1000),
    )
    await _shot(buyer, "11-viewer-sale-ended")
    await lastcall.wait_for_function(
        "() => document.getElementById('confirm-buy').disabled"
        " && document.getElementById('confirm-buy').textContent === 'Sale ended'",
        timeout=5000,
    )
    assert "nothing was charged" in (await lastcall.text_content("#confirm-gone") or "")
    await _shot(lastcall, "11b-confirmation-after-the-sale")
    assert (await store.call("lastcall", "GET", "/api/orders"))["orders"] == []
    await _shot(console, "12-console-after-sale")
    await studio.wait_for_function(
        "() => document.getElementById('fig-units').textContent === '2'", timeout=10000
    )
    await _shot(studio, "13-studio-figures")

    for page in (newcomer, studio, buyer, watcher, console, lastcall):
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

    # The price goes up while a confirmation is open (the page is not told): the tap carries
    # the price it showed, the server refuses it and the sheet gives the price now.
    variant = product["variants"][0]
    await declined.click("#buy")
    await declined.wait_for_selector("#confirm-buy:not([disabled])")
    shown = await declined.text_content("#confirm-line") or ""
    raised = {"variants": [{"sku": variant["sku"], "price_minor": 5900}]}  # from 49.00
    await store.call("creator", "PATCH", f"/api/products/{product['id']}", raised)
    await declined.click("#confirm-buy")
    await declined.wait_for_function(
        "() => document.getElementById('sheet-title').textContent === 'Not bought'",
        timeout=15000,
    )
    told = await declined.text_content("#sheet-body") or ""
    assert "$49.00" in shown and "The price is now $59.00" in told, (shown, told)
    assert "nothing was bought or charged" in told
    assert (await store.call("declined", "GET", "/api/orders"))["orders"] == []
    back = {"variants": [{"sku": variant["sku"], "price_minor": 4900}]}
    await store.call("creator", "PATCH", f"/api/products/{product['id']}", back)
    await declined.click("#sheet-actions button")

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


async def _fill_card(page: Any, number: str, month: str = "12", year: str = "34") -> None:
    """Type a card into the card form (the emulator's stand-in card field)."""
    await page.wait_for_selector("#card-number", timeout=10000)
    for field, value in (
        ("number", number),
        ("exp_month", month),
        ("exp_year", year),
        ("cvc", "123"),
        ("postal_code", "10001"),
    ):
        await page.fill(f"#card-{field}", value)


async def _show_with_one_product(store: Shop, title: str, stock: int) -> tuple[int, int]:
    """A stream (not on air) with one product pinned; returns (stream id, sku id)."""
    code = f"E2E-{uuid.uuid4().hex[:6]}"
    draft = {**hoodie(code, stock), "image_url": f"{store.url}/static/img/product.svg"}
    product = (await store.call("creator", "POST", "/api/products", draft))["product"]
    stream = (
        await store.call(
            "creator", "POST", "/api/streams", {"title": title, "lineup": [product["id"]]}
        )
    )["stream"]
    await store.call(
        "creator", "POST", f"/api/streams/{stream['id']}/pin", {"product_id": product["id"]}
    )
    return stream["id"], product["variants"][0]["id"]


async def _sheet_title(page: Any, title: str) -> None:
    await page.wait_for_function(
        f"() => document.getElementById('sheet-title').textContent === {title!r}", timeout=15000
    )


async def test_first_card_typed_wrong_then_declined_then_paid_and_kept_in_chromium(
    shop: tuple[Shop, int, int, int], browser: Any
) -> None:
    store = shop[0]
    await store.person("first")
    stream_id, _sku = await _show_with_one_product(store, "First card", 3)
    page = await _page(browser, store, "first", PHONE)
    await page.goto(f"/watch/{stream_id}")
    await page.wait_for_selector("#product:not(.hidden)")
    await page.click("#buy")
    await page.wait_for_selector("#confirm-buy")
    assert "Paid" not in (await page.text_content("#sheet-body") or "")
    await page.click("#confirm-buy")
    await _sheet_title(page, "Finish paying")

    # A mistyped number: said beside the field, nothing called a decline, the form kept.
    await _fill_card(page, "4242 4242 4242 424")
    await page.click("#pay-card")
    await page.wait_for_selector("#card-number-error:not(.hidden)")
    assert "incomplete" in (await page.text_content("#card-number-error") or "")
    assert await page.get_attribute("#card-number", "aria-invalid") == "true"
    assert await page.input_value("#card-number") == "4242 4242 4242 424"
    assert await page.input_value("#card-cvc") == "123"
    assert await page.is_hidden("#sheet-error")
    await _shot(page, "40-card-number-incomplete")
    # A wrong number, an impossible month, a short CVC: each beside its field.
    await page.fill("#card-number", "4242424242424241")
    await page.fill("#card-exp_month", "13")
    await page.fill("#card-cvc", "12")
    await page.click("#pay-card")
    await page.wait_for_selector("#card-cvc-error:not(.hidden)")
    assert "invalid" in (await page.text_content("#card-number-error") or "")
    assert "month" in (await page.text_content("#card-exp_month-error") or "")
    assert "incomplete" in (await page.text_content("#card-cvc-error") or "")
    assert "declined" not in (await page.text_content("#sheet") or "").lower()
    await _shot(page, "41-card-fields-invalid")

    # A real decline says so; the order stays held for another card, and nothing is kept.
    order_id = (await store.call("first", "GET", "/api/orders"))["orders"][0]["id"]
    await _fill_card(page, DECLINED_CARD)
    await page.click("#pay-card")
    await page.wait_for_selector("#sheet-error:not(.hidden)", timeout=15000)
    assert "declined" in (await page.text_content("#sheet-error") or "").lower()
    assert await page.text_content("#sheet-title") == "Finish paying"
    assert await page.input_value("#card-number") == DECLINED_CARD
    assert (await store.call("first", "GET", "/api/cards"))["card"] is None
    assert (await store.call("first", "GET", f"/api/orders/{order_id}"))["order"][
        "status"
    ] == "reserved"
    await _shot(page, "42-card-declined-kept-form")

    # Another card pays the same order, and becomes the one-tap card.
    await page.fill("#card-number", OK_CARD)
    await page.click("#pay-card")
    await _sheet_title(page, "Order confirmed")
    assert f"Order #{order_id}" in (await page.text_content("#sheet-body") or "")
    await _shot(page, "43-order-confirmed")
    assert (await store.call("first", "GET", "/api/cards"))["card"]["label"] == "Visa •••• 4242"
    await page.click("#sheet-actions button:has-text('Close')")

    # The next Buy offers the saved card (not "Paid" before paying) or another card.
    await page.click("#buy")
    await page.wait_for_selector("#confirm-buy")
    body = await page.text_content("#sheet-body") or ""
    assert "Pay with Visa •••• 4242" in body and "Paid" not in body
    assert await page.is_visible("#use-another-card")
    await _shot(page, "44-one-tap-offer")
    assert page.errors == [], page.errors


async def test_one_tap_declined_then_another_card_in_chromium(
    shop: tuple[Shop, int, int, int], browser: Any
) -> None:
    store = shop[0]
    await store.person("unlucky")
    await store.save_card("unlucky", DECLINED_CARD)
    stream_id, _sku = await _show_with_one_product(store, "Declined one tap", 2)
    page = await _page(browser, store, "unlucky", PHONE)
    await page.goto(f"/watch/{stream_id}")
    await page.wait_for_selector("#product:not(.hidden)")
    await page.click("#buy")
    await page.wait_for_selector("#confirm-buy")
    assert "Pay with Visa •••• 0341" in (await page.text_content("#sheet-body") or "")
    await page.click("#confirm-buy")
    await _sheet_title(page, "Payment declined")
    await _shot(page, "45-one-tap-declined")
    await page.click("#use-another-card")
    await _sheet_title(page, "Finish paying")
    await _fill_card(page, OK_CARD)
    await page.click("#pay-card")
    await _sheet_title(page, "Order confirmed")
    assert (await store.call("unlucky", "GET", "/api/cards"))["card"]["label"].endswith("4242")
    assert page.errors == [], page.errors


async def test_a_held_order_is_resumed_followed_and_cancelled_in_chromium(
    shop: tuple[Shop, int, int, int], browser: Any
) -> None:
    store = shop[0]
    await store.person("closer")
    await store.person("nosy")
    stream_id, sku = await _show_with_one_product(store, "Held", 3)
    await store.call(
        "creator",
        "POST",
        f"/api/streams/{stream_id}/sales",
        {
            "sku_id": sku,
            "sale_price": 2900,
            "quantity": 3,
            "duration_s": 300,
            "per_buyer_limit": 1,
        },
    )
    page = await _page(browser, store, "closer", PHONE)
    await page.goto(f"/watch/{stream_id}")
    await page.wait_for_selector("#product:not(.hidden)")
    await page.click("#buy")
    await page.click("#confirm-buy")
    await _sheet_title(page, "Finish paying")
    await page.wait_for_selector("#card-number")
    await page.click("#close-sheet")
    await page.wait_for_function("() => document.getElementById('stock').textContent === '2 left'")
    (held,) = (await store.call("closer", "GET", "/api/orders"))["orders"]

    # Buy again: not "limit per buyer" but the held order, with its hold's countdown.
    await page.click("#buy")
    await _sheet_title(page, "Finish paying?")
    countdown = await page.text_content("#sheet-body .hold-countdown") or ""
    assert countdown.startswith(("9:", "10:00")), countdown
    await _shot(page, "46-held-order-offered")
    await page.click("#finish-paying")
    await _sheet_title(page, "Finish paying")
    assert f"Order #{held['id']}" in (await page.text_content("#sheet-body") or "")
    (same,) = (await store.call("closer", "GET", "/api/orders"))["orders"]
    assert (same["id"], same["expires_at"]) == (held["id"], held["expires_at"])  # same hold
    await page.click("#close-sheet")

    # The orders drawer, over the show: the order, its countdown, cancel.
    await page.click("#orders-open")
    await page.wait_for_selector(f"#orders-drawer li[data-order='{held['id']}']")
    assert "Waiting for payment" in (await page.text_content("#orders-drawer") or "")
    await page.click(f"#orders-drawer li[data-order='{held['id']}'] .order-link")
    await page.wait_for_selector("#orders-drawer .order-detail .hold-countdown")
    shown = await page.text_content("#orders-drawer .hold-countdown")
    await page.wait_for_function(  # it ticks
        f"() => document.querySelector('#orders-drawer .hold-countdown').textContent !== {shown!r}",
        timeout=3000,
    )
    await _shot(page, "47-orders-drawer-held")
    await page.click("#orders-drawer .cancel-order")
    await page.wait_for_selector("#orders-drawer .order-detail[data-status='cancelled']")
    await page.wait_for_function("() => document.getElementById('stock').textContent === '3 left'")
    await _shot(page, "48-orders-drawer-cancelled")
    await page.click("#orders-close")

    # A second hold, paid from the order page; the drawer follows it live.
    await page.click("#buy")
    await page.click("#confirm-buy")
    await _sheet_title(page, "Finish paying")
    await page.click("#close-sheet")
    second = (await store.call("closer", "GET", "/api/orders?status=reserved"))["orders"][0]
    await page.click("#orders-open")
    await page.click(f"#orders-drawer li[data-order='{second['id']}'] .order-link")
    await page.wait_for_selector("#orders-drawer .order-detail[data-status='reserved']")
    order_page = await _page(browser, store, "closer", PHONE)
    # A phone whose clock is an hour fast still counts the hold down by the server's clock.
    await order_page.clock.set_system_time(time.time() + 3600)
    await order_page.goto(f"/orders/{second['id']}")
    await order_page.wait_for_selector(".order-detail[data-status='reserved'] .hold-countdown")
    await order_page.wait_for_function(
        "() => document.querySelector('.hold-countdown').getAttribute('aria-label')"
        " !== '0 seconds left'"
    )
    await _shot(order_page, "49-order-page-reserved")
    await order_page.click(".finish-paying")
    await _fill_card(order_page, OK_CARD)
    await order_page.click("#pay-card")
    await _sheet_title(order_page, "Order confirmed")
    await order_page.click("#sheet-actions button:has-text('Close')")
    await order_page.wait_for_selector(".order-detail[data-status='paid']")
    # The order's conversation with the shop (messages, problem reports) is one click away.
    link = await order_page.get_attribute("a.order-messages", "href")
    assert link == f"/orders/{second['id']}/messages"
    await page.wait_for_selector("#orders-drawer .order-detail[data-status='paid']", timeout=5000)
    await _shot(page, "50-orders-drawer-paid-live")
    await _shot(order_page, "51-order-page-paid")

    # Later states (set by fulfilment) show as they come; nobody else sees the order.
    history = await _page(browser, store, "closer", PHONE)
    await history.goto("/orders")
    await history.wait_for_selector(f"#orders-list li[data-order='{second['id']}']")
    assert await history.is_visible("header.site nav a[href='/account']")
    await _shot(history, "52-order-history")
    nosy = await _page(browser, store, "nosy", PHONE)
    await nosy.goto(f"/orders/{second['id']}")
    await nosy.wait_for_function("() => document.body.textContent.includes('not found')")
    for each in (page, order_page, history, nosy):
        assert each.errors == [], each.errors


async def test_account_page_lists_replaces_and_removes_cards_in_chromium(
    shop: tuple[Shop, int, int, int], browser: Any
) -> None:
    store = shop[0]
    await store.person("carded")
    await store.save_card("carded", OK_CARD)
    page = await _page(browser, store, "carded", PHONE)
    await page.goto("/")
    await page.click("header.site nav a[href='/account']")
    await page.wait_for_selector("#cards li[data-card]")
    assert "Visa •••• 4242" in (await page.text_content("#cards") or "")
    assert "One tap" in (await page.text_content("#cards") or "")
    await _shot(page, "53-account-cards")
    await page.click("#cards .replace-card")
    await _fill_card(page, "4242424242424241")
    await page.click("#card-save")
    await page.wait_for_selector("#card-number-error:not(.hidden)")
    await page.fill("#card-number", THREE_DS_CARD)
    await page.click("#card-save")
    await page.wait_for_selector("text=Complete authentication", timeout=10000)
    await page.click("text=Complete authentication")
    await page.wait_for_function(
        "() => document.getElementById('cards').textContent.includes('3184')", timeout=10000
    )
    assert "4242" not in (await page.text_content("#cards") or "")
    assert (await store.call("carded", "GET", "/api/cards"))["card"]["label"].endswith("3184")
    await _shot(page, "54-account-card-replaced")
    await page.click("#cards .remove-card")
    await page.wait_for_function(
        "() => document.getElementById('cards').textContent.includes('No saved card')"
    )
    assert (await store.call("carded", "GET", "/api/cards"))["card"] is None
    await _shot(page, "55-account-no-card")
    assert page.errors == [], page.errors


async def test_new_shopper_picks_size_and_quantity_adds_an_address_pays_and_gets_a_receipt(
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
            large = {**draft["variants"][0], "sku": "E2E-SHIPS-L", "attributes": {"size": "L"}}
            draft["variants"] = [*draft["variants"], large]
            product = (await store.call("creator", "POST", "/api/products", draft))["product"]
            large_id = product["variants"][1]["id"]
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
            # The whole path of a new shopper: size L (M is pinned), two of them.
            await shopper.click(f"label[for='variant-{large_id}']")
            await shopper.select_option("#qty", "2")
            await shopper.click("#buy")
            await shopper.wait_for_selector("#confirm-buy")
            # Before anything is held or paid: goods, shipping, tax and total.
            sheet = await shopper.text_content("#sheet-body") or ""
            assert "2 \u00d7 Hoodie (L)" in sheet, sheet
            assert "$98.00" in sheet and "$5.00" in sheet and "$9.80" in sheet, sheet
            assert "$112.80" in sheet and "shipping address in the next step" in sheet, sheet
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
            assert "$112.80" in sheet and "1 Harbour Street" in sheet, sheet
            assert "$112.80" in (await shopper.text_content("#pay-card") or "")
            await _fill_card(shopper, OK_CARD)
            await _shot(shopper, "32-new-shopper-card")
            await shopper.click("#pay-card")
            await shopper.wait_for_function(
                "() => document.getElementById('sheet-title').textContent === 'Order confirmed'",
                timeout=15000,
            )
            assert "$112.80" in (await shopper.text_content("#sheet-body") or "")
            await _shot(shopper, "33-new-shopper-paid")
            (order,) = (await store.call("shopper", "GET", "/api/orders"))["orders"]
            assert order["amount"]["amount"] == 11280 and order["status"] == "paid"
            assert order["sku_id"] == large_id and order["qty"] == 2
            assert order["item_name"] == "Hoodie (L)"
            assert order["shipping_address"]["city"] == "Bristol"
            receipt = await mailbox.wait_for(
                store.emails["shopper"], f"Your order #{order['id']}", timeout_s=15
            )
            text = body_text(receipt)
            assert "112.80 USD" in text and "1 Harbour Street" in text
            assert f"https://shop.example.test/orders/{order['id']}" in text
            # Follow the creator from the watch page.
            await shopper.click("#sheet-actions button")
            await shopper.click("#follow button.follow")
            await shopper.wait_for_selector("#follow button.follow[aria-pressed=true]")
            following = await store.call("shopper", "GET", "/api/following")
            assert following["creators"] == [product["owner_id"]]
            # The order's own page, as the receipt's link opens it.
            await shopper.goto(f"/orders/{order['id']}")
            await shopper.wait_for_function(
                "() => document.body.innerText.includes('Hoodie (L)')"
                " && /paid/i.test(document.body.innerText)"
            )
            await _shot(shopper, "34-new-shopper-order-page")
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
