"""Every page passes axe-core (no serious or critical violation) and every control on it takes
the keyboard focus, on a desktop and on a 390x844 phone, in Debian's Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.accessibility import assert_accessible, assert_keyboard_reachable
from tests.browsing import DESKTOP, PHONE, Shop, open_page, screenshot

# (page, who opens it, what shows once the page has loaded)
PAGES = [
    ("/", None, "#upcoming"),
    ("/login", None, "#login"),
    ("/watch/{stream}", None, "#status"),
    ("/watch/{stream}", "buyer", "#product:not(.hidden)"),
    ("/studio/{stream}", "creator", "#go-live"),
    ("/console/{stream}", "moderator", "#lineup button"),
    ("/orders", "buyer", "#orders-page p, #orders-list li"),
    ("/account", "buyer", "#cards li[data-card]"),
    # None: once the page has stopped loading (no request in flight)
    ("/orders/{order}", "buyer", None),
    ("/orders/{order}/messages", "buyer", None),
    ("/orders/{order}/return", "buyer", None),
    ("/inbox", "creator", None),
    ("/orderdesk", "creator", None),
    ("/studio/catalog", "creator", None),
    ("/studio/shows", "creator", None),
    ("/studio/{stream}/figures", "creator", None),
    ("/invitations/{invitation}", None, None),  # the link of an invitation email
    ("/no-such-page", None, "h1"),
]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_every_page_is_accessible_and_keyboard_reachable(
    shop: tuple[Shop, int, int, int], browser: Any, viewport: dict[str, int]
) -> None:
    store, stream_id, product_id, sku_id = shop
    # A pinned product, so the watch page shows its card and Buy.
    await store.call(
        "creator",
        "POST",
        f"/api/streams/{stream_id}/pin",
        {"product_id": product_id, "sku_id": sku_id},
    )
    # A paid order, for the buyer's order pages and the seller's back office.
    async with store.session.post(
        f"{store.url}/api/purchases",
        json={"sku_id": sku_id, "qty": 1, "stream_id": stream_id},
        headers={"Authorization": f"Bearer {store.tokens['buyer']}", "Idempotency-Key": "a11y-1"},
    ) as response:
        placed = await response.json()
        assert response.status == 201, placed
    order_id = placed["order"]["id"]
    # A pending invitation, for the page its email links to.
    invited = f"invited-{viewport['width']}@example.com"
    await store.call("creator", "POST", f"/api/streams/{stream_id}/moderators", {"email": invited})
    pending = await store.call("creator", "GET", f"/api/streams/{stream_id}/invitations")
    invitation = next(i["id"] for i in pending["invitations"] if i["email"] == invited)
    size = "phone" if viewport is PHONE else "desktop"
    for path, who, ready in PAGES:
        page = await open_page(browser, store, who, viewport)
        await page.goto(path.format(stream=stream_id, order=order_id, invitation=invitation))
        if ready is None:
            await page.wait_for_load_state("networkidle")
        else:
            await page.wait_for_selector(ready)
        await page.wait_for_function("() => !document.querySelector('[aria-busy=true]')")
        label = f"{path} as {who or 'a visitor'} ({size})"
        await assert_accessible(page, label)
        await assert_keyboard_reachable(page, label)
        name = "-".join(p for p in path.strip("/").split("/") if "{" not in p) or "home"
        await screenshot(page, f"a11y-{name}-{who or 'visitor'}-{size}")
        assert not page.errors, page.errors
        await page.context.close()
