"""Real aiortc peers for the media tests: a synthetic camera and microphone, publishers, viewers.

The camera's frames show their own number as 16 black/white blocks; viewers decode what the relay
forwards and read the numbers back, so a test can tell which frames arrived, in what order, and
that the first one decoded. The microphone is a pure tone; viewers keep the decoded audio, so a
test can measure its pitch and level.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import itertools
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import av
import pytest
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCCertificate,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.video.codeccontext import VideoCodecContext

from bench.numberedcamera import HEIGHT, WIDTH, NumberedCamera, numbered_frame, read_number
from livecommerce.media.rtc import aiortcseam
from livecommerce.media.rtc.encodedframe import EncodedFrame
from livecommerce.media.rtc.iceconfig import IceConfig
from livecommerce.media.rtc.relay import StreamRelay
from livecommerce.media.rtc.sessions import (
    PublisherSession,
    ViewerSession,
    accept_publisher,
    accept_viewer,
)

LOOPBACK = IceConfig(hosts=("127.0.0.1",))
CONFIG = LOOPBACK.rtc_configuration()


# --- a synthetic camera and microphone ---------------------------------------------------------


class Tone(AudioStreamTrack):
    """A pure tone (440 Hz, amplitude 8000 of 32767 unless told), 20 ms frames at 48 kHz."""

    def __init__(self, frequency: float = 440.0, amplitude: int = 8000) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.samples = 0
        self.started = 0.0

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self.samples:
            await asyncio.sleep(self.started + self.samples / 48000 - loop.time())
        else:
            self.started = loop.time()
        n = 960
        pcm = array.array(
            "h",
            (
                int(
                    self.amplitude
                    * math.sin(2 * math.pi * self.frequency * (self.samples + i) / 48000)
                )
                for i in range(n)
            ),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=n)
        frame.planes[0].update(pcm.tobytes())
        frame.pts, frame.sample_rate = self.samples, 48000
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += n
        return frame


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition``: most of what the tests wait for has no event to await."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def pitch(samples: array.array[int], rate: int = 48000) -> float:
    """The frequency of a tone, in Hz, from its zero crossings (noise gives a much higher one)."""
    crossings = sum((a < 0) != (b < 0) for a, b in itertools.pairwise(samples))
    return crossings / 2 / (len(samples) / rate)


def rms(samples: array.array[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def tone_share(samples: array.array[int], frequency: float, rate: int = 48000) -> float:
    """How much of the signal's energy is at ``frequency`` (1.0 for a pure tone), by Goertzel."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    power = previous * previous + before * before - coefficient * previous * before
    energy = sum(s * s for s in samples)
    return 2 * power / (len(samples) * energy) if energy else 0.0


# --- peers -------------------------------------------------------------------------------------


@dataclass
class Publisher:
    pc: RTCPeerConnection
    camera: NumberedCamera
    session: PublisherSession


