"""The seller's back office in Debian's Chromium (headless, driven by Playwright): a buyer reports
a damaged item on their order's messages page, the seller answers from the inbox, the buyer sees
the answer (and both are emailed, through a real SMTP server); the studio's figures page draws
its timeline from real viewers, a pin, a flash sale and a purchase. Screenshots go under
``test-artifacts/e2e/``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browsing import DESKTOP, PHONE, Shop, open_page, running_shop, screenshot
from tests.conftest import hoodie
from tests.liveclient import Viewer
from tests.mailbox import Mailbox, body_text, smtp_env


@pytest.fixture
async def office(
    redis_url: str, localstripe_url: str, tmp_path: Path, smtp_server: tuple[int, Mailbox]
) -> AsyncIterator[Shop]:
    port, _mailbox = smtp_server
    env = {"VIEWER_HEARTBEAT_SECONDS": "0.3", "FIGURES_SAMPLE_SECONDS": "0.5", **smtp_env(port)}
    async with running_shop(redis_url, tmp_path, localstripe_url, env) as office:
        yield office


async def test_damaged_report_answered_from_the_inbox_and_the_figures_chart(
    office: Shop, browser: Any, smtp_server: tuple[int, Mailbox], viewers: list[Viewer]
) -> None:
    _port, mailbox = smtp_server
    await office.person("seller")
    await office.person("buyer")
    await office.save_card("buyer")
    product = (
        await office.call(
            "seller",
            "POST",
            "/api/products",
            {**hoodie("BO-HOODIE", 12), "image_url": f"{office.url}/static/img/product.svg"},
        )
    )["product"]
    sku = product["variants"][0]["id"]
    stream = (
        await office.call(
            "seller", "POST", "/api/streams", {"title": "Back office", "lineup": [product["id"]]}
        )
    )["stream"]["id"]

    # A viewer watches; the seller pins the hoodie and runs a flash sale; the buyer buys.
    watcher = Viewer()
    viewers.append(watcher)
    await watcher.connect(office.url, office.tokens["buyer"])
    assert (await watcher.call("join", {"stream_id": stream}))["ok"]
    await watcher.wait_for("viewers", count=1)
    await office.call("seller", "POST", f"/api/streams/{stream}/pin", {"product_id": product["id"]})
    await office.call(
        "seller",
        "POST",
        f"/api/streams/{stream}/sales",
        {"sku_id": sku, "sale_price": 2500, "quantity": 5, "duration_s": 60},
    )
    bought = await office.call(
        "buyer",
        "POST",
        "/api/purchases",
        {"sku_id": sku, "qty": 1, "stream_id": stream},
        **{"Idempotency-Key": uuid.uuid4().hex},
    )
    order = bought["order"]["id"]
    assert bought["order"]["status"] == "paid"

    # The buyer reports the hoodie damaged, on a phone.
    buyer = await open_page(browser, office, "buyer", PHONE)
    await buyer.goto(f"/orders/{order}/messages")
    await buyer.wait_for_selector("#report:not(.hidden)")
    await buyer.select_option("#problem", "damaged")
    await buyer.fill("#report-text", "It arrived with a torn sleeve.")
    await buyer.click("#report-send")
    await buyer.wait_for_selector("#cases .bo-case.unanswered >> text=waiting for the seller")
    await buyer.wait_for_selector("#thread >> text=It arrived with a torn sleeve.")
    assert await buyer.is_hidden("#report")
    await screenshot(buyer, "backoffice-01-buyer-reported", full_page=True)
    mail = await mailbox.wait_for(office.emails["seller"], f"Order #{order}: problem reported")
    assert f"{office.url}/inbox" in body_text(mail)

    # The seller answers from the inbox: the unanswered case is first and highlighted.
    seller = await open_page(browser, office, "seller", DESKTOP)
    await seller.goto("/inbox")
    first = seller.locator("#cases .bo-case").first
    await first.wait_for()
    assert "unanswered" in (await first.get_attribute("class") or "")
    assert f"order #{order}" in await first.inner_text()
    await screenshot(seller, "backoffice-02-inbox", full_page=True)
    await first.locator("textarea").fill("So sorry! A new one ships today.")
    await first.locator("button[type=submit]").click()
    await seller.wait_for_selector("#cases .bo-case .badge.answered")
    assert "0 unanswered" in await seller.inner_text("#summary")
    mail = await mailbox.wait_for(office.emails["buyer"], f"Order #{order}: the seller answered")
    assert f"{office.url}/orders/{order}/messages" in body_text(mail)

    await buyer.reload()
    await buyer.wait_for_selector("#thread >> text=So sorry! A new one ships today.")
    await buyer.wait_for_selector("#cases .badge.answered")
    await screenshot(buyer, "backoffice-03-buyer-answered", full_page=True)

    # The studio links to the figures; the figures page draws the timeline.
    await seller.goto(f"/studio/{stream}")
    assert await seller.get_attribute("#figures-link", "href") == f"/studio/{stream}/figures"
    await seller.click("#figures-link")
    await seller.wait_for_selector("#chart polyline.viewers", state="attached")
    await seller.wait_for_selector("#chart rect.purchase", state="attached")
    await seller.wait_for_selector("#chart line.pin", state="attached")
    await seller.wait_for_selector("#chart line.sale", state="attached")
    assert (await seller.inner_text("#fig-units b")) == "1"
    assert "$25.00" in await seller.inner_text("#fig-gross b")
    assert (await seller.inner_text("#products")).startswith("Hoodie")
    box = await seller.locator("#chart").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 80
    await screenshot(seller, "backoffice-04-figures", full_page=True)

    phone = await open_page(browser, office, "seller", PHONE)
    await phone.goto(f"/studio/{stream}/figures")
    await phone.wait_for_selector("#chart polyline.viewers", state="attached")
    await screenshot(phone, "backoffice-05-figures-phone", full_page=True)
    for page in (buyer, seller, phone):
        assert page.errors == [], page.errors
