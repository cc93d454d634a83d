"""The browser UI: the pages under ``web/``, their static files, and what the pages need to know.

Pages are static HTML with ES modules; the vendored ``socket.io-client`` is copied from
``node_modules`` by ``scripts/setup`` (no CDN at run time). Stripe.js comes from Stripe in
production and from the embedded emulator otherwise.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.live.streams import get_stream
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGES = {
    "/": "index.html",
    "/login": "login.html",
    "/account": "account.html",
    "/orders": "orders.html",
    r"/orders/{id:\d+}": "orders.html",  # the page says so if the order is not the caller's
    r"/orders/{id:\d+}/messages": "messages.html",
    r"/orders/{id:\d+}/return": "returns.html",
    "/inbox": "inbox.html",
    "/orderdesk": "orderdesk.html",
    "/studio/catalog": "catalog.html",
    "/studio/shows": "shows.html",
    r"/invitations/{id:[A-Za-z0-9_-]+}": "invitation.html",
}
SHOW_PAGES = {  # pages of one show: an unknown show is a 404 page, not a page that never loads
    r"/watch/{id:\d+}": "watch.html",
    r"/studio/{id:\d+}": "studio.html",
    r"/console/{id:\d+}": "console.html",
    r"/studio/{id:\d+}/figures": "figures.html",
}
NOT_FOUND_PAGE = "404.html"
NO_SUCH_SHOW = "This show does not exist"
NO_SUCH_PAGE = "Page not found"


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


def _show_page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = WEB_DIR / name

    async def page(request: web.Request) -> web.StreamResponse:
        raw = request.match_info["id"]
        if len(raw) > 10 or not 0 < int(raw) <= MAX_ID:
            return not_found_page(NO_SUCH_SHOW)
        async with request.app[ENGINE].connect() as conn:
            try:
                await get_stream(conn, int(raw))
            except LiveCommerceError as exc:
                if exc.code is not ErrorCode.NOT_FOUND:
                    raise
                return not_found_page(NO_SUCH_SHOW)
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page


def not_found_page(heading: str) -> web.Response:
    """The HTML 404 page, headed ``heading`` (one of this module's fixed sentences)."""
    text = (WEB_DIR / NOT_FOUND_PAGE).read_text(encoding="utf-8")
    return web.Response(
        text=text.replace("{{heading}}", html.escape(heading)),
        status=404,
        content_type="text/html",
        headers={"Cache-Control": "no-cache"},
    )


def wants_html(request: web.Request) -> bool:
    """A browser asking for a page: not the API, and ``text/html`` accepted before JSON."""
    if request.path.startswith("/api/") or request.path == "/api":
        return False
    accept = request.headers.get("Accept", "").lower()
    if "text/html" not in accept:
        return False
    json_at = accept.find("application/json")
    return json_at < 0 or accept.find("text/html") < json_at


@web.middleware
async def html_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths answer browsers with the HTML 404 page; API clients keep the JSON error
    (the error middleware, outside this one, writes it)."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if wants_html(request) and (WEB_DIR / NOT_FOUND_PAGE).is_file():
            return not_found_page(NO_SUCH_PAGE)
        raise


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
    for route, name in SHOW_PAGES.items():
        app.router.add_get(route, _show_page(name))
    app.router.add_static("/static", WEB_DIR / "static", append_version=False)
