"""WHIP ingest and WHEP playback over HTTP, with real aiortc peers on 127.0.0.1.

A publisher posts its offer to /whip/{id} with the stream key; viewers post theirs to
/whep/{id}; the live room hears the stream go on and off air.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection, RTCSessionDescription

from bench.processes import ServerProcess
from livecommerce.app import create_app
from livecommerce.media import aiortcseam
from tests.conftest import Account, sign_up
from tests.liveclient import Viewer as RoomViewer
from tests.mediapeers import CONFIG, LOOPBACK, NumberedCamera, Tone, Viewer, until
from tests.test_live import _url


@pytest.fixture(autouse=True)
def loopback_peers() -> Iterator[None]:
    """This process's own peers offer 127.0.0.1 only, as the servers do."""
    LOOPBACK.apply_host_addresses()
    yield
    aiortcseam.pin_host_addresses(())


class Peers:
    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []
        self.viewers: list[Viewer] = []

    def publisher(self, camera: NumberedCamera | None = None) -> RTCPeerConnection:
        pc = RTCPeerConnection(CONFIG)
        pc.addTransceiver(camera or NumberedCamera(keyframe_every=30), direction="sendonly")
        pc.addTransceiver(Tone(), direction="sendonly")
        self.pcs.append(pc)
        return pc

    def viewer(self) -> Viewer:
        viewer = Viewer()
        self.viewers.append(viewer)
        return viewer


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    made = Peers()
    yield made
    for pc in made.pcs:
        await pc.close()
    for viewer in made.viewers:
        await viewer.close()


