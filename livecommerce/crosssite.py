"""Cross-site request forgery: a browser's cookie must not act for another site's page.

A mutating request that a browser could have sent on its own (the session cookie rides along,
no ``Authorization`` header) is refused with 403 ``csrf_refused`` when the browser says it came
from elsewhere: ``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an ``Origin`` other
than ours (``PUBLIC_URL``'s, or the request's own scheme and host). ``same-site`` is
refused too: another port or subdomain is another origin. Such a request may not use the form
and ``text/plain`` types that need no CORS preflight (415): JSON bodies say
``application/json`` (``read_json`` insists), and body-less POSTs send no type at all. A
``multipart/form-data`` upload (a product photo) is taken with an ``X-Requested-With`` header:
a page elsewhere cannot add that header without the preflight this API never grants.

Log-in and sign-up are checked even without a cookie (log-in CSRF would sign a victim into the
attacker's account). Bearer-token calls cannot be forged by a page (the header would need a
CORS preflight, which this API never grants), and the routes that never read the cookie are
left alone: the Stripe webhook (signed), WHIP/WHEP (stream key or anonymous; called across
origins on purpose) and Socket.IO (its own same-origin check).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from livecommerce.accounts.routes import COOKIE
from livecommerce.errors import ErrorCode, Handler, LiveCommerceError
from livecommerce.platform.resources import SETTINGS

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_EXEMPT = ("/whip/", "/whep/", "/socket.io/", "/api/stripe/webhook")
_SESSION_ROUTES = frozenset({"/api/sessions", "/api/accounts"})
_FETCH_SITES_OK = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What a page on any site may POST without a CORS preflight (which this API never grants).
_NO_PREFLIGHT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` as browsers write ``Origin`` (default ports left out)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return ""
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _own_origins(request: web.Request) -> set[str]:
    """``PUBLIC_URL``'s origin (what browsers see behind a TLS proxy) and the request's own.

    The request's own is safe to accept: a page elsewhere cannot choose our ``Host``, and a page
    whose own host resolves to us (DNS rebinding) gets no cookie of ours to send.
    """
    own = {origin_of(f"{request.scheme}://{request.host}")}
    public_url = request.app[SETTINGS].public_url
    if public_url:
        own.add(origin_of(public_url))
    return own


def _browser_may_have_sent(request: web.Request) -> bool:
    if request.method not in MUTATING or request.path.startswith(_EXEMPT):
        return False
    if request.headers.get("Authorization", "")[:7].lower() == "bearer ":
        return False
    return COOKIE in request.cookies or request.path in _SESSION_ROUTES


def check_cross_site(request: web.Request) -> None:
    """Raise 403 ``csrf_refused`` or 415 for a forgeable request from another origin."""
    if not _browser_may_have_sent(request):
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in _FETCH_SITES_OK:
        raise LiveCommerceError(
            ErrorCode.CSRF_REFUSED, "this request came from another site's page; refused"
        )
    origin = request.headers.get("Origin")
    if origin is not None and origin_of(origin) not in _own_origins(request):
        raise LiveCommerceError(
            ErrorCode.CSRF_REFUSED, "this request came from another origin; refused"
        )
    if "Content-Type" in request.headers and request.content_type in _NO_PREFLIGHT_TYPES:
        if request.content_type == "multipart/form-data" and "X-Requested-With" in request.headers:
            return
        raise LiveCommerceError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json, or no body"
        )


@web.middleware
async def cross_site_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_cross_site(request)
    return await handler(request)
