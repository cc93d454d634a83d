"""WHIP ingest and WHEP playback over HTTP, with real aiortc peers on 127.0.0.1.

A publisher posts its offer to /whip/{id} with the stream key; viewers post theirs to
/whep/{id}; the live room hears the stream go on and off air.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection, RTCSessionDescription

from bench.processes import ServerProcess
from livecommerce.app import create_app
from livecommerce.events.bus import EVENTS
from livecommerce.events.streams import StreamOffAir, StreamOnAir
from livecommerce.media.hub import MEDIA
from livecommerce.media.rtc import aiortcseam
from tests.conftest import Account, sign_up
from tests.liveclient import Viewer as RoomViewer
from tests.mediapeers import CONFIG, LOOPBACK, NumberedCamera, Tone, Viewer, until
from tests.test_live import _url

REPOSITORY = Path(__file__).resolve().parent.parent


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


async def test_going_on_and_off_air_are_events_on_the_bus(
    client: TestClient[Any, Any], peers: Peers
) -> None:
    """The relay tells when the first frame arrives and when the publisher leaves; the hub
    publishes it (a StreamOnAir is repeated every few seconds while on air: its record expires).
    """
    heard: list[StreamOnAir | StreamOffAir] = []

    async def hear(event: StreamOnAir | StreamOffAir) -> None:
        heard.append(event)

    client.app[EVENTS].subscribe(StreamOnAir, hear)
    client.app[EVENTS].subscribe(StreamOffAir, hear)
    _creator, stream_id, key = await _stream(client)
    whip = await _go_live(client, peers.publisher(), stream_id, key)
    await until(lambda: bool(heard))
    assert heard == [StreamOnAir(stream_id=stream_id)]
    ended = await client.delete(whip, headers={"Authorization": f"Bearer {key}"})
    assert ended.status == 200
    await until(lambda: isinstance(heard[-1], StreamOffAir))
    assert [k for k, _ in itertools.groupby(heard)] == [
        StreamOnAir(stream_id=stream_id),
        StreamOffAir(stream_id=stream_id),
    ]


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


@pytest.mark.parametrize("server_env", [{"WHEP_REDIRECT": "true"}])
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
    status, body, _ = await _post(client, f"/whip/{stream_id}", cut, key)
    assert status == 400 and body["error"]["code"] == "invalid_sdp"
    # WHEP reads no offer for a stream that is not on air (test_bad_sdp_is_400_never_500 covers
    # bad offers to a stream on air).
    status, body, _ = await _post(client, f"/whep/{stream_id}", cut)
    assert status == 409 and body["error"]["code"] == "stream_offline"


# --- hardening: nothing kept for streams not on air, sessions that end, cut-offs --------------


def _media_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("media-") and not t.done()]


def _without_candidates(sdp: str) -> str:
    """An offer no ICE check can reach: no candidate, and no a=end-of-candidates either
    (GStreamer's webrtcbin never writes one)."""
    kept = [
        line
        for line in sdp.splitlines()
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    ]
    return "\r\n".join(kept) + "\r\n"


async def test_whep_keeps_nothing_for_a_stream_that_is_not_on_air(
    client: TestClient[Any, Any], peers: Peers
) -> None:
    hub = client.app[MEDIA]
    _creator, stream_id, _key = await _stream(client)
    offer = await _offer(peers.viewer().pc)
    for _ in range(50):
        status, body, _ = await _post(client, "/whep/987654", "v=0")
        assert status == 404, body
        status, body, _ = await _post(client, "/whep/987654", offer)
        assert status == 404, body
        status, body, _ = await _post(client, f"/whep/{stream_id}", offer)
        assert status == 409 and body["error"]["code"] == "stream_offline"
    assert hub.stream_count() == 0
    assert _media_tasks() == []


async def test_whep_sessions_are_capped_per_address_and_unconnected_ones_freed(
    aiohttp_client: Any, settings: Any, peers: Peers
) -> None:
    client = await aiohttp_client(
        create_app(replace(settings, whep_sessions_per_address=2, ice_connect_timeout_s=2))
    )
    hub = client.app[MEDIA]
    _creator, stream_id, key = await _stream(client)
    await _go_live(client, peers.publisher(), stream_id, key)
    await until(lambda: hub.is_on_air(stream_id))

    # Two offers whose answers are never applied: those viewers never connect.
    for _ in range(2):
        status, _answer, _ = await _post(client, f"/whep/{stream_id}", await _offer(Viewer().pc))
        assert status == 201
    status, body, headers = await _post(
        client, f"/whep/{stream_id}", await _offer(peers.viewer().pc)
    )
    assert status == 429 and body["error"]["code"] == "too_many_sessions"
    assert int(headers["Retry-After"]) >= 1
    assert headers["Access-Control-Allow-Origin"] == "*"

    # Not connected within ICE_CONNECT_TIMEOUT_SECONDS, they are closed and their places freed.
    await until(lambda: hub.viewer_count(stream_id) == 0, seconds=6)
    first, second = peers.viewer(), peers.viewer()
    first_whep = await _watch(client, first, stream_id)
    await _watch(client, second, stream_id)
    await first.wait_frames(3)
    await second.wait_frames(3)
    status, body, _ = await _post(client, f"/whep/{stream_id}", await _offer(peers.viewer().pc))
    assert status == 429
    # A connected viewer keeps its place; leaving gives it back.
    await asyncio.sleep(2.5)
    assert hub.viewer_count(stream_id) == 2
    assert (await client.delete(first_whep)).status == 200
    await _watch(client, peers.viewer(), stream_id)


async def test_viewers_past_capacity_are_refused_and_the_show_stays_on_air(
    aiohttp_client: Any, settings: Any, peers: Peers
) -> None:
    client = await aiohttp_client(create_app(replace(settings, max_viewers_per_process=3)))
    hub = client.app[MEDIA]
    _creator, stream_id, key = await _stream(client)
    publisher = peers.publisher()
    await _go_live(client, publisher, stream_id, key)
    await until(lambda: hub.is_on_air(stream_id))
    admitted = [peers.viewer() for _ in range(3)]
    for viewer in admitted:
        await _watch(client, viewer, stream_id)
    for viewer in admitted:
        await viewer.wait_frames(3)

    for _ in range(5):  # more keep coming: each is told to come back later
        status, body, headers = await _post(
            client, f"/whep/{stream_id}", await _offer(peers.viewer().pc)
        )
        assert status == 503 and body["error"]["code"] == "media_at_capacity"
        assert "maximum of 3 viewers" in body["error"]["message"]
        assert int(headers["Retry-After"]) >= 1
        assert headers["Access-Control-Allow-Origin"] == "*"

    # The publisher stays connected and on air; the admitted viewers keep full frame rate.
    before = [len(viewer.numbers) for viewer in admitted]
    await asyncio.sleep(2.0)
    assert publisher.connectionState == "connected" and hub.is_on_air(stream_id)
    for viewer, count in zip(admitted, before, strict=True):
        assert len(viewer.numbers) - count >= 2.0 * 25, "fewer than 25 frames per second"
    assert hub.viewer_count(stream_id) == 3


async def test_a_publisher_that_never_connects_does_not_lock_the_stream(
    aiohttp_client: Any, settings: Any, peers: Peers
) -> None:
    client = await aiohttp_client(create_app(replace(settings, ice_connect_timeout_s=2)))
    hub = client.app[MEDIA]
    _creator, stream_id, key = await _stream(client)
    stuck = _without_candidates(await _offer(peers.publisher()))
    status, _answer, _ = await _post(client, f"/whip/{stream_id}", stuck, key)
    assert status == 201

    # A publish with the key replaces a publisher that is not connected...
    started = asyncio.get_running_loop().time()
    await _go_live(client, peers.publisher(), stream_id, key)
    assert asyncio.get_running_loop().time() - started < 10  # not the 150 s of a stuck session
    await until(lambda: hub.is_on_air(stream_id))

    # ...and, alone, it is dropped after ICE_CONNECT_TIMEOUT_SECONDS with everything it held.
    _creator, other_id, other_key = await _stream(client)
    stuck = _without_candidates(await _offer(peers.publisher()))
    status, _answer, headers = await _post(client, f"/whip/{other_id}", stuck, other_key)
    assert status == 201
    await until(lambda: hub.relay(other_id) is None, seconds=10)
    assert hub.session(str(headers["Location"]).rsplit("/", 1)[1]) is None
    # The dropped stream's tasks end (cancelled and awaited) just after its relay is gone.
    await until(lambda: [t.get_name() for t in _media_tasks()] == [f"media-{stream_id}"])


async def test_a_crashed_publisher_is_replaced_by_the_next_publish_with_the_key(
    client: TestClient[Any, Any], peers: Peers
) -> None:
    _creator, stream_id, key = await _stream(client)
    url = str(client.make_url(f"/whip/{stream_id}"))
    crashing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.whippublisher",
        url,
        key,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPOSITORY,
    )
    try:
        assert crashing.stdout is not None
        async with asyncio.timeout(30):
            assert (await crashing.stdout.readline()).strip() == b"connected"
        await until(lambda: client.app[MEDIA].is_on_air(stream_id))
    finally:
        crashing.kill()  # no DELETE, no goodbye: its ICE consent would last ~30 s more
        await crashing.wait()
    started = asyncio.get_running_loop().time()
    while True:
        status, answer, _ = await _post(
            client, f"/whip/{stream_id}", await _offer(peers.publisher()), key
        )
        if status == 201:
            break
        assert status == 409 and answer["error"]["code"] == "already_publishing"
        assert asyncio.get_running_loop().time() - started < 10
        await asyncio.sleep(0.5)


