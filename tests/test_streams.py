from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.live.invitations import MAX_PENDING_PER_STREAM
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import streams
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


async def test_inviting_says_nothing_about_who_has_an_account(
    client: TestClient[Any, Any],
) -> None:
    creator, _moderator, _viewer, stream = await _shop(client)
    ava = await sign_up(client, "ava")
    path = f"/api/streams/{stream['id']}/moderators"
    answers = []
    for email in (ava.email, "nobody-here@example.com"):
        response = await client.post(path, json={"email": email}, headers=creator.headers)
        answers.append((response.status, await response.json()))
    assert answers[0] == answers[1] == (202, {"invited": True})
    pending = await creator.call("GET", f"/api/streams/{stream['id']}/invitations", status=200)
    listed = pending["invitations"]
    assert [i["email"] for i in listed] == [ava.email, "nobody-here@example.com"]
    assert [sorted(i) for i in listed] == [["created_at", "email", "id"]] * 2
    # Inviting is not joining: Ava is no moderator until she accepts.
    seen = await ava.call("GET", f"/api/streams/{stream['id']}", status=200)
    assert seen["role"] == "viewer"
    assert ava.id not in [m["id"] for m in seen["stream"]["moderators"]]


async def test_the_invited_account_accepts_or_declines_and_no_one_else_can(
    client: TestClient[Any, Any],
) -> None:
    creator, _moderator, viewer, stream = await _shop(client)
    ava = await sign_up(client, "ava")
    sid = stream["id"]
    await creator.call("POST", f"/api/streams/{sid}/moderators", {"email": ava.email}, status=202)
    await creator.call("POST", f"/api/streams/{sid}/moderators", {"email": ava.email}, status=202)
    (invitation,) = (await ava.call("GET", "/api/invitations", status=200))["invitations"]
    assert invitation["stream"]["id"] == sid
    assert invitation["stream"]["creator"]["id"] == creator.id
    assert (await viewer.call("GET", "/api/invitations"))["invitations"] == []
    for who in (viewer, creator):
        await who.call("POST", f"/api/invitations/{invitation['id']}/accept", status=404)
    await ava.call("POST", "/api/invitations/made-up-id/accept", status=404)
    accepted = await ava.call("POST", f"/api/invitations/{invitation['id']}/accept", status=200)
    assert accepted["role"] == "moderator"
    assert ava.id in [m["id"] for m in accepted["stream"]["moderators"]]
    assert (await ava.call("GET", f"/api/streams/{sid}"))["role"] == "moderator"
    await ava.call("POST", f"/api/invitations/{invitation['id']}/accept", status=404)

    bob = await sign_up(client, "bob")
    await creator.call("POST", f"/api/streams/{sid}/moderators", {"user_id": bob.id}, status=202)
    (offer,) = (await bob.call("GET", "/api/invitations"))["invitations"]
    await bob.call("POST", f"/api/invitations/{offer['id']}/decline", status=200)
    assert (await bob.call("GET", "/api/invitations"))["invitations"] == []
    assert (await bob.call("GET", f"/api/streams/{sid}"))["role"] == "viewer"
    assert (await creator.call("GET", f"/api/streams/{sid}/invitations"))["invitations"] == []


