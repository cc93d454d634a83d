from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
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


async def _limited_client(aiohttp_client: Any, settings: Settings, **limits: Any) -> Any:
    return await aiohttp_client(create_app(replace(settings, **limits)))


async def _log_in(client: Any, email: str, password: str, **headers: str) -> Any:
    return await client.post(
        "/api/sessions", json={"email": email, "password": password}, headers=headers
    )


async def test_log_in_failures_lock_the_account_even_for_the_right_password(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await _limited_client(
        aiohttp_client, settings, login_failures_per_account=3, auth_limit_window_s=600
    )
    ava = await sign_up(client, "ava")
    for _ in range(3):
        assert (await _log_in(client, ava.email, "wrong password")).status == 401
    locked = await _log_in(client, ava.email.upper(), "correct horse")
    assert locked.status == 429
    body = await locked.json()
    assert body["error"]["code"] == "rate_limited"
    assert 0 < int(locked.headers["Retry-After"]) <= 600
    assert body["error"]["retry_after"] == int(locked.headers["Retry-After"])
    # An email without an account locks the same way: the limit says nothing about who exists.
    for _ in range(3):
        assert (await _log_in(client, "nobody@example.com", "whatever1")).status == 401
    assert (await _log_in(client, "nobody@example.com", "whatever1")).status == 429
    # Someone else, from the same address, is not locked out by Ava's lock.
    bob = await sign_up(client, "bob")
    assert (await _log_in(client, bob.email, "correct horse")).status == 201


async def test_right_passwords_do_not_use_up_the_limit(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await _limited_client(aiohttp_client, settings, login_failures_per_account=2)
    ava = await sign_up(client, "ava")
    for _ in range(5):
        assert (await _log_in(client, ava.email, "correct horse")).status == 201
    assert (await _log_in(client, ava.email, "wrong password")).status == 401
    assert (await _log_in(client, ava.email, "correct horse")).status == 201


async def test_a_parallel_burst_of_guesses_gets_no_more_than_the_limit(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await _limited_client(aiohttp_client, settings, login_failures_per_account=3)
    ava = await sign_up(client, "ava")
    answers = await asyncio.gather(
        *(_log_in(client, ava.email, f"guess number {i}") for i in range(30))
    )
    statuses = sorted(r.status for r in answers)
    assert statuses == [401] * 3 + [429] * 27


async def test_failures_per_address_and_trusted_proxies(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await _limited_client(aiohttp_client, settings, login_failures_per_address=4)
    for i in range(4):
        assert (await _log_in(client, f"guess{i}@example.com", "whatever1")).status == 401
    # The address is spent: another account, even a real one, is refused from it.
    ava = await sign_up(client, "ava")
    assert (await _log_in(client, ava.email, "correct horse")).status == 429
    # X-Forwarded-For is ignored unless the peer is a trusted proxy.
    spoofed = await _log_in(client, ava.email, "correct horse", **{"X-Forwarded-For": "10.9.9.9"})
    assert spoofed.status == 429

    proxied = await _limited_client(
        aiohttp_client,
        replace(settings, redis_namespace=settings.redis_namespace + "p"),
        login_failures_per_address=4,
        trusted_proxies=("127.0.0.1/32",),
    )
    carol = await sign_up(proxied, "carol")
    behind = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    for i in range(4):
        answer = await _log_in(proxied, f"guess{i}@example.com", "whatever1", **behind)
        assert answer.status == 401
    assert (await _log_in(proxied, carol.email, "correct horse", **behind)).status == 429
    # Another client behind the same proxy is counted on its own.
    other = {"X-Forwarded-For": "198.51.100.2"}
    assert (await _log_in(proxied, carol.email, "correct horse", **other)).status == 201


async def test_sign_ups_per_address_are_limited(aiohttp_client: Any, settings: Settings) -> None:
    client = await _limited_client(aiohttp_client, settings, signups_per_address=2)
    await sign_up(client, "ava")
    await sign_up(client, "bob")
    refused = await client.post(
        "/api/accounts",
        json={"email": "carol@example.com", "password": "correct horse", "display_name": "C"},
    )
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "rate_limited"
    assert "Retry-After" in refused.headers


async def test_log_in_and_sign_up_from_another_origin_are_refused(
    client: TestClient[Any, Any],
) -> None:
    ava = await sign_up(client, "ava")
    own = str(client.make_url("")).rstrip("/")
    for headers in (
        {"Origin": "http://127.0.0.1:1"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": own},
    ):
        answer = await _log_in(client, ava.email, "correct horse", **headers)
        assert answer.status == 403, headers
        assert (await answer.json())["error"]["code"] == "csrf_refused"
        signing_up = await client.post(
            "/api/accounts",
            json={"email": "x@example.com", "password": "correct horse", "display_name": "X"},
            headers=headers,
        )
        assert signing_up.status == 403
    same = await _log_in(
        client, ava.email, "correct horse", Origin=own, **{"Sec-Fetch-Site": "same-origin"}
    )
    assert same.status == 201


async def test_behind_a_proxy_public_urls_origin_is_ours(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(replace(settings, public_url="https://shop.example")))
    ava = await sign_up(client, "ava")
    ours = await _log_in(client, ava.email, "correct horse", Origin="https://shop.example")
    assert ours.status == 201
    for origin in ("http://shop.example", "https://shop.example:8443", "https://evil.example"):
        answer = await _log_in(client, ava.email, "correct horse", Origin=origin)
        assert answer.status == 403, origin
