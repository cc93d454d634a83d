"""Glass-to-glass through the relay: from the moment a camera makes a picture to the moment a
viewer has decoded it, on loopback.

The camera (:class:`~bench.numberedcamera.NumberedCamera`) draws each frame's number into the
picture and notes when it made it; the publisher encodes it (aiortc's VP8 encoder) and sends it
by WHIP; the relay forwards the encoded frames; a viewer (WHEP) decodes them and reads the number
back from the picture. Each decoded frame's delay is then "decoded at" minus "made at", on this
process's monotonic clock: it includes encoding, the relay, the viewer's jitter buffer and
decoding, as a person watching would see it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from bench.numberedcamera import NumberedCamera, read_number
from livecommerce.media.rtc.iceconfig import IceConfig

LOOPBACK = IceConfig(hosts=("127.0.0.1",))


class TimedCamera(NumberedCamera):
    """A numbered camera that notes when it made each numbered frame."""

    def __init__(self) -> None:
        super().__init__(keyframe_every=60)
        self.made: dict[int, float] = {}

    async def recv(self) -> VideoFrame:
        frame = await super().recv()
        self.made[(self.number - 1) & 0xFFFF] = time.monotonic()
        return frame


async def _exchange(session: aiohttp.ClientSession, url: str, pc: RTCPeerConnection,
                    headers: dict[str, str]) -> None:  # fmt: skip
    await pc.setLocalDescription(await pc.createOffer())
    async with session.post(
        url,
        data=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp", **headers},
    ) as response:
        answer = await response.text()
        if response.status != 201:
            raise RuntimeError(f"{url}: {response.status} {answer[:200]}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


async def glass_to_glass(base_url: str, stream_id: int, key: str, seconds: float) -> list[float]:
    """Publish a timed camera to ``stream_id``, watch it, and return each decoded frame's delay
    in ms over ``seconds`` (after 2 s of warming up)."""
    LOOPBACK.apply_host_addresses()
    camera = TimedCamera()
    publisher = RTCPeerConnection(LOOPBACK.rtc_configuration())
    publisher.addTransceiver(camera, direction="sendonly")
    viewer = RTCPeerConnection(LOOPBACK.rtc_configuration())
    viewer.addTransceiver("video", direction="recvonly")
    delays: list[float] = []
    measuring = False

    async def watch(track: MediaStreamTrack) -> None:
        try:
            while True:
                frame: Any = await track.recv()
                decoded = time.monotonic()
                made = camera.made.get(read_number(frame))
                if measuring and made is not None:
                    delays.append(1000 * (decoded - made))
        except MediaStreamError:
            pass

    readers: list[asyncio.Task[None]] = []
    viewer.on("track", lambda track: readers.append(asyncio.create_task(watch(track))))
    try:
        async with aiohttp.ClientSession() as session:
            await _exchange(
                session,
                f"{base_url}/whip/{stream_id}",
                publisher,
                {"Authorization": f"Bearer {key}"},
            )
            for _ in range(100):  # until the relay has the publisher's frames
                async with session.get(f"{base_url}/api/streams/{stream_id}/room") as response:
                    if (await response.json())["room"]["on_air"]:
                        break
                await asyncio.sleep(0.1)
            await _exchange(session, f"{base_url}/whep/{stream_id}", viewer, {})
        await asyncio.sleep(2.0)
        measuring = True
        await asyncio.sleep(seconds)
    finally:
        await viewer.close()
        await publisher.close()
        for reader in readers:
            reader.cancel()
    return delays
