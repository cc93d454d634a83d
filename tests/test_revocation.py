"""A token that stops working (log-out, password change) stops working everywhere at once: REST,
and the sockets it opened; a moderator removed from a stream loses the room's controls at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
from tests.conftest import Account, accept_invitation, hoodie, sign_up
from tests.liveclient import Viewer


@pytest.fixture
async def live(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


def _url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def _log_in(client: TestClient[Any, Any], account: Account, password: str) -> str:
    response = await client.post(
        "/api/sessions", json={"email": account.email, "password": password}
    )
    body = await response.json()
    assert response.status == 201, body
    client.session.cookie_jar.clear()
    return str(body["token"])


async def _refused_with(url: str, token: str) -> str:
    viewer = Viewer()
    refused: list[Any] = []
    viewer.sio.on("connect_error", lambda data: refused.append(data), namespace="/live")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await viewer.connect(url, token)
    return str(refused[0]["message"])


async def test_log_out_disconnects_that_tokens_sockets_at_once(
    live: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    ava = await sign_up(live, "ava")
    other_token = await _log_in(live, ava, "correct horse")  # a second device
    phone, laptop = Viewer(), Viewer()
    viewers += [phone, laptop]
    await phone.connect(_url(live), ava.token)
    await laptop.connect(_url(live), other_token)
    assert (await phone.call("clock:sync", {}))["ok"]

    started = time.monotonic()
    await ava.call("DELETE", "/api/sessions", status=200)
    await phone.wait_disconnected(within_s=1.0)
    assert time.monotonic() - started < 1.0
    assert ("session:ended", {"code": "not_authenticated", "message": "you were logged out"}) in (
        phone.events
    )
    assert await _refused_with(_url(live), ava.token) == "not_authenticated"
    # The other device's session is another token: it goes on.
    await asyncio.sleep(0.2)
    assert laptop.sio.connected
    assert (await laptop.call("clock:sync", {}))["ok"]


async def test_a_password_change_ends_every_session(
    live: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    ava = await sign_up(live, "ava")
    other_token = await _log_in(live, ava, "correct horse")
    phone, laptop = Viewer(), Viewer()
    viewers += [phone, laptop]
    await phone.connect(_url(live), ava.token)
    await laptop.connect(_url(live), other_token)
    path = "/api/me/password"

    wrong = await ava.call(
        "POST", path, {"current_password": "not it", "new_password": "battery staple"}, status=401
    )
    assert wrong["error"]["code"] == "bad_credentials"
    short = await ava.call(
        "POST", path, {"current_password": "correct horse", "new_password": "short"}, status=422
    )
    assert short["error"]["code"] == "invalid_input"
    assert phone.sio.connected and laptop.sio.connected  # nothing changed yet

    changed = await ava.call(
        "POST",
        path,
        {"current_password": "correct horse", "new_password": "battery staple"},
        status=200,
    )
    new_token = changed["token"]
    assert new_token not in (ava.token, other_token) and changed["user"]["id"] == ava.id
    await phone.wait_disconnected(within_s=1.0)
    await laptop.wait_disconnected(within_s=1.0)
    for old in (ava.token, other_token):
        response = await live.get("/api/me", headers={"Authorization": f"Bearer {old}"})
        assert response.status == 401
        assert await _refused_with(_url(live), old) == "not_authenticated"
    response = await live.get("/api/me", headers={"Authorization": f"Bearer {new_token}"})
    assert response.status == 200
    response = await live.post(
        "/api/sessions", json={"email": ava.email, "password": "correct horse"}
    )
    assert response.status == 401
    await _log_in(live, ava, "battery staple")
    fresh = Viewer()
    viewers.append(fresh)
    await fresh.connect(_url(live), new_token)
    assert (await fresh.call("clock:sync", {}))["ok"]


async def test_a_removed_moderator_loses_the_room_controls_while_connected(
    live: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    creator = await sign_up(live, "creator")
    moderator = await sign_up(live, "moderator")
    product = (
        await creator.call(
            "POST", "/api/products", hoodie(f"R-{uuid.uuid4().hex[:6]}", 5), status=201
        )
    )["product"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Team", "lineup": [product["id"]]}, status=201
        )
    )["stream"]
    await creator.call(
        "POST", f"/api/streams/{stream['id']}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    mod = Viewer()
    viewers.append(mod)
    await mod.connect(_url(live), moderator.token)
    pin = {"stream_id": stream["id"], "product_id": product["id"]}
    assert (await mod.call("join", {"stream_id": stream["id"]}))["state"]["role"] == "moderator"
    assert (await mod.call("pin", pin))["ok"]

    await creator.call("DELETE", f"/api/streams/{stream['id']}/moderators/{moderator.id}")
    assert (await mod.call("pin", pin))["error"]["code"] == "forbidden"
    assert (await mod.call("unpin", {"stream_id": stream["id"]}))["error"]["code"] == "forbidden"
    assert (await mod.call("chat:slowmode", {"stream_id": stream["id"], "seconds": 5}))["error"][
        "code"
    ] == "forbidden"


async def test_a_socket_whose_token_expires_is_disconnected(
    aiohttp_client: Any, settings: Settings, viewers: list[Viewer]
) -> None:
    live = await aiohttp_client(create_app(replace(settings, token_ttl_s=3)))
    ava = await sign_up(live, "ava")
    socket = Viewer()
    viewers.append(socket)
    await socket.connect(_url(live), ava.token)
    assert (await socket.call("clock:sync", {}))["ok"]
    await socket.wait_disconnected(within_s=6)
    assert await _refused_with(_url(live), ava.token) == "not_authenticated"