async def test_bad_sdp_is_400_never_500(client: TestClient[Any, Any], peers: Peers) -> None:
    _creator, stream_id, key = await _stream(client)
    offer = await _offer(peers.publisher())
    broken_m_line = re.sub(r"^m=video .*$", "m=video", offer, count=1, flags=re.M)
    assert broken_m_line != offer
    for body in (broken_m_line, "v=0\r\nm=\r\n", b"v=0\r\n\xff\xfe\r\n"):
        status, answer, _ = await _post(client, f"/whip/{stream_id}", body, key)  # type: ignore[arg-type]
        assert status == 400 and answer["error"]["code"] == "invalid_sdp", answer
    await _go_live(client, peers.publisher(), stream_id, key)
    await until(lambda: client.app[MEDIA].is_on_air(stream_id))
    viewer_offer = await _offer(peers.viewer().pc)
    broken_m_line = re.sub(r"^m=audio (\d+) .*$", r"m=audio \1", viewer_offer, count=1, flags=re.M)
    assert broken_m_line != viewer_offer
    for body in (broken_m_line, b"v=0\r\n\xc3\x28\r\n"):
        status, answer, _ = await _post(client, f"/whep/{stream_id}", body)  # type: ignore[arg-type]
        assert status == 400 and answer["error"]["code"] == "invalid_sdp", answer

    # Answers are application/sdp, with no charset parameter (the type defines none).
    response = await client.post(
        f"/whep/{stream_id}",
        data=await _offer(peers.viewer().pc),
        headers={"Content-Type": "application/sdp"},
    )
    assert response.status == 201
    assert response.headers["Content-Type"] == "application/sdp"


