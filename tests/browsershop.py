"""A real server with a show's people and Debian's Chromium, for the browser tests of the pages'
status, 404, moderation and phone layout (tests/test_e2e_pages.py).

The server runs as ``livecommerce serve`` (SQLite in the test's directory, the shared Redis
under a namespace of its own, localstripe); people and products are made over the REST API.
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

from bench.processes import ServerProcess
from tests.conftest import hoodie

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_FOUND = Path(CHROMIUM).exists()
REQUIRE_BROWSER = os.environ.get("LC_REQUIRE_BROWSER") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
PASSWORD = "correct horse"


class ShowPeople:
    """A running server and the people of one show (creator, moderator, viewers)."""

    def __init__(self, server: ServerProcess, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.url = server.url
        self.session = session
        self.tokens: dict[str, str] = {}
        self.emails: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        self.stream_id = 0
        self.product_id = 0
        self.sku_id = 0

    async def call(self, who: str | None, method: str, path: str, json: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
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
            {"email": email, "password": PASSWORD, "display_name": who.title()},
        )
        self.session.cookie_jar.clear()
        self.tokens[who], self.emails[who] = body["token"], email
        self.ids[who] = int(body["user"]["id"])
        return self.ids[who]


@pytest.fixture
async def people(redis_url: str, localstripe_url: str, tmp_path: Path) -> AsyncIterator[ShowPeople]:
    """A server, a creator's show with one product in its lineup, a moderator and a viewer."""
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
            show = ShowPeople(server, session)
            await show.person("creator")
            moderator = await show.person("moderator")
            await show.person("viewer")
            draft = {**hoodie("E2E-STATUS", 12), "image_url": f"{show.url}/static/img/product.svg"}
            product = (await show.call("creator", "POST", "/api/products", draft))["product"]
            stream = (
                await show.call(
                    "creator",
                    "POST",
                    "/api/streams",
                    {"title": "Friday drop", "lineup": [product["id"]]},
                )
            )["stream"]
            show.stream_id = stream["id"]
            show.product_id = product["id"]
            show.sku_id = product["variants"][0]["id"]
            await show.call(
                "creator", "POST", f"/api/streams/{stream['id']}/moderators", {"user_id": moderator}
            )
            (invitation,) = (await show.call("moderator", "GET", "/api/invitations"))["invitations"]
            await show.call("moderator", "POST", f"/api/invitations/{invitation['id']}/accept")
            yield show
    finally:
        server.stop()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
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


async def open_page(
    chromium: Any, show: ShowPeople, who: str | None, viewport: dict[str, int]
) -> Any:
    """A page in a context of its own, logged in as ``who``; ``page.errors`` collects script
    errors and whatever the Content-Security-Policy refused."""
    context = await chromium.new_context(viewport=viewport, base_url=show.url)
    if who is not None:
        response = await context.request.post(
            "/api/sessions", data={"email": show.emails[who], "password": PASSWORD}
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


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
