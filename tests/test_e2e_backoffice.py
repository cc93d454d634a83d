"""The seller's back office in Debian's Chromium (headless, driven by Playwright): a buyer reports
a damaged item on their order's messages page, the seller answers from the inbox, the buyer sees
the answer (and both are emailed, through a real SMTP server); the studio's figures page draws
its timeline from real viewers, a pin, a flash sale and a purchase. Screenshots go under
``test-artifacts/e2e/``."""

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
from tests.conftest import hoodie
from tests.liveclient import Viewer
from tests.mailbox import Mailbox, body_text
from tests.shopping import OK_CARD

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_FOUND = Path(CHROMIUM).exists()
REQUIRE_BROWSER = os.environ.get("LC_REQUIRE_BROWSER") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Nothing but this machine: any other host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


class Office:
    """A running server and its people, made over the REST API."""

    def __init__(self, server: ServerProcess, session: aiohttp.ClientSession, stripe_url: str):
        self.url = server.url
        self.session = session
        self.stripe_url = stripe_url
        self.tokens: dict[str, str] = {}
        self.emails: dict[str, str] = {}

    async def call(self, who: str | None, method: str, path: str, json: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        if method == "POST" and path == "/api/purchases":
            headers["Idempotency-Key"] = uuid.uuid4().hex
        async with self.session.request(
            method, f"{self.url}{path}", json=json, headers=headers
        ) as response:
            body = await response.json()
            assert response.status < 300, body
            return body

    async def person(self, who: str) -> int:
        email = f"{who}-{uuid.uuid4().hex[:6]}@example.com"
        body = await self.call(
            None,
            "POST",
            "/api/accounts",
            {"email": email, "password": "correct horse", "display_name": who.title()},
        )
        self.session.cookie_jar.clear()
        self.tokens[who], self.emails[who] = body["token"], email
        return int(body["user"]["id"])

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
async def office(
    redis_url: str, localstripe_url: str, tmp_path: Path, smtp_server: tuple[int, Mailbox]
) -> AsyncIterator[Office]:
    port, _mailbox = smtp_server
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
            "VIEWER_HEARTBEAT_SECONDS": "0.3",
            "FIGURES_SAMPLE_SECONDS": "0.5",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_TLS": "none",
        },
        tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        async with aiohttp.ClientSession() as session:
            yield Office(server, session, localstripe_url)
    finally:
        server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM_FOUND:
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def _page(browser: Any, office: Office, who: str, viewport: dict[str, int]) -> Any:
    context = await browser.new_context(viewport=viewport, base_url=office.url)
    response = await context.request.post(
        "/api/sessions", data={"email": office.emails[who], "password": "correct horse"}
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


async def test_damaged_report_answered_from_the_inbox_and_the_figures_chart(
    office: Office, browser: Any, smtp_server: tuple[int, Mailbox], viewers: list[Viewer]
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
        "buyer", "POST", "/api/purchases", {"sku_id": sku, "qty": 1, "stream_id": stream}
    )
    order = bought["order"]["id"]
    assert bought["order"]["status"] == "paid"

    # The buyer reports the hoodie damaged, on a phone.
    buyer = await _page(browser, office, "buyer", PHONE)
    await buyer.goto(f"/orders/{order}/messages")
    await buyer.wait_for_selector("#report:not(.hidden)")
    await buyer.select_option("#problem", "damaged")
    await buyer.fill("#report-text", "It arrived with a torn sleeve.")
    await buyer.click("#report-send")
    await buyer.wait_for_selector("#cases .bo-case.unanswered >> text=waiting for the seller")
    await buyer.wait_for_selector("#thread >> text=It arrived with a torn sleeve.")
    assert await buyer.is_hidden("#report")
    await _shot(buyer, "backoffice-01-buyer-reported")
    mail = await mailbox.wait_for(office.emails["seller"], f"Order #{order}: problem reported")
    assert f"{office.url}/inbox" in body_text(mail)

    # The seller answers from the inbox: the unanswered case is first and highlighted.
    seller = await _page(browser, office, "seller", DESKTOP)
    await seller.goto("/inbox")
    first = seller.locator("#cases .bo-case").first
    await first.wait_for()
    assert "unanswered" in (await first.get_attribute("class") or "")
    assert f"order #{order}" in await first.inner_text()
    await _shot(seller, "backoffice-02-inbox")
    await first.locator("textarea").fill("So sorry! A new one ships today.")
    await first.locator("button[type=submit]").click()
    await seller.wait_for_selector("#cases .bo-case .badge.answered")
    assert "0 unanswered" in await seller.inner_text("#summary")
    mail = await mailbox.wait_for(office.emails["buyer"], f"Order #{order}: the seller answered")
    assert f"{office.url}/orders/{order}/messages" in body_text(mail)

    await buyer.reload()
    await buyer.wait_for_selector("#thread >> text=So sorry! A new one ships today.")
    await buyer.wait_for_selector("#cases .badge.answered")
    await _shot(buyer, "backoffice-03-buyer-answered")

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
    await _shot(seller, "backoffice-04-figures")

    phone = await _page(browser, office, "seller", PHONE)
    await phone.goto(f"/studio/{stream}/figures")
    await phone.wait_for_selector("#chart polyline.viewers", state="attached")
    await _shot(phone, "backoffice-05-figures-phone")
    for page in (buyer, seller, phone):
        assert page.errors == [], page.errors
