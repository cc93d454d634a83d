"""The browser pages are served, and the endpoints only they use answer as the pages expect."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from livecommerce.pages import WEB_DIR
from livecommerce.securityheaders import page_policy
from tests.conftest import hoodie, sign_up
from tests.test_checkout import OK_CARD, card


async def test_pages_and_their_scripts_are_served(client: TestClient[Any, Any]) -> None:
    creator = await sign_up(client, "creator")
    show = (await creator.call("POST", "/api/streams", {"title": "Drop"}, status=201))["stream"]
    for path, marker in (
        ("/", "home.js"),
        ("/login", "login.js"),
        (f"/watch/{show['id']}", "viewer.js"),
        (f"/studio/{show['id']}", "studio.js"),
        (f"/console/{show['id']}", "console.js"),
    ):
        response = await client.get(path)
        assert response.status == 200, path
        assert marker in await response.text()
    script = await client.get("/static/js/viewer.js")
    assert script.status == 200
    assert "javascript" in script.headers["Content-Type"]
    vendored = await client.get("/static/vendor/socket.io.esm.min.js")
    assert vendored.status == 200, "scripts/setup copies socket.io-client from node_modules"
    assert (await client.get("/watch/not-a-number")).status == 404


async def test_config_points_pages_at_the_stripe_emulator(
    client: TestClient[Any, Any], localstripe_url: str
) -> None:
    config = await (await client.get("/api/config")).json()
    assert config["stripe"]["js_url"] == f"{localstripe_url}/js.stripe.com/v3/"
    assert config["ice_servers"] == []
    async with (
        aiohttp.ClientSession() as session,
        session.get(config["stripe"]["js_url"]) as response,
    ):
        assert response.status == 200
        assert "confirmCardSetup" in await response.text()


async def test_a_card_set_up_in_the_browser_is_saved_for_one_tap(
    client: TestClient[Any, Any], localstripe_url: str, settings: Any
) -> None:
    buyer = await sign_up(client, "buyer")
    setup = await buyer.call("POST", "/api/cards/setup", {}, status=201)
    secret = setup["client_secret"]
    assert secret.startswith("seti_")
    # What the emulator's Stripe.js does with the card field: confirm the SetupIntent with the
    # publishable key; the card is then attached to the buyer's customer.
    seti = secret.split("_secret_")[0]
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{localstripe_url}/v1/setup_intents/{seti}/confirm",
            json={
                "key": "pk_test_livecommerce",
                "client_secret": secret,
                "use_stripe_sdk": True,
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": OK_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
                },
            },
        ) as response,
    ):
        confirmed = await response.json()
        assert response.status == 200, confirmed
    assert confirmed["status"] == "succeeded"
    saved = await buyer.call(
        "POST", "/api/cards", {"payment_method_id": confirmed["payment_method"]}, status=201
    )
    assert saved["card"]["label"].endswith("4242")
    assert (await buyer.call("GET", "/api/cards"))["card"]["label"] == saved["card"]["label"]
    assert (await client.post("/api/cards/setup", json={})).status == 401


async def test_sales_figures_count_paid_units_for_the_team_only(
    client: TestClient[Any, Any], settings: Any
) -> None:
    creator = await sign_up(client, "creator")
    buyer = await sign_up(client, "buyer")
    product = (
        await creator.call(
            "POST", "/api/products", hoodie(f"F-{uuid.uuid4().hex[:6]}", 5), status=201
        )
    )["product"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Figures", "lineup": [product["id"]]}, status=201
        )
    )["stream"]
    await buyer.call(
        "POST", "/api/cards", {"payment_method_id": await card(settings, OK_CARD)}, status=201
    )
    response = await client.post(
        "/api/purchases",
        json={"sku_id": product["variants"][0]["id"], "qty": 2, "stream_id": stream["id"]},
        headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status == 201, await response.text()
    figures = (await creator.call("GET", f"/api/streams/{stream['id']}/sales"))["sales"]
    assert figures["by_status"]["paid"] == {"orders": 1, "units": 2, "amount": {"USD": 9800}}
    refused = await buyer.call("GET", f"/api/streams/{stream['id']}/sales", status=403)
    assert refused["error"]["code"] == "forbidden"


async def test_pages_carry_a_csp_fit_for_them_and_every_response_nosniff(
    client: TestClient[Any, Any], localstripe_url: str
) -> None:
    page = await client.get("/login")
    policy = page.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["script-src"] == ["'self'", localstripe_url]
    assert localstripe_url in directives["connect-src"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    for path in ("/login", "/static/js/login.js", "/api/streams", "/api/nope"):
        response = await client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    # A page revalidated (304, no content type) keeps its policy: browsers apply the new headers.
    etag = page.headers["ETag"]
    revalidated = await client.get("/login", headers={"If-None-Match": etag})
    assert revalidated.status == 304
    assert revalidated.headers["Content-Security-Policy"] == policy


def test_real_stripe_gets_stripes_own_origins() -> None:
    policy = page_policy("https://js.stripe.com/v3/", ("https://media-2.example.com:8443/",))
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert "https://js.stripe.com" in directives["script-src"]
    assert "https://hooks.stripe.com" in directives["frame-src"]
    assert "https://api.stripe.com" in directives["connect-src"]
    assert "https://media-2.example.com:8443" in directives["connect-src"]


def test_pages_hold_no_inline_script_style_or_handler() -> None:
    """The CSP refuses them; a page that had one would break in the browser."""
    for page in WEB_DIR.glob("*.html"):
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page.name
        assert not re.search(r"\sstyle=", html), page.name
        assert not re.search(r"\son[a-z]+=", html), page.name
