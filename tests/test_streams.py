from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Account, accept_invitation, hoodie, sign_up


async def _shop(client: TestClient[Any, Any]) -> tuple[Account, Account, Account, dict[str, Any]]:
    creator = await sign_up(client, "creator")
    moderator = await sign_up(client, "moderator")
    viewer = await sign_up(client, "viewer")
    product = (await creator.call("POST", "/api/products", hoodie(), status=201))["product"]
    created = await creator.call(
        "POST",
        "/api/streams",
        {
            "title": "Friday drop",
            "scheduled_at": "2030-01-01T18:00:00+00:00",
            "lineup": [product["id"]],
        },
        status=201,
    )
    stream = created["stream"]
    assert created["stream_key"].startswith("lcsk_")
    await creator.call(
        "POST", f"/api/streams/{stream['id']}/moderators", {"email": moderator.email}, status=202
    )
    await accept_invitation(moderator)
    return creator, moderator, viewer, stream


async def test_create_and_read_a_stream(client: TestClient[Any, Any]) -> None:
    creator, moderator, viewer, stream = await _shop(client)
    assert stream["status"] == "scheduled"
    assert stream["scheduled_at"] == "2030-01-01T18:00:00+00:00"
    seen = await viewer.call("GET", f"/api/streams/{stream['id']}", status=200)
    assert seen["role"] == "viewer"
    assert seen["stream"]["moderators"][0]["id"] == moderator.id
    assert (await moderator.call("GET", f"/api/streams/{stream['id']}"))["role"] == "moderator"
    assert (await creator.call("GET", f"/api/streams/{stream['id']}"))["role"] == "creator"
    anonymous = await (await client.get(f"/api/streams/{stream['id']}")).json()
    assert anonymous["role"] == "viewer"
    assert "stream_key" not in anonymous["stream"]
    listing = await (await client.get("/api/streams?status=scheduled")).json()
    assert [s["id"] for s in listing["streams"]] == [stream["id"]]


# (action, method, path template, body, who may) -- the role matrix for every stream write.
MATRIX = [
    ("edit", "PATCH", "/api/streams/{id}", {"title": "New title"}, {"creator"}),
    ("add moderator", "POST", "/api/streams/{id}/moderators", None, {"creator"}),
    ("remove moderator", "DELETE", "/api/streams/{id}/moderators/{mod}", None, {"creator"}),
    ("read key", "GET", "/api/streams/{id}/key", None, {"creator"}),
    ("rotate key", "POST", "/api/streams/{id}/key", None, {"creator"}),
]


@pytest.mark.parametrize(("action", "method", "template", "body", "allowed"), MATRIX)
async def test_role_matrix(
    client: TestClient[Any, Any],
    action: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
    allowed: set[str],
) -> None:
    creator, moderator, viewer, stream = await _shop(client)
    outsider = await sign_up(client, "outsider")
    path = template.format(id=stream["id"], mod=moderator.id)
    if action == "add moderator":
        body = {"user_id": outsider.id}
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status == 401, action
    for name, account in (("viewer", viewer), ("moderator", moderator), ("creator", creator)):
        response = await client.request(method, path, json=body, headers=account.headers)
        result = await response.json()
        if name in allowed:
            assert response.status in (200, 201, 202), (action, name, result)
        else:
            assert response.status == 403, (action, name, result)
            assert result["error"]["code"] == "forbidden"


async def test_rotating_the_key_replaces_it(client: TestClient[Any, Any]) -> None:
    creator, _moderator, _viewer, stream = await _shop(client)
    old = (await creator.call("GET", f"/api/streams/{stream['id']}/key"))["stream_key"]
    new = (await creator.call("POST", f"/api/streams/{stream['id']}/key", status=201))["stream_key"]
    assert new != old
    assert (await creator.call("GET", f"/api/streams/{stream['id']}/key"))["stream_key"] == new


async def test_status_moves_forward_only(client: TestClient[Any, Any]) -> None:
    creator, _moderator, _viewer, stream = await _shop(client)
    path = f"/api/streams/{stream['id']}"
    live = await creator.call("PATCH", path, {"status": "live"}, status=200)
    assert live["stream"]["started_at"] is not None
    back = await creator.call("PATCH", path, {"status": "scheduled"}, status=409)
    assert back["error"]["code"] == "invalid_transition"
    ended = await creator.call("PATCH", path, {"status": "ended"}, status=200)
    assert ended["stream"]["ended_at"] is not None
    await creator.call("PATCH", path, {"status": "live"}, status=409)


async def test_lineup_must_be_the_creators_own_products(client: TestClient[Any, Any]) -> None:
    creator, _moderator, viewer, stream = await _shop(client)
    theirs = (await viewer.call("POST", "/api/products", hoodie("OTHER-1"), status=201))["product"]
    mine = (await creator.call("POST", "/api/products", hoodie("MINE-2"), status=201))["product"]
    path = f"/api/streams/{stream['id']}"
    refused = await creator.call("PATCH", path, {"lineup": [theirs["id"]]}, status=422)
    assert theirs["id"] in refused["error"]["products"]
    await creator.call("PATCH", path, {"lineup": [mine["id"], mine["id"]]}, status=422)
    ordered = [mine["id"], *stream["lineup"]]
    done = await creator.call("PATCH", path, {"lineup": ordered}, status=200)
    assert done["stream"]["lineup"] == ordered


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "", {"title": ""}),
        ("POST", "", {"title": "x", "scheduled_at": "tomorrow"}),
        ("POST", "", {"title": "x", "scheduled_at": "2030-01-01T18:00:00"}),
        ("POST", "", {"title": "x", "lineup": [0]}),
        ("POST", "", {"title": "x", "lineup": "1,2"}),
        ("PATCH", "/{id}", {"status": "paused"}),
        ("POST", "/{id}/moderators", {}),
        ("POST", "/{id}/moderators", {"user_id": 1, "email": "a@example.com"}),
        ("POST", "/{id}/moderators", {"user_id": -4}),
    ],
)
async def test_bad_stream_input(
    client: TestClient[Any, Any], method: str, suffix: str, body: dict[str, Any]
) -> None:
    creator, _moderator, _viewer, stream = await _shop(client)
    path = "/api/streams" + suffix.format(id=stream["id"])
    result = await creator.call(method, path, body, status=422)
    assert result["error"]["code"] == "invalid_input"


async def test_unknown_things_are_404(client: TestClient[Any, Any]) -> None:
    creator, _moderator, _viewer, stream = await _shop(client)
    await creator.call("GET", "/api/streams/424242", status=404)
    await creator.call("PATCH", "/api/streams/424242", {"title": "x"}, status=404)
    await creator.call(
        "POST", f"/api/streams/{stream['id']}/moderators", {"user_id": 424242}, status=404
    )
    await creator.call(
        "POST", f"/api/streams/{stream['id']}/moderators", {"user_id": creator.id}, status=422
    )
