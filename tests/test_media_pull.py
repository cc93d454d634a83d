"""Viewers on a process that does not hold the stream: served there, from one pull of it.

Two processes share Redis and SQL: A holds the stream (its publisher reached A), B serves WHEP
viewers by pulling the stream from A over an internal WHEP session. Real aiortc peers, loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from bench.processes import ServerProcess, free_port
from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.media.hub import MEDIA
from livecommerce.media.rtc import aiortcseam
from tests.conftest import sign_up
from tests.mediapeers import CONFIG, LOOPBACK, NumberedCamera, Tone, Viewer, until

SDP = {"Content-Type": "application/sdp"}


@pytest.fixture(autouse=True)
def loopback_peers() -> Iterator[None]:
    LOOPBACK.apply_host_addresses()
    yield
    aiortcseam.pin_host_addresses(())


class Peers:
    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []
        self.viewers: list[Viewer] = []

    def publisher(self, camera: NumberedCamera) -> RTCPeerConnection:
        """VP8 from ``camera``, which answers (and counts) keyframe requests itself."""
        pc = RTCPeerConnection(CONFIG)
        video = pc.addTransceiver(camera, direction="sendonly")
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences(
            [c for c in capabilities if c.mimeType in ("video/VP8", "video/rtx")]
        )
        aiortcseam.on_keyframe_request(video.sender, camera.keyframe_request)
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


async def _answered(pc: RTCPeerConnection, response: Any) -> str:
    """Set the 201's answer on ``pc``; the session's Location."""
    answer = await response.text()
    assert response.status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return str(response.headers["Location"])


async def _apps(aiohttp_client: Any, settings: Settings, count: int) -> list[TestClient[Any, Any]]:
    """``count`` processes in this one, on their own ports, sharing Redis and SQL."""
    clients = []
    for _ in range(count):
        port = free_port()
        app = create_app(replace(settings, media_url=f"http://127.0.0.1:{port}"))
        clients.append(await aiohttp_client(app, server_kwargs={"port": port}))
    return clients


@pytest.fixture
async def two_apps(aiohttp_client: Any, settings: Settings) -> list[TestClient[Any, Any]]:
    return await _apps(aiohttp_client, settings, 2)


async def _publish(
    client: TestClient[Any, Any], publisher: RTCPeerConnection, stream_id: int, key: str
) -> str:
    response = await client.post(
        f"/whip/{stream_id}",
        data=await _offer(publisher),
        headers={**SDP, "Authorization": f"Bearer {key}"},
    )
    return await _answered(publisher, response)


async def test_viewers_on_another_process_share_one_pull_that_ends_after_the_last(
    two_apps: list[TestClient[Any, Any]], peers: Peers
) -> None:
    a, b = two_apps
    creator = await sign_up(a, "creator")
    created = await creator.call("POST", "/api/streams", {"title": "Pulled"}, status=201)
    stream_id, key = created["stream"]["id"], created["stream_key"]
    # No periodic keyframe: a viewer starting on B needs its request to reach the publisher.
    camera = NumberedCamera()
    publisher = peers.publisher(camera)
    response = await a.post(
        f"/whip/{stream_id}",
        data=await _offer(publisher),
        headers={**SDP, "Authorization": f"Bearer {key}"},
    )
    await _answered(publisher, response)
    hub_a, hub_b = a.app[MEDIA], b.app[MEDIA]
    await until(lambda: hub_a.is_on_air(stream_id))

    first = peers.viewer()
    response = await b.post(f"/whep/{stream_id}", data=await _offer(first.pc), headers=SDP)
    first_location = await _answered(first.pc, response)
    assert first_location.startswith(f"/whep/{stream_id}/")
    await first.wait_frames(5)
    assert first.encoded[0].keyframe
    requests_before = camera.requests

    second = peers.viewer()
    response = await b.post(f"/whep/{stream_id}", data=await _offer(second.pc), headers=SDP)
    second_location = await _answered(second.pc, response)
    await second.wait_frames(5)
    assert second.encoded[0].keyframe
    # Its keyframe request went up the pull to A, and on to the publisher.
    assert camera.requests > requests_before
    assert hub_b.pull_count() == 1, "one pull for both viewers"
    assert hub_b.viewer_count(stream_id) == 2
    assert hub_a.viewer_count(stream_id) == 1, "A sees one viewer: B's pull"
    # Only the holder tells the room about on air: B's copy never does.
    assert hub_a.is_on_air(stream_id) and not hub_b.is_on_air(stream_id)

    assert (await b.delete(first_location)).status == 200
    assert (await b.delete(second_location)).status == 200
    assert hub_b.pull_count() == 1, "the pull waits a moment for a returning viewer"
    await until(lambda: hub_b.pull_count() == 0 and hub_b.stream_count() == 0)
    await until(lambda: hub_a.viewer_count(stream_id) == 0)
    assert hub_a.is_on_air(stream_id), "the holder's publisher is untouched"

    # A viewer after that starts a new pull.
    third = peers.viewer()
    response = await b.post(f"/whep/{stream_id}", data=await _offer(third.pc), headers=SDP)
    await _answered(third.pc, response)
    await third.wait_frames(5)
    assert hub_b.pull_count() == 1


async def test_whep_delete_reaching_another_process_ends_the_viewer_where_it_plays(
    two_apps: list[TestClient[Any, Any]], peers: Peers
) -> None:
    a, b = two_apps
    creator = await sign_up(a, "creator")
    created = await creator.call("POST", "/api/streams", {"title": "Leaving"}, status=201)
    stream_id, key = created["stream"]["id"], created["stream_key"]
    await _publish(a, peers.publisher(NumberedCamera(keyframe_every=30)), stream_id, key)
    hub_a, hub_b = a.app[MEDIA], b.app[MEDIA]
    await until(lambda: hub_a.is_on_air(stream_id))

    # One viewer on the holder, one on the pulling process; each DELETE reaches the other one.
    on_a, on_b = peers.viewer(), peers.viewer()
    response = await a.post(f"/whep/{stream_id}", data=await _offer(on_a.pc), headers=SDP)
    location_a = await _answered(on_a.pc, response)
    response = await b.post(f"/whep/{stream_id}", data=await _offer(on_b.pc), headers=SDP)
    location_b = await _answered(on_b.pc, response)
    await on_a.wait_frames(3)
    await on_b.wait_frames(3)
    assert hub_a.viewer_count(stream_id) == 2  # its viewer and B's pull
    assert hub_b.viewer_count(stream_id) == 1

    response = await a.delete(location_b)
    assert response.status == 200, await response.text()
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert hub_b.viewer_count(stream_id) == 0, "ended on B, which served it"
    response = await b.delete(location_a)
    assert response.status == 200, await response.text()
    assert hub_a.session(location_a.rsplit("/", 1)[1]) is None, "ended on A, which served it"
    assert hub_a.is_on_air(stream_id), "the publisher is untouched"

    # Ended is ended, wherever the DELETE lands; a resource nobody serves is not found.
    for client, location in ((a, location_b), (b, location_b), (b, location_a)):
        response = await client.delete(location)
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    response = await b.delete(f"/whep/{stream_id}/no-such-session")
    assert response.status == 404
    # A session is ended only under its own stream's path, on whichever process.
    third = peers.viewer()
    response = await b.post(f"/whep/{stream_id}", data=await _offer(third.pc), headers=SDP)
    location_third = await _answered(third.pc, response)
    response = await a.delete(location_third.replace(f"/whep/{stream_id}/", "/whep/999999/"))
    assert response.status == 404
    assert hub_b.viewer_count(stream_id) == 1


async def test_the_internal_endpoint_wants_the_internal_secret(
    two_apps: list[TestClient[Any, Any]], peers: Peers
) -> None:
    a, _b = two_apps
    creator = await sign_up(a, "creator")
    created = await creator.call("POST", "/api/streams", {"title": "Guarded"}, status=201)
    stream_id, key = created["stream"]["id"], created["stream_key"]
    path = f"/internal/media/whep/{stream_id}"
    offer = await _offer(peers.viewer().pc)
    for headers in (
        SDP,
        {**SDP, "Authorization": "Bearer wrong-secret"},
        {**SDP, "Authorization": f"Bearer {key}"},  # the stream key is no internal secret
    ):
        response = await a.post(path, data=offer, headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "not_authenticated"
    response = await a.delete(f"{path}/anything", headers={"Authorization": "Bearer nope"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "not_authenticated"
    # With the secret, a stream this process does not hold on air is refused.
    secret = await a.app[MEDIA].routing.secret()
    response = await a.post(path, data=offer, headers={**SDP, "Authorization": f"Bearer {secret}"})
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "stream_offline"


async def test_whep_on_the_other_process_plays_and_whip_delete_there_ends_the_stream(
    server_processes: list[ServerProcess], peers: Peers
) -> None:
    a, b = server_processes
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{a.url}/api/accounts",
            json={"email": "pull@example.com", "password": "correct horse", "display_name": "P"},
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

        async def on_air() -> bool:
            async with session.get(f"{b.url}/api/streams/{stream_id}/room") as response:
                return bool((await response.json())["room"]["on_air"])

        publisher = peers.publisher(NumberedCamera(keyframe_every=30))
        async with session.post(
            f"{a.url}/whip/{stream_id}",
            data=await _offer(publisher),
            headers={**SDP, "Authorization": f"Bearer {key}"},
        ) as response:
            whip = await _answered(publisher, response)
        for _ in range(100):
            if await on_air():
                break
            await asyncio.sleep(0.1)
        assert await on_air()

        viewer = peers.viewer()
        async with session.post(
            f"{b.url}/whep/{stream_id}",
            data=await _offer(viewer.pc),
            headers=SDP,
            allow_redirects=False,
        ) as response:
            assert response.status == 201  # served here, not redirected
            await _answered(viewer.pc, response)
        await viewer.wait_frames(5)
        assert viewer.encoded[0].keyframe
        assert await on_air()

        # The publisher's DELETE reaches B (a load balancer's choice): the key is checked there,
        # and A, which holds the session, ends it.
        async with session.delete(f"{b.url}{whip}") as response:
            assert response.status == 401
        async with session.delete(
            f"{b.url}{whip}", headers={"Authorization": f"Bearer {key}"}
        ) as response:
            assert response.status == 200, await response.text()
        await until(lambda: publisher.connectionState in ("closed", "failed"))
        for _ in range(50):
            if not await on_air():
                break
            await asyncio.sleep(0.1)
        assert not await on_air()
        async with session.delete(
            f"{b.url}{whip}", headers={"Authorization": f"Bearer {key}"}
        ) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "not_found"

    # B stops while its viewer waits on the pull: its media closes in order, nothing is
    # cancelled halfway through its clean-up.
    b.stop()
    assert b.process.returncode == 0
    log = b.log_path.read_text()
    assert "Task was destroyed but it is pending" not in log, log[-3000:]
    assert "CancelledError" not in log, log[-3000:]


async def test_the_pull_follows_the_stream_to_its_new_holder(
    aiohttp_client: Any, settings: Settings, peers: Peers
) -> None:
    a, b, c = await _apps(aiohttp_client, settings, 3)
    creator = await sign_up(a, "creator")
    created = await creator.call("POST", "/api/streams", {"title": "Moving"}, status=201)
    stream_id, key = created["stream"]["id"], created["stream_key"]
    whip = await _publish(a, peers.publisher(NumberedCamera(keyframe_every=30)), stream_id, key)
    hub_a, hub_b, hub_c = (client.app[MEDIA] for client in (a, b, c))
    await until(lambda: hub_a.is_on_air(stream_id))
    viewer = peers.viewer()
    response = await b.post(f"/whep/{stream_id}", data=await _offer(viewer.pc), headers=SDP)
    await _answered(viewer.pc, response)
    await viewer.wait_frames(5)

    # The publisher leaves A and comes back on C: B's viewer, still connected to B, sees it.
    response = await a.delete(whip, headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    returning = peers.publisher(NumberedCamera(start=5000, keyframe_every=30))
    await _publish(c, returning, stream_id, key)
    await until(lambda: any(n >= 5000 for n in viewer.numbers), 20)
    assert hub_b.pull_count() == 1
    await until(lambda: hub_a.stream_count() == 0)  # A let go of everything
    assert hub_c.viewer_count(stream_id) == 1, "B now pulls from C"
    assert hub_c.is_on_air(stream_id) and not hub_b.is_on_air(stream_id)


async def test_a_publisher_on_the_pulling_process_replaces_the_pull(
    two_apps: list[TestClient[Any, Any]], peers: Peers
) -> None:
    a, b = two_apps
    creator = await sign_up(a, "creator")
    created = await creator.call("POST", "/api/streams", {"title": "Coming here"}, status=201)
    stream_id, key = created["stream"]["id"], created["stream_key"]
    whip = await _publish(a, peers.publisher(NumberedCamera(keyframe_every=30)), stream_id, key)
    hub_a, hub_b = a.app[MEDIA], b.app[MEDIA]
    await until(lambda: hub_a.is_on_air(stream_id))
    viewer = peers.viewer()
    response = await b.post(f"/whep/{stream_id}", data=await _offer(viewer.pc), headers=SDP)
    await _answered(viewer.pc, response)
    await viewer.wait_frames(5)

    response = await a.delete(whip, headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    await _publish(
        b, peers.publisher(NumberedCamera(start=5000, keyframe_every=30)), stream_id, key
    )
    await until(lambda: any(n >= 5000 for n in viewer.numbers))
    await until(lambda: hub_b.pull_count() == 0 and hub_a.stream_count() == 0)
    await until(lambda: hub_b.is_on_air(stream_id))
    assert await hub_b.routing.holder(stream_id) == b.make_url("").human_repr().rstrip("/")


async def test_ending_the_show_cuts_the_pulled_viewers_off(
    two_apps: list[TestClient[Any, Any]], peers: Peers
) -> None:
    a, b = two_apps
    creator = await sign_up(a, "creator")
    created = await creator.call("POST", "/api/streams", {"title": "Ending"}, status=201)
    stream_id, key = created["stream"]["id"], created["stream_key"]
    await _publish(a, peers.publisher(NumberedCamera(keyframe_every=30)), stream_id, key)
    hub_a, hub_b = a.app[MEDIA], b.app[MEDIA]
    await until(lambda: hub_a.is_on_air(stream_id))
    viewer = peers.viewer()
    response = await b.post(f"/whep/{stream_id}", data=await _offer(viewer.pc), headers=SDP)
    await _answered(viewer.pc, response)
    await viewer.wait_frames(5)

    await creator.call("PATCH", f"/api/streams/{stream_id}", {"status": "ended"})
    await until(lambda: viewer.pc.connectionState in ("closed", "failed"))
    await until(lambda: hub_a.stream_count() == 0 and hub_b.stream_count() == 0)
    response = await b.post(f"/whep/{stream_id}", data=await _offer(peers.viewer().pc), headers=SDP)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "stream_offline"


async def test_viewers_arriving_together_start_one_pull(
    two_apps: list[TestClient[Any, Any]], peers: Peers
) -> None:
    a, b = two_apps
    creator = await sign_up(a, "creator")
    created = await creator.call("POST", "/api/streams", {"title": "Rush"}, status=201)
    stream_id, key = created["stream"]["id"], created["stream_key"]
    await _publish(a, peers.publisher(NumberedCamera(keyframe_every=30)), stream_id, key)
    hub_a, hub_b = a.app[MEDIA], b.app[MEDIA]
    await until(lambda: hub_a.is_on_air(stream_id))
    viewers = [peers.viewer() for _ in range(3)]
    offers = [await _offer(viewer.pc) for viewer in viewers]
    responses = await asyncio.gather(
        *(b.post(f"/whep/{stream_id}", data=offer, headers=SDP) for offer in offers)
    )
    for viewer, response in zip(viewers, responses, strict=True):
        await _answered(viewer.pc, response)
    for viewer in viewers:
        await viewer.wait_frames(5)
    assert hub_b.pull_count() == 1
    assert hub_a.viewer_count(stream_id) == 1