async def test_rotating_the_key_and_ending_the_show_cut_the_publisher_off(
    client: TestClient[Any, Any], peers: Peers, viewers: list[RoomViewer]
) -> None:
    hub = client.app[MEDIA]
    creator, stream_id, key = await _stream(client)
    room = RoomViewer()
    viewers.append(room)
    await room.connect(_url(client))
    await room.call("join", {"stream_id": stream_id})
    await _go_live(client, peers.publisher(), stream_id, key)
    await room.wait_for("stream:status", on_air=True)
    viewer = peers.viewer()
    await _watch(client, viewer, stream_id)
    await viewer.wait_frames(5)

    new_key = (await creator.call("POST", f"/api/streams/{stream_id}/key", status=201))[
        "stream_key"
    ]
    await room.wait_for("stream:status", on_air=False, status="live")
    assert not hub.is_on_air(stream_id)
    await asyncio.sleep(0.3)  # frames in flight
    seen = len(viewer.numbers)
    await asyncio.sleep(1)
    assert len(viewer.numbers) == seen, "no frame after the key was rotated"
    status, _body, _ = await _post(
        client, f"/whip/{stream_id}", await _offer(peers.publisher()), key
    )
    assert status == 401
    # The new key publishes at once: the cut-off publisher does not hold the stream.
    await _go_live(
        client, peers.publisher(NumberedCamera(start=5000, keyframe_every=30)), stream_id, new_key
    )
    await until(lambda: any(n >= 5000 for n in viewer.numbers))

    room.events.clear()
    await creator.call("PATCH", f"/api/streams/{stream_id}", {"status": "ended"}, status=200)
    await room.wait_for("stream:status", on_air=False, status="ended")
    await until(lambda: viewer.pc.connectionState in ("closed", "failed"))
    assert hub.relay(stream_id) is None and _media_tasks() == []
    status, body, _ = await _post(client, f"/whep/{stream_id}", await _offer(peers.viewer().pc))
    assert status == 409 and body["error"]["code"] == "stream_offline"
    status, body, _ = await _post(
        client, f"/whip/{stream_id}", await _offer(peers.publisher()), new_key
    )
    assert status == 409 and body["error"]["code"] == "invalid_transition"


