"""A show's phase (scheduled, on air, paused, ended): decided once on the server, told alike by
the API and the live room; mute and unmute; viewer counts without the team; 404 pages."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.config import Settings
from livecommerce.demo import ACCOUNTS, seed_demo
from livecommerce.events.bus import EVENTS
from livecommerce.events.streams import StreamOffAir, StreamOnAir
from livecommerce.live.streams import ShowPhase, StreamStatus, show_phase
from livecommerce.platform.db.engine import create_engine
from tests.conftest import Account, accept_invitation, sign_up
from tests.liveclient import Viewer


def test_the_phase_is_the_status_joined_with_the_on_air_signal() -> None:
    table = {
        (StreamStatus.SCHEDULED, False): ShowPhase.SCHEDULED,
        (StreamStatus.SCHEDULED, True): ShowPhase.ON_AIR,  # becoming live in the same notice
        (StreamStatus.LIVE, True): ShowPhase.ON_AIR,
        (StreamStatus.LIVE, False): ShowPhase.PAUSED,
        (StreamStatus.ENDED, False): ShowPhase.ENDED,
        (StreamStatus.ENDED, True): ShowPhase.ENDED,  # its last frames are being cut off
    }
    for (status, on_air), phase in table.items():
        assert show_phase(status, on_air) is phase, (status, on_air)


async def _show(client: TestClient[Any, Any], who: Account) -> dict[str, Any]:
    return (await who.call("POST", "/api/streams", {"title": "Drop"}, status=201))["stream"]  # type: ignore[no-any-return]


async def _phase_everywhere(
    client: TestClient[Any, Any], stream_id: int, who: Account
) -> tuple[str, str, str]:
    """The phase as GET /api/streams/{id}, the listing and GET .../room show it."""
    one = (await who.call("GET", f"/api/streams/{stream_id}", status=200))["stream"]
    listed = (await who.call("GET", "/api/streams?limit=200", status=200))["streams"]
    (in_list,) = [s for s in listed if s["id"] == stream_id]
    room = (await who.call("GET", f"/api/streams/{stream_id}/room", status=200))["room"]
    assert in_list["on_air"] == one["on_air"] == room["on_air"]
    assert in_list["status"] == one["status"] == room["status"]
    return one["phase"], in_list["phase"], room["phase"]


async def _said(viewer: Viewer, phase: str) -> dict[str, Any]:
    return await viewer.wait_for("stream:status", phase=phase)  # type: ignore[no-any-return]


async def test_every_transition_is_told_alike_by_the_api_and_the_room(
    client: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    creator = await sign_up(client, "creator")
    stream_id = (await _show(client, creator))["id"]
    url = str(client.make_url("/")).rstrip("/")
    fan = Viewer()
    viewers.append(fan)
    await fan.connect(url)
    state = (await fan.call("join", {"stream_id": stream_id}))["state"]
    assert (state["status"], state["on_air"], state["phase"]) == ("scheduled", False, "scheduled")
    assert await _phase_everywhere(client, stream_id, creator) == ("scheduled",) * 3

    events = client.app[EVENTS]
    # The media's word: the publisher's frames flow. The show becomes live, on air.
    await events.publish(StreamOnAir(stream_id=stream_id))
    said = await _said(fan, "on_air")
    assert (said["status"], said["on_air"]) == ("live", True)
    assert await _phase_everywhere(client, stream_id, creator) == ("on_air",) * 3

    # The creator's browser closed: the publisher is gone, the show is not over.
    await events.publish(StreamOffAir(stream_id=stream_id))
    said = await _said(fan, "paused")
    assert (said["status"], said["on_air"]) == ("live", False)
    assert await _phase_everywhere(client, stream_id, creator) == ("paused",) * 3
    late = Viewer()
    viewers.append(late)
    await late.connect(url)
    assert (await late.call("join", {"stream_id": stream_id}))["state"]["phase"] == "paused"

    # Back on air, then gone again: paused and on air alternate as often as it happens.
    fan.events.clear()
    await events.publish(StreamOnAir(stream_id=stream_id))
    await _said(fan, "on_air")
    assert await _phase_everywhere(client, stream_id, creator) == ("on_air",) * 3
    await events.publish(StreamOffAir(stream_id=stream_id))
    await _said(fan, "paused")

    # The creator ends the paused show: allowed, and told to the room.
    ended = await creator.call(
        "PATCH", f"/api/streams/{stream_id}", {"status": "ended"}, status=200
    )
    assert (ended["stream"]["phase"], ended["stream"]["on_air"]) == ("ended", False)
    said = await _said(fan, "ended")
    assert (said["status"], said["on_air"]) == ("ended", False)
    assert await _phase_everywhere(client, stream_id, creator) == ("ended",) * 3
    # An ended show stays ended, whatever the media says late.
    await events.publish(StreamOnAir(stream_id=stream_id))
    await asyncio.sleep(0.2)
    assert await _phase_everywhere(client, stream_id, creator) == ("ended",) * 3
    again = await creator.call("PATCH", f"/api/streams/{stream_id}", {"status": "live"})
    assert again["error"]["code"] == "invalid_transition"


async def test_a_scheduled_show_can_be_ended_and_others_cannot_end_it(
    client: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    creator = await sign_up(client, "creator")
    moderator = await sign_up(client, "moderator")
    stream_id = (await _show(client, creator))["id"]
    await creator.call(
        "POST", f"/api/streams/{stream_id}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    refused = await moderator.call("PATCH", f"/api/streams/{stream_id}", {"status": "ended"})
    assert refused["error"]["code"] == "forbidden"
    ended = await creator.call(
        "PATCH", f"/api/streams/{stream_id}", {"status": "ended"}, status=200
    )
    assert ended["stream"]["phase"] == "ended"
    assert await _phase_everywhere(client, stream_id, moderator) == ("ended",) * 3


async def test_mute_and_unmute_over_real_sockets_and_rest(
    client: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    creator = await sign_up(client, "creator")
    moderator = await sign_up(client, "moderator")
    fan = await sign_up(client, "fan")
    other = await sign_up(client, "other")
    stream_id = (await _show(client, creator))["id"]
    await creator.call(
        "POST", f"/api/streams/{stream_id}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    url = str(client.make_url("/")).rstrip("/")
    mod, fan_socket, other_socket = Viewer(), Viewer(), Viewer()
    viewers += [mod, fan_socket, other_socket]
    await mod.connect(url, moderator.token)
    await fan_socket.connect(url, fan.token)
    await other_socket.connect(url, other.token)
    room = {"stream_id": stream_id}
    for socket in (mod, fan_socket, other_socket):
        assert (await socket.call("join", room))["ok"]

    muted = await mod.call("chat:mute", {**room, "user_id": fan.id, "seconds": 600})
    assert muted["ok"]
    heard = await other_socket.wait_for("chat:muted", user_id=fan.id)
    assert heard["display_name"] == "fan"  # a name, not "User 3"
    assert heard["until"] == muted["until"]
    refused = await fan_socket.call("chat:send", {**room, "text": "hello?"})
    assert refused["error"]["code"] == "forbidden"

    # Only the team may unmute.
    for socket in (fan_socket, other_socket):
        denied = await socket.call("chat:unmute", {**room, "user_id": fan.id})
        assert denied["error"]["code"] == "forbidden"
    bad = await mod.call("chat:unmute", {**room, "user_id": "fan"})
    assert bad["error"]["code"] == "invalid_input"

    lifted = await mod.call("chat:unmute", {**room, "user_id": fan.id})
    assert lifted == {"ok": True, "lifted": True}
    heard = await other_socket.wait_for("chat:unmuted", user_id=fan.id)
    assert heard == {"stream_id": stream_id, "user_id": fan.id, "display_name": "fan"}
    assert (await fan_socket.call("chat:send", {**room, "text": "I'm back"}))["ok"]

    # The REST twin: the creator mutes and unmutes; a viewer may not.
    await creator.call(
        "POST", f"/api/streams/{stream_id}/mutes", {"user_id": fan.id, "seconds": 60}, status=201
    )
    refused = await other.call("DELETE", f"/api/streams/{stream_id}/mutes/{fan.id}", status=403)
    assert refused["error"]["code"] == "forbidden"
    twin = await creator.call("DELETE", f"/api/streams/{stream_id}/mutes/{fan.id}", status=200)
    assert twin == {"user_id": fan.id, "lifted": True}
    await fan_socket.wait_for("chat:unmuted", user_id=fan.id)
    # Unmuting someone not muted is harmless; an unknown person is a 404.
    again = await creator.call("DELETE", f"/api/streams/{stream_id}/mutes/{fan.id}", status=200)
    assert again["lifted"] is False
    await creator.call("DELETE", f"/api/streams/{stream_id}/mutes/999999999", status=404)
    await creator.call("DELETE", f"/api/streams/999999999/mutes/{fan.id}", status=404)


async def _count_settles(socket: Viewer, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while asyncio.get_running_loop().time() < deadline:
        counts = [data["count"] for name, data in socket.events if name == "viewers"]
        if counts and counts[-1] == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the count never settled on {count}: {socket.events}")


async def test_viewer_counts_leave_out_the_creator_and_moderators(
    client: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    creator = await sign_up(client, "creator")
    moderator = await sign_up(client, "moderator")
    fan = await sign_up(client, "fan")
    stream_id = (await _show(client, creator))["id"]
    await creator.call(
        "POST", f"/api/streams/{stream_id}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    url = str(client.make_url("/")).rstrip("/")
    studio, console, fan_socket, anonymous = Viewer(), Viewer(), Viewer(), Viewer()
    viewers += [studio, console, fan_socket, anonymous]
    await studio.connect(url, creator.token)
    await console.connect(url, moderator.token)
    await fan_socket.connect(url, fan.token)
    await anonymous.connect(url)
    room = {"stream_id": stream_id}
    assert (await studio.call("join", room))["state"]["viewers"] == 0
    assert (await console.call("join", room))["state"]["viewers"] == 0
    assert (await fan_socket.call("join", room))["state"]["viewers"] == 1
    assert (await anonymous.call("join", room))["state"]["viewers"] == 2
    await _count_settles(studio, 2)
    snapshot = (await creator.call("GET", f"/api/streams/{stream_id}/room", status=200))["room"]
    assert snapshot["viewers"] == 2

    # A second tab of the creator's counts no more than the first.
    second = Viewer()
    viewers.append(second)
    await second.connect(url, creator.token)
    assert (await second.call("join", room))["state"]["viewers"] == 2
    # The team leaving changes nothing; a viewer leaving does.
    await console.sio.disconnect()
    await second.sio.disconnect()
    await asyncio.sleep(0.3)
    snapshot = (await creator.call("GET", f"/api/streams/{stream_id}/room", status=200))["room"]
    assert snapshot["viewers"] == 2
    await fan_socket.sio.disconnect()
    await _count_settles(studio, 1)
    snapshot = (await creator.call("GET", f"/api/streams/{stream_id}/room", status=200))["room"]
    assert snapshot["viewers"] == 1


async def test_the_heartbeat_keeps_counting_viewers_only(
    client: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    """The heartbeat refreshes the audience's entries, never adds the team's back."""
    from livecommerce.live.transport.socketioserver import SOCKETIO

    creator = await sign_up(client, "creator")
    fan = await sign_up(client, "fan")
    stream_id = (await _show(client, creator))["id"]
    url = str(client.make_url("/")).rstrip("/")
    studio, fan_socket = Viewer(), Viewer()
    viewers += [studio, fan_socket]
    await studio.connect(url, creator.token)
    await fan_socket.connect(url, fan.token)
    await studio.call("join", {"stream_id": stream_id})
    await fan_socket.call("join", {"stream_id": stream_id})
    namespace = client.app[SOCKETIO].namespace_handlers["/live"]
    beat = asyncio.create_task(namespace.keep_counting(every_s=0.1))
    try:
        await asyncio.sleep(0.5)
    finally:
        beat.cancel()
        with pytest.raises(asyncio.CancelledError):
            await beat
    snapshot = (await creator.call("GET", f"/api/streams/{stream_id}/room", status=200))["room"]
    assert snapshot["viewers"] == 1


async def test_browsers_get_html_404_pages_and_api_clients_json(
    client: TestClient[Any, Any],
) -> None:
    creator = await sign_up(client, "creator")
    stream_id = (await _show(client, creator))["id"]
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for path, heading in (
        ("/no/such/page", "Page not found"),
        ("/watch/not-a-number", "Page not found"),
        ("/watch/999999999", "This show does not exist"),
        ("/studio/999999999", "This show does not exist"),
        ("/console/999999999", "This show does not exist"),
        ("/watch/99999999999999", "This show does not exist"),
        ("/watch/0", "This show does not exist"),
    ):
        response = await client.get(path, headers=browser)
        assert response.status == 404, path
        assert response.content_type == "text/html", path
        text = await response.text()
        assert f'<h1 id="missing-h">{heading}</h1>' in text, path
        assert "{{" not in text
    for path in (f"/watch/{stream_id}", f"/studio/{stream_id}", f"/console/{stream_id}"):
        assert (await client.get(path, headers=browser)).status == 200, path
    # API clients keep the JSON error, whatever they accept.
    for path, headers in (
        ("/api/no-such-thing", browser),
        ("/api/streams/999999999", browser),
        ("/no/such/page", {"Accept": "application/json"}),
        ("/no/such/page", {"Accept": "application/json, text/html;q=0.5"}),
        ("/no/such/page", {}),
    ):
        response = await client.get(path, headers=headers)
        assert response.status == 404, path
        body = await response.json()
        assert body["error"]["code"] == "not_found", path


async def test_the_demo_points_its_creator_at_their_own_show(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    first = await seed_demo(settings)
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            from livecommerce.accounts.users import find_user_by_email
            from livecommerce.live.streams import list_streams

            demo_creator = await find_user_by_email(conn, ACCOUNTS[0][0])
            assert demo_creator is not None
            (own,) = await list_streams(conn, creator_id=demo_creator.id)
    finally:
        await engine.dispose()
    assert f"/studio/{own.id}\n" in first

    # Another user's show goes live (listed first): the printout still names the demo's own.
    stranger = await sign_up(client, f"stranger-{uuid.uuid4().hex[:4]}")
    theirs = (await _show(client, stranger))["id"]
    await client.app[EVENTS].publish(StreamOnAir(stream_id=theirs))
    await stranger.call("GET", f"/api/streams/{theirs}", status=200)
    listed = (await stranger.call("GET", "/api/streams?limit=200", status=200))["streams"]
    assert listed[0]["id"] == theirs
    again = await seed_demo(settings)
    assert f"/studio/{own.id}\n" in again and f"/studio/{theirs}\n" not in again

    # The demo's show ended: the next start plans a new one of the creator's, same lineup.
    response = await client.post(
        "/api/sessions", json={"email": ACCOUNTS[0][0], "password": "livecommerce-demo"}
    )
    token = (await response.json())["token"]
    client.session.cookie_jar.clear()
    headers = {"Authorization": f"Bearer {token}"}
    ended = await client.patch(f"/api/streams/{own.id}", json={"status": "ended"}, headers=headers)
    assert ended.status == 200
    third = await seed_demo(settings)
    mine = await client.get(f"/api/streams?creator={demo_creator.id}", headers=headers)
    shows = (await mine.json())["streams"]
    fresh = [s for s in shows if s["status"] == "scheduled"]
    assert len(fresh) == 1 and fresh[0]["id"] != own.id
    assert fresh[0]["lineup"] == list(own.lineup)
    assert [m["id"] for m in fresh[0]["moderators"]] == [m for m, _ in own.moderators]
    assert f"/studio/{fresh[0]['id']}\n" in third
    # And it stays that one on the next start.
    assert f"/studio/{fresh[0]['id']}\n" in await seed_demo(settings)