async def test_the_creator_revokes_invitations_and_removes_moderators(
    client: TestClient[Any, Any],
) -> None:
    creator, moderator, viewer, stream = await _shop(client)
    sid = stream["id"]
    await creator.call(
        "POST", f"/api/streams/{sid}/moderators", {"email": "later@example.com"}, status=202
    )
    (invitation,) = (await creator.call("GET", f"/api/streams/{sid}/invitations"))["invitations"]
    for outsider in (viewer, moderator):
        await outsider.call("GET", f"/api/streams/{sid}/invitations", status=403)
        await outsider.call(
            "DELETE", f"/api/streams/{sid}/invitations/{invitation['id']}", status=403
        )
    await creator.call("DELETE", f"/api/streams/{sid}/invitations/{invitation['id']}", status=200)
    await creator.call("DELETE", f"/api/streams/{sid}/invitations/{invitation['id']}", status=404)
    # An invitation by email waits for whoever signs up with it.
    await creator.call(
        "POST", f"/api/streams/{sid}/moderators", {"email": "Later@Example.com"}, status=202
    )
    response = await client.post(
        "/api/accounts",
        json={"email": "later@example.com", "password": "correct horse", "display_name": "L"},
    )
    client.session.cookie_jar.clear()
    body = await response.json()
    later = Account(client, body["user"], body["token"])
    stream_after = await accept_invitation(later)
    assert later.id in [m["id"] for m in stream_after["moderators"]]
    removed = await creator.call("DELETE", f"/api/streams/{sid}/moderators/{later.id}", status=200)
    assert later.id not in [m["id"] for m in removed["stream"]["moderators"]]
    assert (await later.call("GET", f"/api/streams/{sid}"))["role"] == "viewer"


async def test_a_cookie_from_another_origin_cannot_rotate_the_key(
    client: TestClient[Any, Any],
) -> None:
    creator, _moderator, _viewer, stream = await _shop(client)
    path = f"/api/streams/{stream['id']}/key"
    old = (await creator.call("GET", path))["stream_key"]
    client.session.cookie_jar.update_cookies({"lc_session": creator.token})
    assert (await client.get("/api/me")).status == 200, "the cookie alone authenticates"
    own = str(client.make_url("")).rstrip("/")
    other_port = own.rsplit(":", 1)[0] + ":1"
    for headers in (
        {"Origin": other_port, "Sec-Fetch-Site": "same-site"},
        {"Origin": other_port},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        refused = await client.post(path, headers=headers)
        assert refused.status == 403, headers
        assert (await refused.json())["error"]["code"] == "csrf_refused"
    # A form post (no preflight needed) from anywhere is not JSON: refused before it acts.
    form = await client.post(path, data=b"x=1", headers={"Content-Type": "text/plain"})
    assert form.status == 415
    assert (await creator.call("GET", path))["stream_key"] == old
    # The same page's own request goes through, as does a bearer call from any origin.
    same = await client.post(path, headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert same.status == 201, await same.json()
    client.session.cookie_jar.clear()
    bearer = await client.post(path, headers={**creator.headers, "Origin": other_port})
    assert bearer.status == 201


async def test_keys_made_before_the_lcsk_prefix_still_open_ingest(
    client: TestClient[Any, Any],
) -> None:
    _creator, _moderator, _viewer, stream = await _shop(client)
    legacy = "sk_live_" + "A" * 32
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(
            streams.update().where(streams.c.id == stream["id"]).values(stream_key=legacy)
        )
    sdp = {"Content-Type": "application/sdp"}
    wrong = await client.post(
        f"/whip/{stream['id']}", data=b"nope", headers={**sdp, "Authorization": "Bearer lcsk_x"}
    )
    assert wrong.status == 401
    # The legacy key passes the key check; only the (junk) offer is refused after it.
    right = await client.post(
        f"/whip/{stream['id']}", data=b"nope", headers={**sdp, "Authorization": f"Bearer {legacy}"}
    )
    assert right.status == 400
    assert (await right.json())["error"]["code"] == "invalid_sdp"


async def test_pending_invitations_per_stream_are_bounded(client: TestClient[Any, Any]) -> None:
    creator, _moderator, _viewer, stream = await _shop(client)
    path = f"/api/streams/{stream['id']}/moderators"
    for i in range(MAX_PENDING_PER_STREAM):
        await creator.call("POST", path, {"email": f"guest{i}@example.com"}, status=202)
    full = await creator.call("POST", path, {"email": "one-more@example.com"}, status=409)
    assert full["error"]["code"] == "conflict"
    # Asking again for someone already invited is still harmless.
    await creator.call("POST", path, {"email": "guest0@example.com"}, status=202)
