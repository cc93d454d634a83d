"""Security headers on every response, and the Content-Security-Policy the pages live under.

The CSP allows exactly what the pages load: our own scripts, styles and sockets; Stripe.js from
Stripe (its script, frames and API) or from the emulator's origin; WHEP from the other
processes' ``MEDIA_ORIGINS``; product images from anywhere over HTTPS. No inline script or
style attribute is allowed, so the pages keep their styles in ``app.css`` and set dynamic ones
through the CSSOM.
"""

from __future__ import annotations

from aiohttp import web

from livecommerce.crosssite import origin_of
from livecommerce.pages import BROWSER_CONFIG
from livecommerce.platform.resources import SETTINGS

STRIPE_JS = "https://js.stripe.com"
# Stripe's own list for Stripe.js and the Payment Element (docs.stripe.com/security/guide#csp).
_STRIPE = {
    "script-src": (STRIPE_JS, "https://*.js.stripe.com"),
    "frame-src": (STRIPE_JS, "https://*.js.stripe.com", "https://hooks.stripe.com"),
    "connect-src": ("https://api.stripe.com",),
}

_EVERY_RESPONSE = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# Before start-up has built the real one (never served in practice).
_LOCKED_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

PAGE_CSP = web.AppKey("page_csp", str)


def page_policy(stripe_js_url: str, media_origins: tuple[str, ...]) -> str:
    """The pages' CSP for where Stripe.js comes from and where else WHEP may be answered."""
    stripe: dict[str, tuple[str, ...]]
    if stripe_js_url.startswith(STRIPE_JS + "/"):
        stripe = _STRIPE
    else:
        own = origin_of(stripe_js_url)
        stripe = {"script-src": (own,), "frame-src": (own,), "connect-src": (own,)}
    media = tuple(origin_of(o) for o in media_origins)
    directives = {
        "default-src": ("'self'",),
        "script-src": ("'self'", *stripe["script-src"]),
        "style-src": ("'self'",),
        "img-src": ("'self'", "data:", "blob:", "https:"),
        "media-src": ("'self'", "blob:"),
        "font-src": ("'self'",),
        # 'self' covers ws:// and wss:// to this host too (CSP Level 3).
        "connect-src": ("'self'", *stripe["connect-src"], *media),
        "frame-src": stripe["frame-src"],
        "worker-src": ("'self'",),
        "object-src": ("'none'",),
        "base-uri": ("'none'",),
        "form-action": ("'self'",),
        "frame-ancestors": ("'none'",),
    }
    return "; ".join(f"{k} {' '.join(dict.fromkeys(v))}" for k, v in directives.items())


async def _build_policy(app: web.Application) -> None:
    # BROWSER_CONFIG is known once checkout has started (the emulator's port is picked then).
    config = app.get(BROWSER_CONFIG)
    js_url = config.stripe_js_url if config is not None else STRIPE_JS + "/v3/"
    app[PAGE_CSP] = page_policy(js_url, app[SETTINGS].media_origins)


def response_headers(app: web.Application) -> list[tuple[str, str]]:
    """The headers every response carries (unless a handler set its own)."""
    # The same policy on every response, not only on text/html: a 304 revalidating a page
    # carries no content type, and the browser then applies the 304's headers to the page.
    csp = app.get(PAGE_CSP, _LOCKED_CSP)
    return [*_EVERY_RESPONSE.items(), ("Content-Security-Policy", csp)]


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in response_headers(request.app):
        response.headers.setdefault(name, value)


def install_security_headers(app: web.Application) -> None:
    app.on_startup.append(_build_policy)
    app.on_response_prepare.append(_add_headers)
