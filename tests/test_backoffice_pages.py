"""The back office's pages are served with their scripts, and a photo upload from a page is
taken only as the page sends it (session cookie + ``X-Requested-With``), never from a form
another site could post."""

from __future__ import annotations

from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from tests.conftest import hoodie, sign_up
from tests.imagefiles import jpeg


async def test_back_office_pages_are_served(client: TestClient[Any, Any]) -> None:
    creator = await sign_up(client, "creator")
    show = (await creator.call("POST", "/api/streams", {"title": "Pages"}, status=201))["stream"]
    client.session.cookie_jar.clear()
    for path, marker in (
        ("/studio/catalog", "catalog.js"),
        ("/studio/shows", "shows.js"),
        ("/invitations/AbC_d-9", "invitation.js"),
        (f"/studio/{show['id']}", "forecast.js"),
    ):
        response = await client.get(path)
        assert response.status == 200, path
        assert marker in await response.text()
    studio = await (await client.get(f"/studio/{show['id']}")).text()
    assert 'href="/studio/catalog"' in studio and 'href="/studio/shows"' in studio
    for script in ("catalog.js", "shows.js", "invitation.js", "forecast.js"):
        assert (await client.get(f"/static/js/{script}")).status == 200
    assert (await client.get("/invitations/bad.id")).status == 404


async def test_a_cookie_upload_needs_the_pages_header(client: TestClient[Any, Any]) -> None:
    seller = await sign_up(client, "seller")
    product = (await seller.call("POST", "/api/products", hoodie("CK-1"), status=201))["product"]
    login = await client.post(
        "/api/sessions", json={"email": seller.email, "password": "correct horse"}
    )
    assert login.status == 201
    url = f"/api/products/{product['id']}/photos"

    def form() -> FormData:
        data = FormData()
        data.add_field("photo", jpeg(), filename="a.jpg", content_type="image/jpeg")
        return data

    # What a form on another site could post: refused before it is read.
    assert (await client.post(url, data=form())).status == 415
    refused = await client.post(
        url,
        data=form(),
        headers={"X-Requested-With": "fetch", "Origin": "https://evil.example"},
    )
    assert refused.status == 403
    taken = await client.post(url, data=form(), headers={"X-Requested-With": "fetch"})
    assert taken.status == 201, await taken.json()
    client.session.cookie_jar.clear()


async def test_a_malformed_multipart_body_is_a_4xx(client: TestClient[Any, Any]) -> None:
    seller = await sign_up(client, "seller")
    product = (await seller.call("POST", "/api/products", hoodie("MP-1"), status=201))["product"]
    boundary = "d1f0bc5dfb739377f80dfe20ad055dcb"
    for body in (
        f"--{boundary}\r\n[{{'x': 1}}, 'not a header']--{boundary}--\r\n",
        f"--{boundary}\r\nContent-Disposition: form-data; name=photo\r\n\r\nabc",
        "no boundary at all",
    ):
        response = await client.post(
            f"/api/products/{product['id']}/photos",
            data=body.encode(),
            headers={
                **seller.headers,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        assert 400 <= response.status < 500, (body, response.status)
        assert "error" in await response.json()
