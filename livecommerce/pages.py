"""The browser UI: the pages under ``web/``, their static files, and what the pages need to know.

Pages are static HTML with ES modules; the vendored ``socket.io-client`` is copied from
``node_modules`` by ``scripts/setup`` (no CDN at run time). Stripe.js comes from Stripe in
production and from the embedded emulator otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from livecommerce.platform.openapi import Operation

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGES = {
    "/": "index.html",
    "/login": "login.html",
    r"/watch/{id:\d+}": "watch.html",
    r"/studio/{id:\d+}": "studio.html",
    r"/console/{id:\d+}": "console.html",
    "/account": "account.html",
    "/orders": "orders.html",
    r"/orders/{id:\d+}": "orders.html",
}


@dataclass(frozen=True)
class BrowserConfig:
    """What a page needs to talk to Stripe and WebRTC; nothing secret."""

    stripe_publishable_key: str
    stripe_js_url: str
    ice_servers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "stripe": {
                "publishable_key": self.stripe_publishable_key,
                "js_url": self.stripe_js_url,
            },
            "ice_servers": [{"urls": url} for url in self.ice_servers],
        }


BROWSER_CONFIG = web.AppKey("browser_config", BrowserConfig)


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = WEB_DIR / name

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[BROWSER_CONFIG].to_dict())


OPERATIONS = (
    Operation("GET", "/api/config", get_config, "Stripe.js and ICE settings for pages", "pages"),
)


def add_pages(app: web.Application) -> None:
    """Serve the pages if ``web/`` is there (it is in a checkout; an API-only install has none)."""
    if not (WEB_DIR / "index.html").is_file():
        return
    for route, name in PAGES.items():
        app.router.add_get(route, _page(name))
    app.router.add_static("/static", WEB_DIR / "static", append_version=False)
