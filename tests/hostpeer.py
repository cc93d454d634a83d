"""A publisher or a viewer on a test host of its own (a network namespace), as a process.

    python -m tests.hostpeer publish http://ORIGIN:PORT HOST_ADDRESS
        signs up a creator, creates a show and publishes a numbered test picture to it by WHIP;
        prints {"stream": ID} once the show is on air, then publishes until killed.
    python -m tests.hostpeer watch http://EDGE:PORT STREAM HOST_ADDRESS SECONDS
        plays the show by WHEP for SECONDS and prints {"frames", "numbers", "keyframe_first",
        "video_bytes", "status"} as one line of JSON.

ICE gathers on HOST_ADDRESS only, so the media goes where the test's hosts are wired.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from livecommerce.media.rtc.iceconfig import IceConfig
from tests.mediapeers import NumberedCamera, Viewer


async def _offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def publish(url: str, host: str) -> None:
    config = IceConfig(hosts=(host,))
    config.apply_host_addresses()
    pc = RTCPeerConnection(config.rtc_configuration())
    pc.addTransceiver(NumberedCamera(keyframe_every=30), direction="sendonly")
    async with aiohttp.ClientSession() as session:
        email = f"host-{uuid.uuid4().hex[:8]}@example.com"
        async with session.post(
            f"{url}/api/accounts",
            json={"email": email, "password": "correct horse", "display_name": "Host"},
        ) as response:
            token = (await response.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with session.post(
            f"{url}/api/streams", json={"title": "Across hosts"}, headers=auth
        ) as response:
            created = await response.json()
        stream_id, key = created["stream"]["id"], created["stream_key"]
        async with session.post(
            f"{url}/whip/{stream_id}",
            data=await _offer(pc),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        ) as response:
            if response.status != 201:
                print(json.dumps({"refused": response.status}), flush=True)
                return
            answer = await response.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for _ in range(200):
            async with session.get(f"{url}/api/streams/{stream_id}/room") as response:
                if (await response.json())["room"]["on_air"]:
                    break
            await asyncio.sleep(0.1)
    print(json.dumps({"stream": stream_id}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await pc.close()


async def watch(url: str, stream_id: str, host: str, seconds: float) -> None:
    config = IceConfig(hosts=(host,))
    config.apply_host_addresses()
    viewer = Viewer(configuration=config.rtc_configuration())
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{url}/whep/{stream_id}",
                data=await _offer(viewer.pc),
                headers={"Content-Type": "application/sdp"},
                allow_redirects=False,
            ) as response:
                status = response.status
                answer = await response.text()
            if status != 201:
                print(json.dumps({"status": status, "body": answer[:300]}), flush=True)
                return
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await asyncio.sleep(seconds)
    finally:
        await viewer.close()
    print(
        json.dumps(
            {
                "status": status,
                "frames": len(viewer.numbers),
                "numbers": viewer.numbers,
                "keyframe_first": bool(viewer.encoded) and viewer.encoded[0].keyframe,
                "video_bytes": sum(len(frame.data) for frame in viewer.encoded),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        asyncio.run(publish(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(watch(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
