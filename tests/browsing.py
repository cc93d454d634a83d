"""Browser tests' shared parts: Debian's Chromium (headless, driven by Playwright), a running
server with the people of one show (`shop`), pages opened as one of them, and screenshots under
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
from tests.shopping import OK_CARD

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_FOUND = Path(CHROMIUM).exists()
REQUIRE_BROWSER = os.environ.get("LC_REQUIRE_BROWSER") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    # Nothing but this machine: any other host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


class Shop:
    """A running server and the people of one show, made over the REST API."""

    def __init__(
        self, server: ServerProcess, session: aiohttp.ClientSession, stripe_url: str
    ) -> None:
        self.server = server
        self.stripe_url = stripe_url
        self.url = server.url
        self.session = session
        self.tokens: dict[str, str] = {}
        self.emails: dict[str, str] = {}

    async def call(self, who: str | None, method: str, path: str, json: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        async with self.session.request(
            method, f"{self.url}{path}", json=json, headers=headers
        ) as response:
            body = await response.json()
            assert response.status < 300, body
            return body

    async def save_card(self, who: str, number: str) -> None:
        """Give ``who`` a saved card, as after a first checkout."""
        client = stripe.StripeClient(
            "sk_test_livecommerce",
            base_addresses={"api": self.stripe_url},
            http_client=stripe.HTTPXClient(),
        )
        pm = await client.v1.payment_methods.create_async(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        await self.call(who, "POST", "/api/cards", {"payment_method_id": pm.id})

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


@pytest.fixture
async def shop(
    redis_url: str, localstripe_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Shop, int, int, int]]:
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
        },
        tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        async with aiohttp.ClientSession() as session:
            shop = Shop(server, session, localstripe_url)
            await shop.person("creator")
            moderator = await shop.person("moderator")
            await shop.person("buyer")
            await shop.person("watcher")
            draft = {**hoodie("E2E-HOODIE", 12), "image_url": f"{shop.url}/static/img/product.svg"}
            product = (await shop.call("creator", "POST", "/api/products", draft))["product"]
            stream = (
                await shop.call(
                    "creator",
                    "POST",
                    "/api/streams",
                    {"title": "Friday drop", "lineup": [product["id"]]},
                )
            )["stream"]
            await shop.call(
                "creator",
                "POST",
                f"/api/streams/{stream['id']}/moderators",
                {"user_id": moderator},
            )
            (invitation,) = (await shop.call("moderator", "GET", "/api/invitations"))["invitations"]
            await shop.call("moderator", "POST", f"/api/invitations/{invitation['id']}/accept")
            # The buyer has a saved card (as after a first checkout): Buy is one tap.
            await shop.save_card("buyer", OK_CARD)
            yield shop, stream["id"], product["id"], product["variants"][0]["id"]
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


async def open_page(browser: Any, shop: Shop, who: str | None, viewport: dict[str, int]) -> Any:
    context = await browser.new_context(viewport=viewport, base_url=shop.url)
    if who is not None:
        response = await context.request.post(
            "/api/sessions", data={"email": shop.emails[who], "password": "correct horse"}
        )
        assert response.ok, await response.text()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Whatever the Content-Security-Policy refuses is an error too: the pages must fit it.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.errors = errors
    return page


async def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
