"""Browser tests' shared parts: Debian's Chromium (headless, driven by Playwright), a running
server (`running_shop`) with the people of one show (`shop`, `people`), pages opened as one of
them, and screenshots under ``test-artifacts/e2e/``.

The server runs as ``livecommerce serve`` (SQLite in the test's directory, the shared Redis
under a namespace of its own, localstripe); people and products are made over the REST API."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


PASSWORD = "correct horse"
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


class Shop:
    """A running server and its people, made over the REST API; after `cast_show`, the show
    (``stream_id``) and its product (``product_id``, ``sku_id``)."""

    def __init__(
        self, server: ServerProcess, session: aiohttp.ClientSession, stripe_url: str
    ) -> None:
        self.server = server
        self.stripe_url = stripe_url
        self.url = server.url
        self.session = session
        self.tokens: dict[str, str] = {}
        self.emails: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        self.stream_id = 0
        self.product_id = 0
        self.sku_id = 0

    async def call(
        self, who: str | None, method: str, path: str, json: Any = None, **headers: str
    ) -> Any:
        if who:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        async with self.session.request(
            method, f"{self.url}{path}", json=json, headers=headers
        ) as response:
            body = await response.json()
            assert response.status < 300, body
            return body

    async def save_card(self, who: str, number: str = OK_CARD) -> None:
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
            {"email": email, "password": PASSWORD, "display_name": who.title()},
        )
        self.session.cookie_jar.clear()
        self.tokens[who], self.emails[who] = body["token"], email
        self.ids[who] = int(body["user"]["id"])
        return self.ids[who]


@asynccontextmanager
async def running_shop(
    redis_url: str,
    tmp_path: Path,
    localstripe_url: str | None = None,
    env: dict[str, str] | None = None,
    namespace: str = "e2e",
) -> AsyncIterator[Shop]:
    """``livecommerce serve`` (SQLite in ``tmp_path``, the shared Redis under a namespace of its
    own, localstripe when given, more settings in ``env``), with no one signed up yet."""
    settings = {
        "DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": f"{namespace}{uuid.uuid4().hex[:8]}",
    }
    if localstripe_url is not None:
        settings |= {
            "STRIPE_SECRET_KEY": "sk_test_livecommerce",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_livecommerce",
            "STRIPE_WEBHOOK_SECRET": f"whsec_{uuid.uuid4().hex}",
            "STRIPE_API_BASE": localstripe_url,
            "ICE_HOSTS": "127.0.0.1",
        }
    server = ServerProcess(settings | (env or {}), tmp_path / "server.log")
    try:
        server.wait_ready()
        async with aiohttp.ClientSession() as session:
            yield Shop(server, session, localstripe_url or "")
    finally:
        server.stop()


async def cast_show(shop: Shop, code: str, viewers: tuple[str, ...]) -> None:
    """A creator's show with one product (SKU ``code``) in its lineup, a moderator who accepted
    the invitation, and ``viewers``."""
    await shop.person("creator")
    moderator = await shop.person("moderator")
    for viewer in viewers:
        await shop.person(viewer)
    draft = {**hoodie(code, 12), "image_url": f"{shop.url}/static/img/product.svg"}
    product = (await shop.call("creator", "POST", "/api/products", draft))["product"]
    stream = (
        await shop.call(
            "creator", "POST", "/api/streams", {"title": "Friday drop", "lineup": [product["id"]]}
        )
    )["stream"]
    shop.stream_id, shop.product_id = stream["id"], product["id"]
    shop.sku_id = product["variants"][0]["id"]
    await shop.call(
        "creator", "POST", f"/api/streams/{stream['id']}/moderators", {"user_id": moderator}
    )
    (invitation,) = (await shop.call("moderator", "GET", "/api/invitations"))["invitations"]
    await shop.call("moderator", "POST", f"/api/invitations/{invitation['id']}/accept")


@pytest.fixture
async def shop(
    redis_url: str, localstripe_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Shop, int, int, int]]:
    """A server, a show (creator, moderator, buyer, watcher): (shop, stream, product, sku)."""
    async with running_shop(redis_url, tmp_path, localstripe_url) as shop:
        await cast_show(shop, "E2E-HOODIE", ("buyer", "watcher"))
        # The buyer has a saved card (as after a first checkout): Buy is one tap.
        await shop.save_card("buyer", OK_CARD)
        yield shop, shop.stream_id, shop.product_id, shop.sku_id


@pytest.fixture
async def people(redis_url: str, localstripe_url: str, tmp_path: Path) -> AsyncIterator[Shop]:
    """A server, a creator's show with one product in its lineup, a moderator and a viewer."""
    async with running_shop(redis_url, tmp_path, localstripe_url) as shop:
        await cast_show(shop, "E2E-STATUS", ("viewer",))
        yield shop


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
    """A page in a context of its own, logged in as ``who``; ``page.errors`` collects script
    errors and whatever the Content-Security-Policy refused."""
    context = await browser.new_context(viewport=viewport, base_url=shop.url)
    if who is not None:
        response = await context.request.post(
            "/api/sessions", data={"email": shop.emails[who], "password": PASSWORD}
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


async def screenshot(page: Any, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)