async def test_rotation_and_end_on_one_process_cut_the_publisher_on_the_other(
    server_processes: list[ServerProcess], peers: Peers, viewers: list[RoomViewer]
) -> None:
    a, b = server_processes
    async with aiohttp.ClientSession() as session:

        async def call(method: str, url: str, json: Any = None) -> tuple[int, Any]:
            async with session.request(
                method, url, json=json, headers={"Authorization": f"Bearer {token}"}
            ) as response:
                return response.status, await response.json()

        async def post_sdp(url: str, sdp: str, key: str | None = None) -> tuple[int, str]:
            headers = {"Content-Type": "application/sdp"}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            async with session.post(url, data=sdp, headers=headers) as response:
                return response.status, await response.text()

        async with session.post(
            f"{a.url}/api/accounts",
            json={"email": "cut@example.com", "password": "correct horse", "display_name": "C"},
        ) as response:
            token = (await response.json())["token"]
        session.cookie_jar.clear()
        status, created = await call("POST", f"{a.url}/api/streams", {"title": "Cut off"})
        stream_id, key = created["stream"]["id"], created["stream_key"]
        room = RoomViewer()
        viewers.append(room)
        await room.connect(b.url)
        await room.call("join", {"stream_id": stream_id})

        publisher = peers.publisher()
        status, answer = await post_sdp(f"{a.url}/whip/{stream_id}", await _offer(publisher), key)
        assert status == 201, answer
        await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await room.wait_for("stream:status", on_air=True)
        viewer = peers.viewer()
        status, answer = await post_sdp(f"{a.url}/whep/{stream_id}", await _offer(viewer.pc))
        assert status == 201, answer
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await viewer.wait_frames(5)

        # The key is rotated on B; A, which holds the publisher, cuts it off.
        status, rotated = await call("POST", f"{b.url}/api/streams/{stream_id}/key")
        assert status == 201
        await room.wait_for("stream:status", on_air=False)
        await until(lambda: publisher.connectionState in ("closed", "failed"))
        await asyncio.sleep(0.3)  # frames in flight
        seen = len(viewer.numbers)
        await asyncio.sleep(1)
        assert len(viewer.numbers) == seen, "no frame after the key was rotated"
        status, _ = await post_sdp(
            f"{a.url}/whip/{stream_id}", await _offer(peers.publisher()), key
        )
        assert status == 401
        returning = peers.publisher(NumberedCamera(start=5000, keyframe_every=30))
        status, answer = await post_sdp(
            f"{a.url}/whip/{stream_id}", await _offer(returning), rotated["stream_key"]
        )
        assert status == 201, answer
        await returning.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await until(lambda: any(n >= 5000 for n in viewer.numbers))

        # The show is ended on B: A cuts the publisher and the viewers off, nobody watches it.
        room.events.clear()
        status, _ = await call("PATCH", f"{b.url}/api/streams/{stream_id}", {"status": "ended"})
        assert status == 200
        await room.wait_for("stream:status", status="ended", on_air=False)
        await until(lambda: returning.connectionState in ("closed", "failed"))
        await until(lambda: viewer.pc.connectionState in ("closed", "failed"))
        for server in (a, b):
            status, body = await post_sdp(
                f"{server.url}/whep/{stream_id}", await _offer(peers.viewer().pc)
            )
            assert status == 409 and "stream_offline" in body
        status, body = await post_sdp(
            f"{a.url}/whip/{stream_id}", await _offer(peers.publisher()), rotated["stream_key"]
        )
        assert status == 409 and "invalid_transition" in body