async def _offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def _post(
    client: TestClient[Any, Any], path: str, sdp: str, key: str | None = None
) -> tuple[int, Any, Any]:
    headers = {"Content-Type": "application/sdp"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    response = await client.post(path, data=sdp, headers=headers, allow_redirects=False)
    body = await (response.text() if response.status == 201 else response.json())
    return response.status, body, response.headers


async def _stream(client: TestClient[Any, Any]) -> tuple[Account, int, str]:
    creator = await sign_up(client, "creator")
    created = await creator.call("POST", "/api/streams", {"title": "On air"}, status=201)
    return creator, created["stream"]["id"], created["stream_key"]


async def _go_live(
    client: TestClient[Any, Any], pc: RTCPeerConnection, stream_id: int, key: str
) -> str:
    status, answer, headers = await _post(client, f"/whip/{stream_id}", await _offer(pc), key)
    assert status == 201, answer
    assert headers["Content-Type"].startswith("application/sdp")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return str(headers["Location"])


async def _watch(client: TestClient[Any, Any], viewer: Viewer, stream_id: int) -> str:
    status, answer, headers = await _post(client, f"/whep/{stream_id}", await _offer(viewer.pc))
    assert status == 201, answer
    assert "a=sendonly" in answer
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return str(headers["Location"])


async def test_publish_watch_leave_and_return(
    client: TestClient[Any, Any], peers: Peers, viewers: list[RoomViewer]
) -> None:
    creator, stream_id, key = await _stream(client)
    room = RoomViewer()
    viewers.append(room)
    await room.connect(_url(client))
    state = (await room.call("join", {"stream_id": stream_id}))["state"]
    assert state["on_air"] is False and state["status"] == "scheduled"

    whip = await _go_live(client, peers.publisher(), stream_id, key)
    assert whip.startswith(f"/whip/{stream_id}/")
    heard = await room.wait_for("stream:status", on_air=True)
    assert heard["status"] == "live"  # the first time on air makes the show live
    stream = (await creator.call("GET", f"/api/streams/{stream_id}"))["stream"]
    assert stream["status"] == "live" and stream["started_at"]

    first, second = peers.viewer(), peers.viewer()
    whep = await _watch(client, first, stream_id)
    await _watch(client, second, stream_id)
    for viewer in (first, second):
        await viewer.wait_frames(10)
        assert viewer.encoded[0].keyframe, "a viewer starts on a keyframe"
        assert len(set(viewer.numbers)) >= 5, "the picture moves"
    await until(lambda: first.audio_frames > 10)

    # A viewer leaves; unknown sessions are 404.
    assert (await client.delete(whep)).status == 200
    assert (await client.delete(whep)).status == 404
    assert (await client.delete(f"/whep/{stream_id}/nope")).status == 404

    # Only the stream key ends the broadcast; then the room hears it went off air.
    assert (await client.delete(whip)).status == 401
    assert (await client.delete(whip, headers={"Authorization": "Bearer wrong"})).status == 401
    ended = await client.delete(whip, headers={"Authorization": f"Bearer {key}"})
    assert ended.status == 200
    await room.wait_for("stream:status", on_air=False)
    assert (await room.call("join", {"stream_id": stream_id}))["state"]["on_air"] is False

    # The publisher comes back: the viewer who stayed picks up again, from a keyframe.
    before = len(second.numbers)
    room.events.clear()
    await _go_live(
        client, peers.publisher(NumberedCamera(start=5000, keyframe_every=30)), stream_id, key
    )
    await room.wait_for("stream:status", on_air=True)
    await until(lambda: any(n >= 5000 for n in second.numbers[before:]))


async def test_whip_and_whep_refuse_bad_requests_clearly(
    client: TestClient[Any, Any], peers: Peers
) -> None:
    creator, stream_id, key = await _stream(client)
    offer = await _offer(peers.publisher())

    status, body, _ = await _post(client, f"/whip/{stream_id}", offer)
    assert status == 401 and body["error"]["code"] == "not_authenticated"
    status, body, _ = await _post(client, f"/whip/{stream_id}", offer, "wrong-key")
    assert status == 401
    response = await client.post(
        f"/whip/{stream_id}",
        data=offer,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    assert response.status == 415
    assert (await response.json())["error"]["code"] == "unsupported_media_type"
    status, body, _ = await _post(client, f"/whip/{stream_id}", "hello", key)
    assert status == 400 and body["error"]["code"] == "invalid_sdp"
    status, body, _ = await _post(client, f"/whip/{stream_id}", "v=0\r\nnonsense\r\n", key)
    assert status == 400 and body["error"]["code"] == "invalid_sdp"
    status, body, _ = await _post(client, "/whip/999999", offer, key)
    assert status == 404

    # Watching a stream that never went on air.
    status, body, _ = await _post(client, f"/whep/{stream_id}", await _offer(peers.viewer().pc))
    assert status == 409 and body["error"]["code"] == "stream_offline"

    # A second publisher while the first is connected is refused.
    await _go_live(client, peers.publisher(), stream_id, key)
    status, body, _ = await _post(
        client, f"/whip/{stream_id}", await _offer(peers.publisher()), key
    )
    assert status == 409 and body["error"]["code"] == "already_publishing"

    # CORS preflight, and no trickle ICE.
    preflight = await client.options(f"/whip/{stream_id}")
    assert preflight.status == 204
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]

    # An ended show takes no publisher.
    await creator.call("PATCH", f"/api/streams/{stream_id}", {"status": "ended"})
    other = peers.publisher()
    status, body, _ = await _post(client, f"/whip/{stream_id}", await _offer(other), key)
    assert status in (409,) and body["error"]["code"] in (
        "invalid_transition",
        "already_publishing",
    )


async def test_whep_on_another_process_is_redirected_to_the_media_holder(
    server_processes: list[ServerProcess], peers: Peers
) -> None:
    a, b = server_processes
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{a.url}/api/accounts",
            json={"email": "host@example.com", "password": "correct horse", "display_name": "H"},
        ) as response:
            token = (await response.json())["token"]
        session.cookie_jar.clear()
        async with session.post(
            f"{a.url}/api/streams",
            json={"title": "Two media processes"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            created = await response.json()
        stream_id, key = created["stream"]["id"], created["stream_key"]

        publisher = peers.publisher()
        async with session.post(
            f"{a.url}/whip/{stream_id}",
            data=await _offer(publisher),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        ) as response:
            assert response.status == 201
            answer = await response.text()
        await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        on_air = False
        for _ in range(100):  # until the first frames reached the relay
            async with session.get(f"{b.url}/api/streams/{stream_id}/room") as response:
                on_air = (await response.json())["room"]["on_air"]
            if on_air:
                break
            await asyncio.sleep(0.1)
        assert on_air

        viewer = peers.viewer()
        offer = await _offer(viewer.pc)
        async with session.post(
            f"{b.url}/whep/{stream_id}",
            data=offer,
            headers={"Content-Type": "application/sdp"},
            allow_redirects=False,
        ) as response:
            assert response.status == 307
            assert response.headers["Location"] == f"{a.url}/whep/{stream_id}"
        # Following the redirect (as browsers do, keeping the POST) reaches the relay on A.
        async with session.post(
            f"{b.url}/whep/{stream_id}", data=offer, headers={"Content-Type": "application/sdp"}
        ) as response:
            assert response.status == 201
            answer = await response.text()
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await viewer.wait_frames(5)
        assert viewer.encoded[0].keyframe


async def test_behind_nat_the_answer_announces_the_public_address(
    aiohttp_client: Any, settings: Any, peers: Peers
) -> None:

    client = await aiohttp_client(create_app(replace(settings, ice_announced_address="192.0.2.7")))
    _creator, stream_id, key = await _stream(client)
    status, answer, _ = await _post(
        client, f"/whip/{stream_id}", await _offer(peers.publisher()), key
    )
    assert status == 201
    candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(line.split()[4] == "192.0.2.7" for line in candidates)
    assert "127.0.0.1" not in answer


async def test_a_truncated_media_line_is_invalid_sdp(client: TestClient[Any, Any]) -> None:
    _creator, stream_id, key = await _stream(client)
    cut = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=vi"
    status, body, _ = await _post(client, f"/whep/{stream_id}", cut)
    assert status == 400 and body["error"]["code"] == "invalid_sdp"
    status, body, _ = await _post(client, f"/whip/{stream_id}", cut, key)
    assert status == 400 and body["error"]["code"] == "invalid_sdp"
