"""Relay CPU per WebRTC viewer: livecommerce's passthrough relay beside aiortc's MediaRelay.

    python -m bench.relay [--viewers 100 200] [--seconds 10] [--viewer-procs 4]
                          [--baseline-viewers 3] [--profile DIR] [--quick]
                          [--capacity [--capacity-step 50] [--capacity-max 1000]]

One publisher process sends a 720p30 VP8 stream (``--bitrate`` kbit/s, encoded once by libvpx at
start-up and looped, so the publisher costs almost no CPU; it answers a keyframe request by
restarting the loop on its keyframe) and a 48 kHz Opus tone, over WHIP, to a real
``livecommerce serve`` process on loopback. ``--viewer-procs`` processes then hold the viewers:
aiortc peers that POST their offer to WHEP, and never decode. Each viewer counts the RTP packets
it gets from their clear-text headers (SRTP leaves the RTP header unencrypted): packets, bytes,
video frames (marker bits), sequence gaps. Once its first video frame has come through aiortc's
whole receive path (decrypted, reassembled, checked to be a keyframe), the viewer stops feeding
packets to aiortc, so that the viewer side stays cheap; ``--full-receive`` keeps aiortc's whole
receive path (SRTP, jitter buffer, depacketizing; still no decoding) for every packet.

Measured, over ``--seconds`` windows, for each number of viewers in ``--viewers``:

- relay CPU per viewer: the server process's CPU (utime + stime, /proc) with N viewers minus
  that with the publisher alone, divided by N; viewers per core at 30 fps is its inverse, the
  CPU first scaled by 30 / the median fps delivered (a saturated relay delivers fewer frames);
- relay CPU per RTP packet sent to viewers (packets received plus sequence gaps);
- the frames per second every viewer got (min and median; a viewer well below 30 means the
  relay, or the machine, is saturated), packets lost, bit rate;
- signalling to first frame: from sending the WHEP POST to the last packet of the first video
  frame (p50/p95), split into the HTTP answer, the connection (ICE + DTLS) and the first frame;
- the CPU of the publisher, of the viewer processes and of everything else on the machine;
- then (``--new-viewers``, default 20) viewers joining the running show one at a time, as people
  arrive at a show, each timed from the WHEP POST to its first frame; and glass to glass on a
  second show while the crowd watches the first (:mod:`bench.glass`: a numbered picture from
  the camera, read back from the viewer's decoded frame).

Baseline in the same run: aiortc's ``MediaRelay`` (decode once, encode per viewer) in a small
server of its own (``--serve-mediarelay PORT``, same WHIP/WHEP exchange), fed by the same
publisher, with ``--baseline-viewers`` viewers; its encoders start at the publisher's bit rate.
The ratio is ours viewers per core over MediaRelay's. ``--profile DIR`` records the relay for
two more windows at the largest N: on-CPU time by library with Linux ``perf`` (if installed),
then Python stacks with py-spy, summed by what they do. A step where the publisher's connection
is lost (an overloaded relay fails ICE consent) ends the run for that relay.

``--capacity`` then goes on adding ``--capacity-step`` viewers to the livecommerce relay until a
step fails: a viewer below 29 fps, the publisher's connection lost, or a join refused (a viewer
refused with 503 at capacity tries again after its Retry-After, three times) or failing. The most
viewers held is what this host holds, relay, publisher and viewer processes together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs.opus import OpusEncoder
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from yarl import URL

from bench import measure
from bench.glass import glass_to_glass
from bench.measure import (
    FiguresTable,
    background_cores,
    busy_s,
    cpu_s,
    goal_mark,
    inverse,
    machine_shared,
    percentile,
    profile_summary,
    raise_fd_limit,
)
from bench.processes import ServerProcess, forget, free_port, port_open, redis_server, sign_up
from livecommerce.media.rtc import aiortcseam
from livecommerce.media.rtc.encodedframe import EncodedFrame
from livecommerce.media.rtc.iceconfig import IceConfig

WIDTH, HEIGHT, FPS = 1280, 720, 30
LOOP_FRAMES = 150  # 5 s of video, one keyframe at its start
VIDEO_CLOCK, AUDIO_CLOCK, AUDIO_SAMPLES = 90_000, 48_000, 960
LOOPBACK = IceConfig(hosts=("127.0.0.1",))
CONFIG = LOOPBACK.rtc_configuration()  # iceServers=[]: no STUN server is ever contacted
JOIN_TIMEOUT_S = 60.0
JOIN_RETRIES = 3
SETTLE_S = 3.0  # after viewers join: their keyframes and queued frames drain first


# -- the publisher's media: encoded once, looped ------------------------------------------------


def moving_pattern(count: int) -> list[av.VideoFrame]:
    """``count`` 720p frames of a coarse random texture scrolling left, 8 pixels a frame."""
    rng = random.Random(7)
    stride = 2 * WIDTH
    rows = []
    for _ in range(HEIGHT // 4):
        coarse = rng.randbytes(stride // 4)
        rows.append(bytes(b for b in coarse for _ in range(4)) * 4)  # 4 x 4 pixel blocks
    texture = b"".join(rows)
    frames = []
    for n in range(count):
        left = (n * 8) % WIDTH
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        frame.planes[0].update(
            b"".join(texture[r * stride + left : r * stride + left + WIDTH] for r in range(HEIGHT))
        )
        for chroma in frame.planes[1:]:
            chroma.update(bytes([96 + n % 64]) * chroma.buffer_size)
        frame.pts, frame.time_base = n, Fraction(1, FPS)
        frames.append(frame)
    return frames


def encode_video(bitrate: int, count: int = LOOP_FRAMES) -> list[bytes]:
    """VP8 frames as aiortc's encoder makes them (libvpx realtime CBR), the first a keyframe."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = Fraction(1, FPS)
    codec.bit_rate = bitrate
    codec.gop_size = 10 * count  # no keyframe but the first: the loop restarts on it
    codec.qmin, codec.qmax = 2, 56
    codec.options = {
        "bufsize": str(bitrate),
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "noise-sensitivity": "4",
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    encoded = [b"".join(bytes(p) for p in codec.encode(frame)) for frame in moving_pattern(count)]
    if not EncodedFrame.parse("video/VP8", VIDEO_CLOCK, encoded[0], 0).keyframe or not all(encoded):
        raise RuntimeError("the encoded loop must start on a keyframe and drop no frame")
    return encoded


def encode_audio(count: int = 50) -> list[bytes]:
    """``count`` 20 ms Opus packets of a 440 Hz tone."""
    encoder = OpusEncoder()
    packets: list[bytes] = []
    n = 0
    while len(packets) < count:
        pcm = bytearray()
        for i in range(AUDIO_SAMPLES):
            sample = int(8000 * math.sin(2 * math.pi * 440 * (n + i) / AUDIO_CLOCK))
            pcm += sample.to_bytes(2, "little", signed=True)
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(bytes(pcm))
        frame.pts, frame.sample_rate = n, AUDIO_CLOCK
        frame.time_base = Fraction(1, AUDIO_CLOCK)
        n += AUDIO_SAMPLES
        payloads, _timestamp = encoder.encode(frame)
        packets += payloads
    return packets[:count]


class LoopTrack(MediaStreamTrack):
    """Sends pre-encoded frames in a loop, in real time, as ``av.Packet`` (aiortc only packs it).

    A keyframe request restarts the loop at its first frame (the only keyframe); timestamps go on
    increasing, so to a receiver it is a cut in the picture, not a new stream.
    """

    def __init__(self, kind: str, frames: list[bytes], clock_rate: int, ticks: int) -> None:
        super().__init__()
        self.kind = kind
        self.frames = frames
        self.time_base = Fraction(1, clock_rate)
        self.ticks = ticks
        self.sent = 0
        self.restarts = 0
        self._index = 0
        self._start: float | None = None

    def restart(self) -> None:
        self.restarts += 1
        self._index = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            await asyncio.sleep(self._start + self.sent * self.ticks * self.time_base - loop.time())
        packet = av.Packet(self.frames[self._index])
        packet.pts, packet.time_base = self.sent * self.ticks, self.time_base
        self._index = (self._index + 1) % len(self.frames)
        self.sent += 1
        return packet


def _prefer(transceiver: RTCRtpTransceiver, mime_types: Sequence[str]) -> None:
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    transceiver.setCodecPreferences([c for c in capabilities if c.mimeType in mime_types])


# -- child processes: the publisher, the viewers ----------------------------------------------


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # as the server runs

        uvloop.run(main)
    except ImportError:
        asyncio.run(main)


async def _command(conn: Connection) -> tuple[Any, ...]:
    """The parent's next command, without blocking the event loop or parking a thread on it."""
    while not conn.poll():  # noqa: ASYNC110 - a pipe has no awaitable
        await asyncio.sleep(0.05)
    command: tuple[Any, ...] = conn.recv()
    return command


def publisher_main(
    conn: Connection, url: str, key: str | None, bitrate: int, loop_frames: int
) -> None:
    _run(_publish(conn, url, key, bitrate, loop_frames))


async def _publish(
    conn: Connection, url: str, key: str | None, bitrate: int, loop_frames: int
) -> None:
    LOOPBACK.apply_host_addresses()
    video = LoopTrack("video", encode_video(bitrate, loop_frames), VIDEO_CLOCK, VIDEO_CLOCK // FPS)
    audio = LoopTrack("audio", encode_audio(), AUDIO_CLOCK, AUDIO_SAMPLES)
    pc = RTCPeerConnection(CONFIG)
    states: list[tuple[float, str]] = []
    pc.on("connectionstatechange", lambda: states.append((time.time(), pc.connectionState)))
    sender = pc.addTransceiver(video, direction="sendonly")
    _prefer(sender, ("video/VP8", "video/rtx"))
    aiortcseam.on_keyframe_request(sender.sender, video.restart)
    _prefer(pc.addTransceiver(audio, direction="sendonly"), ("audio/opus",))
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=pc.localDescription.sdp, headers=headers) as response:
            answer = await response.text()
            if response.status != 201:
                conn.send({"error": f"WHIP {response.status}: {answer[:300]}"})
                return
            location = response.url.join(URL(response.headers.get("Location", "")))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        deadline = time.monotonic() + 30
        while pc.connectionState != "connected":
            if time.monotonic() > deadline or pc.connectionState == "failed":
                conn.send({"error": f"publisher connection {pc.connectionState}"})
                return
            await asyncio.sleep(0.02)
        sizes = [len(f) for f in video.frames]
        conn.send(
            {
                "live": True,
                "keyframe_bytes": sizes[0],
                "frame_bytes": statistics.mean(sizes[1:]),
                "kbps": 8 * FPS * statistics.mean(sizes) / 1000,
            }
        )
        while (await _command(conn))[0] == "mark":
            conn.send((time.monotonic(), video.sent, pc.connectionState))
        with contextlib.suppress(aiohttp.ClientError):
            await session.delete(location, headers=headers)
    await pc.close()
    conn.send({"frames": video.sent, "restarts": video.restarts, "states": states})


class CountingViewer:
    """A receive-only peer that counts what arrives from the RTP headers, and never decodes."""

    def __init__(self, full_receive: bool) -> None:
        self.pc = RTCPeerConnection(CONFIG)
        self.full_receive = full_receive
        self.packets = self.octets = self.frames = self.lost = 0
        self.video_pt = -1
        self.posted = self.answered = self.connected = self.first_frame = 0.0
        self.keyframe_first: bool | None = None
        self._forward = True
        self._last_seq: dict[int, int] = {}
        self._tapped_frame = asyncio.Event()
        self.pc.on("connectionstatechange", self._state_changed)

    async def join(self, session: aiohttp.ClientSession, url: str) -> None:
        video = self.pc.addTransceiver("video", direction="recvonly")
        audio = self.pc.addTransceiver("audio", direction="recvonly")
        aiortcseam.tap_receiver(video.receiver, self._on_video_frame, _nothing)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        aiortcseam.filter_datagrams(video.receiver.transport, self._count)  # gathered by now
        headers = {"Content-Type": "application/sdp"}
        for attempt in range(JOIN_RETRIES + 1):
            # Timings count from the POST that is answered: a refused one (503, the relay at
            # capacity) is tried again after its Retry-After, as a player would.
            self.posted = time.monotonic()
            async with session.post(url, data=self.pc.localDescription.sdp, headers=headers) as r:
                answer = await r.text()
                if r.status == 201:
                    break
                if r.status != 503 or attempt == JOIN_RETRIES:
                    raise RuntimeError(f"WHEP {r.status}: {answer[:200]}")
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
        self.answered = time.monotonic()
        for media in aiortc_sdp.SessionDescription.parse(answer).media:
            if media.kind == "video" and media.rtp.codecs:
                self.video_pt = media.rtp.codecs[0].payloadType
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        aiortcseam.tap_receiver(audio.receiver, _nothing, _nothing)  # no decoding of audio
        await self._tapped_frame.wait()
        while not self.first_frame:  # noqa: ASYNC110 - set by the datagram counter
            await asyncio.sleep(0.01)

    def _state_changed(self) -> None:
        if self.pc.connectionState == "connected" and not self.connected:
            self.connected = time.monotonic()

    def _on_video_frame(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        if self.keyframe_first is None:
            frame = EncodedFrame.parse(codec.mimeType, codec.clockRate, data, timestamp)
            self.keyframe_first = frame.keyframe
            self._forward = self.full_receive  # from now on, the headers are enough
            self._tapped_frame.set()

    def _count(self, data: bytes) -> bool:
        """Count ``data`` if it is RTP; whether aiortc still gets it."""
        # RTP (not RTCP, RFC 5761): version 2, payload type outside 64-95 (72-76 with M).
        if len(data) >= 12 and 127 < data[0] < 192 and not 192 <= data[1] <= 223:
            self.packets += 1
            self.octets += len(data)
            pt = data[1] & 0x7F
            seq = data[2] << 8 | data[3]
            last = self._last_seq.get(pt)
            gap = 1 if last is None else (seq - last) & 0xFFFF
            if 0 < gap < 0x8000:  # not a duplicate or a late packet
                self.lost += gap - 1
                self._last_seq[pt] = seq
            if pt == self.video_pt and data[1] & 0x80:
                self.frames += 1
                if not self.first_frame:
                    self.first_frame = time.monotonic()
            return self._forward
        return True

    def figures(self) -> tuple[int, int, int, int]:
        return self.packets, self.octets, self.frames, self.lost

    def timings(self) -> tuple[float, float, float, bool]:
        """ms from the POST to: the answer, connected (ICE + DTLS), the first video frame."""
        return (
            1000 * (self.answered - self.posted),
            1000 * (self.connected - self.posted) if self.connected else math.nan,
            1000 * (self.first_frame - self.posted),
            bool(self.keyframe_first),
        )


def _nothing(*_args: Any) -> None:
    pass


def viewers_main(conn: Connection, url: str, full_receive: bool, concurrency: int) -> None:
    _run(_viewers(conn, url, full_receive, concurrency))


async def _viewers(conn: Connection, url: str, full_receive: bool, concurrency: int) -> None:
    LOOPBACK.apply_host_addresses()
    viewers: list[CountingViewer] = []
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def join(viewer: CountingViewer) -> str | None:
            async with gate:
                try:
                    await asyncio.wait_for(viewer.join(session, url), JOIN_TIMEOUT_S)
                except Exception as exc:
                    await viewer.pc.close()
                    return f"{type(exc).__name__}: {exc}"[:200]
                return None

        while True:
            command = await _command(conn)
            if command[0] == "add":
                new = [CountingViewer(full_receive) for _ in range(command[1])]
                errors = await asyncio.gather(*(join(v) for v in new))
                joined = [v for v, error in zip(new, errors, strict=True) if error is None]
                viewers += joined
                conn.send(
                    {
                        "timings": [v.timings() for v in joined],
                        "errors": Counter(e for e in errors if e is not None),
                    }
                )
            elif command[0] == "mark":
                conn.send((time.monotonic(), [v.figures() for v in viewers]))
            else:
                await asyncio.gather(*(v.pc.close() for v in viewers), return_exceptions=True)
                conn.send("stopped")
                return


class Child:
    """A spawned process and the parent's end of its pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_end = context.Pipe()
        self.process = context.Process(target=target, args=(child_end, *args), daemon=True)
        self.process.start()
        child_end.close()

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    async def reply(self, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while not self.conn.poll():
            if time.monotonic() > deadline or not self.process.is_alive():
                raise RuntimeError(f"process {self.pid} did not answer in {timeout_s:.0f} s")
            await asyncio.sleep(0.02)
        return self.conn.recv()

    async def ask(self, timeout_s: float, *command: Any) -> Any:
        self.conn.send(command)
        return await self.reply(timeout_s)

    def stop(self) -> None:
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# -- the baseline: aiortc's MediaRelay -----------------------------------------------------


def serve_mediarelay(port: int, bitrate: int) -> None:
    """WHIP/WHEP-like endpoints around aiortc's MediaRelay: decode once, encode per viewer."""
    aiortcseam.set_vp8_start_bitrate(bitrate)  # each viewer's encoder starts at the same rate
    LOOPBACK.apply_host_addresses()
    relay = MediaRelay()
    sources: dict[str, MediaStreamTrack] = {}
    keep: set[Any] = set()

    async def drain(track: MediaStreamTrack) -> None:
        # The decoded source must be read even without viewers (its queue has no bound).
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    async def answer(request: web.Request, pc: RTCPeerConnection) -> web.Response:
        keep.add(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            content_type="application/sdp",
            headers={"Location": f"{request.path}/{len(keep)}"},
        )

    async def whip(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(CONFIG)

        def on_track(track: MediaStreamTrack) -> None:
            sources[track.kind] = track
            keep.add(asyncio.ensure_future(drain(relay.subscribe(track, buffered=False))))

        pc.on("track", on_track)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        return await answer(request, pc)

    async def whep(request: web.Request) -> web.Response:
        if not sources:
            return web.Response(status=409, text="not on air")
        pc = RTCPeerConnection(CONFIG)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        for track in sources.values():
            # buffered=False: a viewer whose encoder falls behind skips frames, not memory.
            pc.addTrack(relay.subscribe(track, buffered=False))
        return await answer(request, pc)

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/whip/{stream}", whip)
    app.router.add_post("/whep/{stream}", whep)
    app.router.add_delete("/whip/{stream}/{resource}", gone)

    async def main() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    _run(main())


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Window:
    """One steady measurement window: CPU in cores, each viewer's rates."""

    viewers: int
    wall: float
    server: float
    publisher: float
    viewer_procs: float
    other: float
    fps: list[float] = field(default_factory=list)
    pps: list[float] = field(default_factory=list)
    kbps: list[float] = field(default_factory=list)
    received: int = 0
    lost: int = 0
    sent_fps: float = math.nan
    publisher_state: str = ""


@dataclass
class Step:
    window: Window
    timings: list[tuple[float, float, float, bool]]
    errors: Counter[str]
    base: Window

    @property
    def relay_per_viewer(self) -> float:
        """Relay cores per viewer (CPU seconds per second); none if nothing was delivered."""
        n = self.window.viewers
        if not n or not self.fps >= 1:
            return math.nan
        return (self.window.server - self.base.server) / n

    @property
    def fps(self) -> float:
        return statistics.median(self.window.fps) if self.window.fps else math.nan

    @property
    def per_core(self) -> float:
        """Viewers one core serves at 30 fps: the CPU per viewer scaled to 30 fps delivered."""
        if math.isnan(self.relay_per_viewer):
            return math.nan
        return inverse(self.relay_per_viewer * min(FPS / self.fps, 100.0))

    @property
    def us_per_packet(self) -> float:
        sent = (self.window.received + self.window.lost) / self.window.wall
        return 1e6 * (self.window.server - self.base.server) / sent if sent else math.nan


@dataclass
class Target:
    name: str
    steps: list[Step] = field(default_factory=list)
    publisher: dict[str, Any] = field(default_factory=dict)
    profile: list[tuple[str, float]] = field(default_factory=list)
    perf: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_viewers: list[tuple[float, float, float, bool]] = field(default_factory=list)
    """Viewers joining the running show one at a time, after the largest step (their timings)."""
    glass_ms: list[float] = field(default_factory=list)
    """Glass-to-glass delays of a second show's decoded frames, with the crowd still watching."""
    capacity: list[tuple[int, str]] = field(default_factory=list)
    """The capacity run: (viewers, "" if every one got >= 29 fps with the publisher connected,
    else what failed), step by step until the first failure."""


class Run:
    """One relay under test: its publisher, viewer processes, and the windows measured."""

    def __init__(self, args: argparse.Namespace, server_pid: int, base_url: str) -> None:
        self.args = args
        self.server_pid = server_pid
        self.base_url = base_url
        self.publisher: Child | None = None
        self.viewers: list[Child] = []

    async def start_publisher(self, whip_path: str, key: str | None) -> dict[str, Any]:
        self.publisher = Child(
            publisher_main, self.base_url + whip_path, key, self.args.bitrate * 1000, LOOP_FRAMES
        )
        live: dict[str, Any] = await self.publisher.reply(120)
        if "error" in live:
            raise RuntimeError(live["error"])
        return live

    def start_viewers(self, whep_path: str, procs: int) -> None:
        self.viewers = [
            Child(viewers_main, self.base_url + whep_path, self.args.full_receive, self.args.join)
            for _ in range(procs)
        ]

    async def add_viewers(self, count: int) -> tuple[list[tuple[float, float, float, bool]], Any]:
        shares = [
            count // len(self.viewers) + (i < count % len(self.viewers))
            for i in range(len(self.viewers))
        ]
        replies = await asyncio.gather(
            *(
                child.ask(JOIN_TIMEOUT_S * (1 + n), "add", n)
                for child, n in zip(self.viewers, shares, strict=True)
                if n
            )
        )
        timings = [t for reply in replies for t in reply["timings"]]
        errors: Counter[str] = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        return timings, errors

    async def add_one_by_one(self, count: int) -> list[tuple[float, float, float, bool]]:
        """``count`` viewers joining one after another, each once the last saw its first frame."""
        timings: list[tuple[float, float, float, bool]] = []
        for i in range(count):
            child = self.viewers[i % len(self.viewers)]
            reply = await child.ask(JOIN_TIMEOUT_S * 2, "add", 1)
            timings += reply["timings"]
            await asyncio.sleep(0.25)
        return timings

    async def measure(self, seconds: float) -> Window:
        assert self.publisher is not None
        source, me = self.publisher, os.getpid()
        publisher, viewer_pids = source.pid, [child.pid for child in self.viewers]

        async def snapshot() -> tuple[list[Any], float, float, float, float, float, float, Any]:
            marks = await asyncio.gather(*(child.ask(30, "mark") for child in self.viewers))
            return (
                marks,
                time.monotonic(),
                cpu_s(self.server_pid),
                cpu_s(publisher),
                sum(cpu_s(pid) for pid in viewer_pids),
                cpu_s(me),
                busy_s(),
                await source.ask(30, "mark"),
            )

        start = await snapshot()
        await asyncio.sleep(seconds)
        end = await snapshot()
        wall = end[1] - start[1]
        server, pub, procs, mine, busy = ((end[i] - start[i]) / wall for i in range(2, 7))
        window = Window(0, wall, server, pub, procs, max(0.0, busy - server - pub - procs - mine))
        (t0, sent0, _state), (t1, sent1, window.publisher_state) = start[7], end[7]
        window.sent_fps = (sent1 - sent0) / (t1 - t0)
        for (t0, before), (t1, after) in zip(start[0], end[0], strict=True):
            # Each viewer process's own clock: its answers may come a little late.
            elapsed = t1 - t0
            for old, new in zip(before, after, strict=False):
                packets, octets, frames, lost = (new[i] - old[i] for i in range(4))
                window.fps.append(frames / elapsed)
                window.pps.append(packets / elapsed)
                window.kbps.append(8 * octets / elapsed / 1000)
                window.received += packets
                window.lost += lost
        window.viewers = len(window.fps)
        return window

    async def stop(self) -> dict[str, Any]:
        for child in self.viewers:
            with contextlib.suppress(RuntimeError, OSError):
                await child.ask(60, "stop")
        published: dict[str, Any] = {}
        if self.publisher is not None:
            with contextlib.suppress(RuntimeError, OSError):
                published = await self.publisher.ask(30, "stop")
        for child in [*self.viewers, *([self.publisher] if self.publisher else [])]:
            child.stop()
        return published


async def measure_relay(
    target: Target,
    run: Run,
    whip: str,
    key: str | None,
    whep: str,
    counts: list[int],
    procs: int,
    profile: Path | None,
) -> None:
    args = run.args
    try:
        target.publisher = await run.start_publisher(whip, key)
        print(f"  {target.name}: publisher live; base window", file=sys.stderr)
        run.start_viewers(whep, procs)
        await asyncio.sleep(2.0)  # the viewer processes start (their CPU is not the relay's)
        base = await run.measure(args.seconds)
        joined = 0
        for step, count in enumerate(counts):
            print(f"  {target.name}: {count} viewers joining", file=sys.stderr)
            timings, errors = await run.add_viewers(count - joined)
            joined = count
            await asyncio.sleep(SETTLE_S)
            window = await run.measure(args.seconds)
            target.steps.append(Step(window, timings, errors, base))
            if window.publisher_state != "connected":
                target.notes.append(f"publisher lost at {count} viewers: later steps skipped")
                break
            if step == 0 and args.new_viewers and target.name == "livecommerce":
                # At the first step, with that crowd watching: at the largest, a full relay
                # rightly refuses more viewers.
                joined += await new_viewers_and_glass(target, run, args.new_viewers, args.seconds)
        if profile is not None:
            target.perf = await record_perf(run.server_pid, profile, args.seconds)
            target.profile = await record_profile(run.server_pid, profile, args.seconds)
        if args.capacity and target.name == "livecommerce" and not target.notes:
            await capacity_run(target, run, joined)
    finally:
        target.publisher |= await run.stop()


async def new_viewers_and_glass(target: Target, run: Run, count: int, seconds: float) -> int:
    """Viewers joining the running show one by one, then glass to glass on a second show;
    returns how many viewers joined."""
    print(f"  {target.name}: {count} viewers joining one by one", file=sys.stderr)
    target.new_viewers = await run.add_one_by_one(count)
    print(f"  {target.name}: glass to glass, a second show", file=sys.stderr)
    stream_id, stream_key = await create_stream(run.base_url)
    try:
        target.glass_ms = await glass_to_glass(run.base_url, stream_id, stream_key, seconds)
    except RuntimeError as exc:
        target.notes.append(f"glass to glass not measured: {exc}")
    return len(target.new_viewers)


CAPACITY_FPS = 29.0


async def capacity_run(target: Target, run: Run, joined: int) -> None:
    """Add ``--capacity-step`` viewers at a time until a step fails: a viewer below 29 fps,
    the publisher's connection lost, or a viewer refused or failing to join."""
    args = run.args
    while joined < args.capacity_max:
        count = joined + args.capacity_step
        print(f"  {target.name}: capacity run, {count} viewers", file=sys.stderr)
        _timings, errors = await run.add_viewers(count - joined)
        joined = count
        await asyncio.sleep(SETTLE_S)
        window = await run.measure(args.seconds)
        failed = []
        if errors:
            failed.append(f"joins failed: {dict(errors.most_common(2))}")
        if window.publisher_state != "connected":
            failed.append(f"publisher {window.publisher_state!r}")
        slow = sum(f < CAPACITY_FPS for f in window.fps)
        if slow:
            failed.append(f"{slow} viewers < {CAPACITY_FPS:.0f} fps (min {min(window.fps):.1f})")
        cores = window.server + window.publisher + window.viewer_procs
        outcome = f"ok, {cores:.2f} cores (relay {window.server:.2f})"
        target.capacity.append((window.viewers, "; ".join(failed) or outcome))
        if failed:
            return


# -- where the relay's CPU goes (py-spy) ------------------------------------------------------

# The first rule whose every part is in a sample's stack names it (a name may have several
# rules); time in C (SRTP, sendto and the kernel's loopback delivery, uvloop) counts against the
# Python function that called it.
PROFILE_BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("RTCP in (RR, REMB, NACK), aiortc's report loops", ("_run_rtcp",)),
    ("RTCP in (RR, REMB, NACK), aiortc's report loops", ("_handle_rtcp_data",)),
    ("ICE: STUN consent checks and replies", ("send_stun",)),
    ("ICE: STUN consent checks and replies", ("parse_message",)),
    ("RTP out: packetize once per frame (FanOut.push)", ("FanOut.push",)),
    ("relay fan-out (StreamRelay._fan_out)", ("_fan_out",)),
    ("RTP out: sendmsg (GSO) / sendto (kernel loopback)", ("_pump", "_transmit")),
    ("RTP out: headers + SRTP protect, per viewer", ("_pump", "LeanViewer.send")),
    ("RTP out: packet bodies per header layout", ("_pump", "prepared")),
    ("RTCP: sender reports, one pass for every viewer", ("FanOut._report",)),
    ("RTP out: fan-out loop itself (FanOut._pump)", ("_pump",)),
    ("NACK retransmissions", ("LeanViewer.retransmit",)),
    ("publisher in: SRTP, jitter buffer, REMB", ("_handle_rtp_packet",)),
    ("publisher in: SRTP, jitter buffer, REMB", ("_recv_next",)),
    ("RTP out: sendto (uvloop + kernel loopback)", ("_run_rtp", "send_data")),
    ("RTP out: SRTP protect (pylibsrtp)", ("_run_rtp", "Session.protect")),
    ("RTP out: aioice/DTLS send coroutines", ("_run_rtp", "_send_rtp")),
    ("RTP out: RtpPacket serialize + extensions", ("_run_rtp", "RtpPacket.serialize")),
    ("RTP out: NTP clock (abs-send-time, SR)", ("_run_rtp", "current_ntp_time")),
    ("RTP out: RtpPacket objects", ("_run_rtp", "RtpPacket.__init__")),
    ("RTP out: VP8/Opus packetize (pack)", ("_run_rtp", ".pack (aiortc/codecs")),
    ("RTP out: relay track recv + wake-up", ("_run_rtp", "RelayTrack.recv")),
    ("RTP out: sender loop itself (_run_rtp)", ("_run_rtp",)),
    ("datagrams in (aioice)", ("datagram_received",)),
    ("media hub keeper", ("MediaHub._keep",)),
    ("event loop itself (uvloop, C)", ("_serve (livecommerce/cli.py",)),
)

# Leaf frames of idle threads (see profile_summary): the decoder threads aiortc parks too.
IDLE_LEAVES = ("Condition.wait (threading.py", *measure.IDLE_LEAVES)


async def record_profile(pid: int, directory: Path, seconds: float) -> list[tuple[str, float]]:
    """py-spy's Python stacks over one window (wall clock: a thread preempted while runnable,
    e.g. after waking a viewer in sendto, is counted where it stands)."""
    if shutil.which("py-spy") is None:
        print("  --profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return []
    out = directory / "relay.txt"
    print(f"  py-spy recording the relay ({pid}) for {seconds:.0f} s to {out}", file=sys.stderr)
    await asyncio.to_thread(
        subprocess.run,
        [
            *("py-spy", "record", "--pid", str(pid), "--rate", "100", "--format", "raw"),
            *("--duration", str(round(seconds)), "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return profile_summary(out, PROFILE_BUCKETS, IDLE_LEAVES) if out.exists() else []


# Shared objects whose on-CPU time perf reports, by what runs in them.
PERF_DSOS = (
    ("libpython", "Python interpreter: aiortc, aioice, relay code"),
    ("[kernel", "kernel: UDP sendto over loopback, wake-ups, scheduling"),
    ("libc.so", "libc: malloc, memcpy"),
    ("_binding.abi3.so", "libsrtp (pylibsrtp): SRTP encryption"),
    ("_cffi_backend", "cffi: calls into libsrtp"),
    ("loop.cpython", "uvloop"),
)


async def record_perf(pid: int, directory: Path, seconds: float) -> list[tuple[str, float]]:
    """On-CPU time by shared object (``perf record``), where Linux perf is installed."""
    if shutil.which("perf") is None:
        return []
    data = directory / "relay.perf"
    print(f"  perf recording the relay ({pid}) for {seconds:.0f} s to {data}", file=sys.stderr)
    await asyncio.to_thread(
        subprocess.run,
        [
            *("perf", "record", "-F", "499", "-p", str(pid), "-o", str(data)),
            *("--", "sleep", str(round(seconds))),
        ],
        capture_output=True,
        check=False,
    )
    done = await asyncio.to_thread(
        subprocess.run,
        ["perf", "report", "-i", str(data), "--sort", "dso", "--stdio", "-g", "none"],
        capture_output=True,
        text=True,
        check=False,
    )
    shares: Counter[str] = Counter()
    for line in done.stdout.splitlines():
        share, _, dso = line.strip().partition("%")
        if line.startswith("#") or not dso.strip():
            continue
        with contextlib.suppress(ValueError):
            name = next((n for key, n in PERF_DSOS if key in dso), "other")
            shares[name] += float(share) / 100
    return shares.most_common()


# -- the two servers --------------------------------------------------------------------------


async def create_stream(url: str) -> tuple[int, str]:
    """A creator account and a stream; returns its id and stream key."""
    async with aiohttp.ClientSession() as session:
        token = await sign_up(session, url, "Creator")
        headers = {"Authorization": f"Bearer {token}"}
        body = {"title": "Relay bench"}
        async with session.post(f"{url}/api/streams", json=body, headers=headers) as response:
            created = await response.json()
            assert response.status == 201, created
            return int(created["stream"]["id"]), str(created["stream_key"])


async def bench_livecommerce(args: argparse.Namespace, work: Path, redis_url: str) -> Target:
    namespace = f"relay{uuid.uuid4().hex[:6]}"
    env = {
        "DATA_DIR": str(work),
        "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'relay.db'}",
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": namespace,
        "ICE_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        # Every bench viewer comes from 127.0.0.1, and hundreds join at once on a busy machine.
        "WHEP_SESSIONS_PER_ADDRESS": "100000",
        "ICE_CONNECT_TIMEOUT_SECONDS": "120",
    }
    server = ServerProcess(env, work / "server.log")
    target = Target("livecommerce")
    try:
        await asyncio.to_thread(server.wait_ready)
        stream_id, key = await create_stream(server.url)
        run = Run(args, server.process.pid, server.url)
        procs = max(1, min(args.viewer_procs, min(args.viewers)))
        profile = Path(args.profile) if args.profile else None
        await measure_relay(
            target,
            run,
            f"/whip/{stream_id}",
            key,
            f"/whep/{stream_id}",
            args.viewers,
            procs,
            profile,
        )
    finally:
        server.stop()
        await forget(redis_url, namespace)
        target.notes += log_problems(server.log_path, args.keep_logs)
    return target


def start_mediarelay(port: int, bitrate: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.relay"),
                *("--serve-mediarelay", str(port), "--bitrate", str(bitrate)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def bench_mediarelay(args: argparse.Namespace, work: Path) -> Target:
    port = free_port()
    log = work / "mediarelay.log"
    server = start_mediarelay(port, args.bitrate, log)
    target = Target("MediaRelay")
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MediaRelay server did not start:\n{log.read_text()}")
            await asyncio.sleep(0.1)
        run = Run(args, server.pid, f"http://127.0.0.1:{port}")
        await measure_relay(
            target, run, "/whip/1", None, "/whep/1", [args.baseline_viewers], 1, None
        )
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        target.notes += log_problems(log, args.keep_logs)
    return target


def log_problems(log: Path, keep: str | None) -> list[str]:
    """The server log's warnings and errors, summed up; the log is copied to ``keep`` if set."""
    if keep:
        shutil.copy(log, Path(keep) / log.name)
    found = Counter(
        line[:150]
        for line in log.read_text(errors="replace").splitlines()
        if any(word in line for word in ("WARNING", "ERROR", "Error", "Traceback"))
    )
    return [f"log {log.name}: {n} x {line}" for line, n in found.most_common(3)]


# -- report -------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, targets: list[Target], background: float, speed: tuple[float, float]
) -> None:
    columns = [(t, s) for t in targets for s in t.steps]
    if not columns:
        print("nothing measured")
        return
    publisher = targets[0].publisher
    print(
        f"\nrelay bench: one 720p{FPS} VP8 publisher ({publisher.get('kbps', math.nan):.0f} "
        f"kbit/s encoded, keyframe {publisher.get('keyframe_bytes', 0) / 1000:.0f} KB, "
        f"delta frames {publisher.get('frame_bytes', 0) / 1000:.1f} KB) + Opus, "
        f"{args.seconds:.0f} s windows"
    )
    receive = "aiortc's whole receive path" if args.full_receive else "RTP headers only"
    print(
        f"  {os.cpu_count()} CPUs shared by relay, publisher, viewers ({receive}, no decoding) "
        f"and the rest; {background:.2f} cores busy before the start"
    )
    print(
        f"  Python speed: sum(range(1000)) took {speed[0]:.1f} us before the run, "
        f"{speed[1]:.1f} us after (CPU figures scale with it)"
    )
    table = FiguresTable(44, [13] * len(columns))
    table.header([t.name[:12] for t, _s in columns])

    def row(label: str, pick: Callable[[Target, Step], float | str], fmt: str = ".1f") -> None:
        table.row(label, [pick(target, step) for target, step in columns], fmt)

    row("viewers", lambda t, s: s.window.viewers, ".0f")
    row("  failed to join", lambda t, s: sum(s.errors.values()), ".0f")
    row("relay CPU, publisher only, % of a core", lambda t, s: 100 * s.base.server, ".0f")
    row("relay CPU with the viewers, % of a core", lambda t, s: 100 * s.window.server, ".0f")
    row("relay CPU per viewer, ms/s", lambda t, s: 1000 * s.relay_per_viewer, ".2f")
    row("viewers per core (as measured)", lambda t, s: inverse(s.relay_per_viewer), ".1f")
    row("viewers per core at 30 fps (CPU x 30/fps)", lambda t, s: s.per_core, ".1f")
    row("relay CPU per RTP packet sent, us", lambda t, s: s.us_per_packet, ".1f")
    row("video fps sent by the publisher", lambda t, s: s.window.sent_fps)
    row("video fps per viewer, min", lambda t, s: min(s.window.fps, default=math.nan))
    row("video fps per viewer, median", lambda t, s: statistics.median(s.window.fps or [math.nan]))
    row(
        "RTP packets/s per viewer, median",
        lambda t, s: statistics.median(s.window.pps or [0]),
        ".0f",
    )
    row("kbit/s per viewer, median", lambda t, s: statistics.median(s.window.kbps or [0]), ".0f")
    row(
        "packets lost (sequence gaps), %",
        lambda t, s: 100 * s.window.lost / max(1, s.window.lost + s.window.received),
        ".2f",
    )

    def timing(i: int, p: float) -> Callable[[Target, Step], float]:
        return lambda t, s: percentile([x[i] for x in s.timings], p)

    row("joining now (timings below are theirs)", lambda t, s: len(s.timings), ".0f")
    row("  POST -> answer p50, ms", timing(0, 50), ".0f")
    row("  POST -> connected (ICE + DTLS) p50, ms", timing(1, 50), ".0f")
    row("  POST -> first frame p50, ms", timing(2, 50), ".0f")
    row("  POST -> first frame p95, ms", timing(2, 95), ".0f")
    row(
        "  first frame a keyframe",
        lambda t, s: f"{sum(x[3] for x in s.timings)}/{len(s.timings)}",
    )
    row("publisher CPU, % of a core", lambda t, s: 100 * s.window.publisher, ".0f")
    row("viewer processes' CPU, cores", lambda t, s: s.window.viewer_procs, ".2f")
    row("other processes' CPU, cores", lambda t, s: s.window.other, ".2f")
    for target in targets:
        if target.new_viewers:
            first = [t[2] for t in target.new_viewers]
            print(
                f"  {target.name}: {len(first)} new viewers joining the running show one by one "
                f"(with {target.steps[0].window.viewers} watching): POST -> first frame p50 "
                f"{percentile(first, 50):.0f} ms, p95 {percentile(first, 95):.0f} ms, "
                f"answer p50 {percentile([t[0] for t in target.new_viewers], 50):.0f} ms, "
                f"connected p50 {percentile([t[1] for t in target.new_viewers], 50):.0f} ms"
            )
        if target.glass_ms:
            print(
                f"  {target.name}: glass to glass (camera -> encode -> relay -> decode, a second "
                f"show, {len(target.glass_ms)} frames): p50 {percentile(target.glass_ms, 50):.0f}"
                f" ms, p95 {percentile(target.glass_ms, 95):.0f} ms"
            )
    base = next((t for t in targets if t.name == "MediaRelay" and t.steps), None)
    ours = [s for t in targets if t.name == "livecommerce" for s in t.steps]
    if base is not None:
        baseline = base.steps[-1].per_core
        for step in ours:
            print(
                f"  ours / MediaRelay viewers per core at {step.window.viewers} viewers: "
                f"{step.per_core / baseline:.0f}x ({step.per_core:.0f} vs {baseline:.1f})"
            )
    for target in targets:
        states = target.publisher.get("states", [])
        if any(state in ("failed", "disconnected") for _at, state in states):
            began = states[0][0]
            told = ", ".join(f"{state} at {at - began:.0f} s" for at, state in states)
            print(f"  note ({target.name}): the publisher's connection went {told}")
        if target.publisher.get("frames"):
            print(
                f"  {target.name} publisher: {target.publisher['frames']} video frames sent, "
                f"{target.publisher['restarts']} keyframe requests answered"
            )
        for step in target.steps:
            if step.errors:
                print(f"  note ({target.name}): join errors {dict(step.errors.most_common(3))}")
            if step.window.fps and min(step.window.fps) < 0.9 * FPS:
                slow = sum(f < 0.9 * FPS for f in step.window.fps)
                print(
                    f"  note ({target.name}, {step.window.viewers} viewers): {slow} viewers got "
                    f"< {0.9 * FPS:.0f} fps: saturated (relay or machine)"
                )
            if step.window.publisher_state != "connected":
                print(
                    f"  note ({target.name}, {step.window.viewers} viewers): the publisher's "
                    f"connection was {step.window.publisher_state!r} at the end of the window"
                )
            if machine_shared(step.window.other):
                print(
                    f"  note ({target.name}, {step.window.viewers} viewers): other processes used "
                    f"{step.window.other:.2f} cores meanwhile: the machine was shared"
                )
        for note in target.notes:
            print(f"  note ({target.name}): {note}")
        if target.profile:
            n = target.steps[-1].window.viewers
            print(f"  where the {target.name} relay's CPU went (py-spy, {n} viewers):")
            for name, share in target.profile:
                print(f"    {100 * share:5.1f} %  {name}")
        if target.perf:
            n = target.steps[-1].window.viewers
            print(f"  on-CPU time of the {target.name} relay by library (perf, {n} viewers):")
            for name, share in target.perf:
                print(f"    {100 * share:5.1f} %  {name}")
        if target.capacity:
            print(
                f"  capacity run ({target.name}; relay, publisher and viewer processes on this "
                f"host; every viewer >= {CAPACITY_FPS:.0f} fps, publisher connected):"
            )
            for viewers, outcome in target.capacity:
                print(f"    {viewers:5d} viewers: {outcome}")
            held = [viewers for viewers, outcome in target.capacity if outcome.startswith("ok")]
            print(f"    most viewers held: {max(held, default=0)}")
    measured = [s.per_core for s in ours if not math.isnan(s.per_core)]
    if measured:
        best = max(measured)
        print("  goals:")
        print(f"    >= 400 viewers per core at 30 fps     {goal_mark(best >= 400)} ({best:.0f})")
        per_packet = min(s.us_per_packet for s in ours)
        print(
            f"    <= 12 us CPU per RTP packet           {goal_mark(per_packet <= 12)} "
            f"({per_packet:.1f})"
        )
        if base is not None:
            ratio = best / base.steps[-1].per_core
            print(
                f"    >= 60x MediaRelay                      {goal_mark(ratio >= 60)} "
                f"({ratio:.0f}x)"
            )
        storm = [t[2] for s in ours for t in s.timings]
        ours_target = next(t for t in targets if t.name == "livecommerce")
        first = [t[2] for t in ours_target.new_viewers]
        if first:
            p95 = percentile(first, 95)
            print(
                f"    first frame p95 <= 500 ms             {goal_mark(p95 <= 500)} ({p95:.0f}, a "
                f"new viewer; {percentile(storm, 95):.0f} for those joining all at once)"
            )
        if ours_target.glass_ms:
            p95 = percentile(ours_target.glass_ms, 95)
            print(f"    glass to glass p95 <= 150 ms          {goal_mark(p95 <= 150)} ({p95:.0f})")


def python_speed_us() -> float:
    """A fixed pure-Python workload (``sum(range(1000))``), best of 5, in microseconds.

    Relay CPU figures scale with it: printed so that runs on other machines, or on this one
    while its host is busier, can be compared.
    """
    return 1e6 * min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000


async def run_all(args: argparse.Namespace) -> list[Target]:
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in ("both", "livecommerce"):
            with redis_server() as redis_url:
                targets.append(await bench_livecommerce(args, work, redis_url))
        if args.only in ("both", "mediarelay"):
            targets.append(await bench_mediarelay(args, work))
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--viewers", type=int, nargs="+", default=[100], help="viewer counts, measured in turn"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="each measurement window")
    parser.add_argument("--viewer-procs", type=int, default=4)
    parser.add_argument("--baseline-viewers", type=int, default=3)
    parser.add_argument("--bitrate", type=int, default=1500, help="video kbit/s")
    parser.add_argument("--join", type=int, default=4, help="joins in flight per viewer process")
    parser.add_argument(
        "--full-receive",
        action="store_true",
        help="viewers run every packet through aiortc's receive path (SRTP, jitter buffer)",
    )
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="then add viewers until one gets < 29 fps or the publisher is lost (livecommerce)",
    )
    parser.add_argument("--capacity-step", type=int, default=50)
    parser.add_argument("--capacity-max", type=int, default=1000)
    parser.add_argument(
        "--new-viewers",
        type=int,
        default=20,
        help="then this many viewers join one by one (first frame), and glass to glass is measured",
    )
    parser.add_argument("--only", choices=["both", "livecommerce", "mediarelay"], default="both")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the livecommerce relay")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the servers' logs there")
    parser.add_argument("--quick", action="store_true", help="10 viewers, 5 s windows: a smoke run")
    parser.add_argument("--serve-mediarelay", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_mediarelay:
        serve_mediarelay(args.serve_mediarelay, args.bitrate * 1000)
        return 0
    for directory in (args.profile, args.keep_logs):
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.viewers, args.seconds, args.viewer_procs, args.baseline_viewers = [10], 5.0, 2, 2
        args.new_viewers = 5
    args.viewers = sorted(set(args.viewers))
    raise_fd_limit(4 * max([*args.viewers, args.capacity_max if args.capacity else 0]) + 1024)
    background = background_cores(1.0)
    before_us = python_speed_us()
    targets = asyncio.run(run_all(args))
    report(args, targets, background, (before_us, python_speed_us()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
