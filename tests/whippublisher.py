"""A WHIP publisher in a process of its own, so that a test can crash it (SIGKILL: no DELETE,
no DTLS close, no RTCP BYE), as an encoder dies when its machine loses power.

    python -m tests.whippublisher http://127.0.0.1:PORT/whip/ID KEY

prints ``connected`` once its connection is up, then sends a test picture until killed.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from livecommerce.media.rtc.iceconfig import IceConfig


async def publish(url: str, key: str) -> None:
    loopback = IceConfig(hosts=("127.0.0.1",))
    loopback.apply_host_addresses()  # nothing leaves the machine
    pc = RTCPeerConnection(loopback.rtc_configuration())
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState == "connected":
            connected.set()

    await pc.setLocalDescription(await pc.createOffer())
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        ) as response,
    ):
        if response.status != 201:
            print(f"refused {response.status}", flush=True)
            return
        answer = await response.text()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await connected.wait()
    print("connected", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(publish(sys.argv[1], sys.argv[2]))