async def test_shutdown_with_sessions_open_leaves_no_task_behind(
    redis_url: str, localstripe_url: str, tmp_path: Path, peers: Peers
) -> None:
    server = ServerProcess(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'media.db'}",
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": f"t{uuid.uuid4().hex[:10]}",
            "STRIPE_SECRET_KEY": "sk_test_livecommerce",
            "STRIPE_API_BASE": localstripe_url,
            "ICE_HOSTS": "127.0.0.1",
            "DATA_DIR": str(tmp_path),
        },
        tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{server.url}/api/accounts",
                json={"email": "s@example.com", "password": "correct horse", "display_name": "S"},
            ) as response:
                token = (await response.json())["token"]
            session.cookie_jar.clear()
            streams = []
            for title in ("Live", "Stuck"):
                async with session.post(
                    f"{server.url}/api/streams",
                    json={"title": title},
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    created = await response.json()
                streams.append((created["stream"]["id"], created["stream_key"]))

            async def post(path: str, sdp: str, key: str | None = None) -> str:
                headers = {"Content-Type": "application/sdp"}
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                async with session.post(
                    f"{server.url}{path}", data=sdp, headers=headers
                ) as response:
                    assert response.status == 201, await response.text()
                    return await response.text()

            (live, key), (stuck, stuck_key) = streams
            publisher = peers.publisher()
            answer = await post(f"/whip/{live}", await _offer(publisher), key)
            await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            viewer = peers.viewer()
            for _ in range(100):  # until the first frames reached the relay
                async with session.get(f"{server.url}/api/streams/{live}/room") as response:
                    if (await response.json())["room"]["on_air"]:
                        break
                await asyncio.sleep(0.1)
            answer = await post(f"/whep/{live}", await _offer(viewer.pc))
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await viewer.wait_frames(5)
            await post(
                f"/whip/{stuck}", _without_candidates(await _offer(peers.publisher())), stuck_key
            )
    finally:
        server.stop()
    assert server.process.returncode == 0
    log = server.log_path.read_text()
    assert "Task was destroyed" not in log and "never retrieved" not in log, log


async def test_closing_the_media_hub_awaits_every_task_it_started(
    aiohttp_client: Any, settings: Any, peers: Peers
) -> None:
    client = await aiohttp_client(create_app(settings))
    _creator, stream_id, key = await _stream(client)
    _creator, stuck_id, stuck_key = await _stream(client)
    await _go_live(client, peers.publisher(), stream_id, key)
    await until(lambda: client.app[MEDIA].is_on_air(stream_id))
    await _watch(client, peers.viewer(), stream_id)
    stuck = _without_candidates(await _offer(peers.publisher()))
    assert (await _post(client, f"/whip/{stuck_id}", stuck, stuck_key))[0] == 201
    assert len(_media_tasks()) == 2
    await client.app[MEDIA].close()  # as at shutdown
    assert _media_tasks() == [], "a cancelled task was left for the event loop to destroy"
    assert client.app[MEDIA].stream_count() == 0


async def test_an_offer_sent_in_pieces_is_read_to_its_end(
    client: TestClient[Any, Any], peers: Peers
) -> None:
    _creator, stream_id, key = await _stream(client)
    offer = (await _offer(peers.publisher())).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(offer), 700):
            yield offer[start : start + 700]
            await asyncio.sleep(0.05)

    response = await client.post(
        f"/whip/{stream_id}",
        data=pieces(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
    )
    assert response.status == 201, await response.text()
