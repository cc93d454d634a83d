from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import sign_up


async def test_sign_up_log_in_and_me_by_bearer_and_cookie(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/api/accounts",
        json={"email": "Ava@Example.com", "password": "correct horse", "display_name": "Ava"},
    )
    assert response.status == 201
    body = await response.json()
    assert body["user"]["email"] == "ava@example.com"
    assert "lc_session" in response.cookies
    assert response.cookies["lc_session"]["httponly"]

    response = await client.post(
        "/api/sessions", json={"email": "AVA@example.com", "password": "correct horse"}
    )
    assert response.status == 201
    token = (await response.json())["token"]

    me = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert (await me.json())["user"]["display_name"] == "Ava"
    # The cookie set by the log-in works on its own too.
    client.session.cookie_jar.update_cookies({"lc_session": token})
    me = await client.get("/api/me")
    assert me.status == 200


async def test_log_out_revokes_the_token(client: TestClient[Any, Any]) -> None:
    ava = await sign_up(client, "ava")
    await ava.call("DELETE", "/api/sessions", status=200)
    body = await ava.call("GET", "/api/me", status=401)
    assert body["error"]["code"] == "not_authenticated"


async def test_duplicate_email_and_wrong_password(client: TestClient[Any, Any]) -> None:
    ava = await sign_up(client, "ava")
    response = await client.post(
        "/api/accounts",
        json={"email": ava.email.upper(), "password": "another pass", "display_name": "Ava 2"},
    )
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "email_taken"
    response = await client.post(
        "/api/sessions", json={"email": ava.email, "password": "wrong password"}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "bad_credentials"
    response = await client.post(
        "/api/sessions", json={"email": "nobody@example.com", "password": "whatever1"}
    )
    assert response.status == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "correct horse", "display_name": "A"}, "email"),
        ({"email": "a@example.com", "password": "short", "display_name": "A"}, "password"),
        (
            {"email": "a@example.com", "password": "correct horse", "display_name": ""},
            "display_name",
        ),
        ({"email": "a@example.com", "password": "correct horse"}, "display_name"),
        (
            {
                "email": "a@example.com",
                "password": "correct horse",
                "display_name": "A",
                "role": "admin",
            },
            "role",
        ),
        ([1, 2, 3], "body"),
    ],
)
async def test_bad_sign_up_names_the_field(
    client: TestClient[Any, Any], body: Any, field: str
) -> None:
    response = await client.post("/api/accounts", json=body)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "invalid_input"
    assert any(f["field"] == field for f in error["fields"]), error


async def test_malformed_bodies_and_tokens(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/api/accounts", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_json"
    response = await client.post(
        "/api/sessions",
        data=b"email=a",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 415
    for header in ("Bearer nope", "Bearer " + "x" * 5000, "Basic abc"):
        response = await client.get("/api/me", headers={"Authorization": header})
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "not_authenticated"
    response = await client.post(
        "/api/accounts",
        data=b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