class Viewer:
    """A receive-only peer that decodes what it gets and also records the encoded frames.

    ``audio`` is the decoded audio's first channel; ``encoded_audio`` the Opus frames as received.
    With ``certificate`` its DTLS uses that one (e.g. an RSA one), through the seam.
    """

    def __init__(
        self,
        certificate: RTCCertificate | None = None,
        configuration: RTCConfiguration | None = None,
    ) -> None:
        self.pc = RTCPeerConnection(configuration or CONFIG)
        if certificate is not None:
            aiortcseam.use_dtls_certificate(self.pc, certificate)
        self.numbers: list[int] = []
        self.encoded: list[EncodedFrame] = []
        self.encoded_audio: list[bytes] = []
        self.audio_frames = 0
        self.audio_peak = 0
        self.audio: array.array[int] = array.array("h")
        self.session: ViewerSession | None = None
        self._readers: list[asyncio.Task[None]] = []
        self.video = self.pc.addTransceiver("video", direction="recvonly")
        self.audio_transceiver = self.pc.addTransceiver("audio", direction="recvonly")
        aiortcseam.tap_receiver(self.video.receiver, self._on_encoded, lambda: None, decode=True)
        aiortcseam.tap_receiver(
            self.audio_transceiver.receiver, self._on_encoded_audio, lambda: None, decode=True
        )
        self.pc.on("track", self._on_track)

    def _on_encoded(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        self.encoded.append(EncodedFrame.parse(codec.mimeType, codec.clockRate, data, timestamp))

    def _on_encoded_audio(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        self.encoded_audio.append(data)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.numbers.append(read_number(frame))
                elif isinstance(frame, AudioFrame):
                    self.audio_frames += 1
                    # Packed s16 (L R L R ...); the plane's buffer may be longer than the samples.
                    channels = len(frame.layout.channels)
                    data = bytes(frame.planes[0])[: frame.samples * channels * 2]
                    samples = array.array("h", data)
                    self.audio_peak = max(self.audio_peak, max(samples, key=abs, default=0))
                    self.audio.extend(samples[::channels])
        except MediaStreamError:
            pass

    async def wait_frames(self, count: int) -> None:
        target = len(self.numbers) + count
        await until(lambda: len(self.numbers) >= target)

    async def wait_audio(self, seconds: float, rate: int = 48000) -> None:
        target = len(self.audio) + int(seconds * rate)
        await until(lambda: len(self.audio) >= target, seconds + 10)

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()


class Peers:
    """Creates publishers and viewers for one test, and closes them all at the end."""

    def __init__(self) -> None:
        self.closers: list[Callable[[], Any]] = []

    async def publish(
        self,
        relay: StreamRelay,
        *,
        codec: str = "video/VP8",
        start: int = 0,
        keyframe_every: int = 0,
        ignore_requests: bool = False,
        certificate: RTCCertificate | None = None,
        ciphers: bytes = aiortcseam.DTLS_CIPHERS,
        offer: Callable[[str], str] = lambda sdp: sdp,
        live: bool = True,
    ) -> Publisher:
        """A publisher of the camera (in ``codec``) and a tone; waits until the relay forwards it.

        ``certificate`` and ``ciphers`` go to its DTLS through the seam (by default it keeps
        aiortc's own: an ECDSA certificate and its cipher suites); ``offer`` may rewrite its offer
        (then, with ``live=False``, nothing is awaited once the answer is set).
        """
        pc = RTCPeerConnection(CONFIG)
        if certificate is not None or ciphers != aiortcseam.DTLS_CIPHERS:
            aiortcseam.use_dtls_certificate(pc, certificate, ciphers=ciphers)
        self.closers.append(pc.close)
        camera = NumberedCamera(start, keyframe_every, ignore_requests)
        video = pc.addTransceiver(camera, direction="sendonly")
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for c in capabilities if c.mimeType in (codec, "video/rtx")])
        if codec == "video/VP8":
            # The camera answers keyframe requests itself (and counts them); aiortc's H.264
            # encoder ignores a frame's picture type, so H.264 keeps aiortc's own handling.
            aiortcseam.on_keyframe_request(video.sender, camera.keyframe_request)
        pc.addTransceiver(Tone(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer, session = await accept_publisher(relay, offer(pc.localDescription.sdp), CONFIG)
        self.closers.append(session.close)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        if live:
            await until(lambda: session.live)
        return Publisher(pc, camera, session)

    async def view(self, relay: StreamRelay, certificate: RTCCertificate | None = None) -> Viewer:
        viewer = Viewer(certificate)
        self.closers.append(viewer.close)
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        answer, viewer.session = await accept_viewer(relay, viewer.pc.localDescription.sdp, CONFIG)
        self.closers.append(viewer.session.close)
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return viewer


def decode_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "failed to decode" in r.getMessage()]


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def encode(codec_name: str, frames: int) -> list[bytes]:
    codec = cast(VideoCodecContext, av.CodecContext.create(codec_name, "w"))
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    if codec_name == "libx264":
        codec.options = {"tune": "zerolatency"}
    packets: list[bytes] = []
    for number in range(frames):
        frame = numbered_frame(number)
        frame.pts = number
        packets += [bytes(p) for p in codec.encode(frame)]
    return packets


@pytest.fixture
def loopback_only() -> Iterator[None]:
    """ICE on loopback only (media test modules use it for every test)."""
    LOOPBACK.apply_host_addresses()
    yield
    aiortcseam.pin_host_addresses(())


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    """Publishers and viewers a test makes; closed at the end."""
    created = Peers()
    yield created
    for close in reversed(created.closers):
        await close()
