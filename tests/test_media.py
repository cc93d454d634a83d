"""The WebRTC relay, with real aiortc peers on 127.0.0.1: publisher -> relay -> viewers.

The publisher encodes a synthetic camera whose frames show their own number as 16 black/white
blocks; viewers decode what the relay forwards and read the numbers back, so a test can tell which
frames arrived, in what order, and that the first one decoded.
"""

from __future__ import annotations

import ast
import asyncio
import fractions
import itertools
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aioice.ice
import aiortc.codecs
import aiortc.codecs.vpx
import aiortc.rtcrtpreceiver
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpSender,
)
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError

import livecommerce.media
from livecommerce.media.addressquota import AddressQuota, TooManySessions
from livecommerce.media.rtc import aiortcseam
from livecommerce.media.rtc.aiortcseam import AiortcIncompatible, check_aiortc
from livecommerce.media.rtc.encodedframe import EncodedFrame
from livecommerce.media.rtc.iceconfig import IceConfig
from livecommerce.media.rtc.keyframerequester import KeyframeRequester
from livecommerce.media.rtc.relay import StreamNotLive, StreamRelay
from livecommerce.media.rtc.sessions import (
    OfferRejected,
    accept_publisher,
    accept_viewer,
)
from livecommerce.media.rtc.viewerqueue import Pushed, ViewerQueue
from tests.mediapeers import (
    CONFIG,
    Peers,
    Viewer,
    decode_failures,
    encode,
    strictly_increasing,
    until,
)

pytestmark = pytest.mark.usefixtures("loopback_only")

# --- end to end --------------------------------------------------------------------------------


class CodecCalls:
    """Which aiortc decoder and encoder instances decode, encode and pack."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoders = 0
        self.encoding: set[int] = set()
        self.packing: set[int] = set()

        def counting_get_decoder(codec: RTCRtpCodecParameters) -> Any:
            self.decoders += 1
            return aiortc.codecs.get_decoder(codec)

        monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", counting_get_decoder)
        for encoder in (Vp8Encoder, OpusEncoder):
            monkeypatch.setattr(encoder, "encode", self._record(encoder.encode, self.encoding))
            monkeypatch.setattr(encoder, "pack", self._record(encoder.pack, self.packing))

    @staticmethod
    def _record(method: Callable[..., Any], instances: set[int]) -> Callable[..., Any]:
        def recorded(encoder: Any, *args: Any, **kwargs: Any) -> Any:
            instances.add(id(encoder))
            return method(encoder, *args, **kwargs)

        return recorded


async def test_vp8_and_opus_reach_every_viewer_starting_on_a_keyframe(
    peers: Peers, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc")
    calls = CodecCalls(monkeypatch)
    relay = StreamRelay()
    publisher = await peers.publish(relay)
    early = await asyncio.gather(peers.view(relay), peers.view(relay))
    for viewer in early:
        await viewer.wait_frames(15)
    late = await peers.view(relay)
    await late.wait_frames(15)

    for viewer in [*early, late]:
        assert viewer.encoded[0].keyframe, "a viewer must start on a keyframe"
        assert strictly_increasing(viewer.numbers), viewer.numbers
        assert viewer.audio_frames > 0 and abs(viewer.audio_peak) > 1000
    assert late.numbers[0] > max(v.numbers[0] for v in early)
    assert not decode_failures(caplog)
    # Three joins (two at once) reached the camera as few merged requests, each one answered.
    assert 1 <= publisher.camera.requests <= relay.keyframes.sent < relay.keyframes.requested
    assert relay.frames_in > 0 and relay.live
    # Nothing decoded or encoded in between: 3 viewers x (video + audio) decoders, the
    # publisher's two encoders, and one packer per codec on the relay, shared by every viewer.
    assert calls.decoders == 6
    assert len(calls.encoding) == 2
    assert len(calls.packing) == 2 and not calls.packing & calls.encoding


async def test_h264_is_relayed_as_is(peers: Peers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc")
    relay = StreamRelay()
    await peers.publish(relay, codec="video/H264")
    viewer = await peers.view(relay)
    await viewer.wait_frames(15)

    codec = relay.codec("video")
    assert codec is not None and codec.mimeType == "video/H264"
    first = viewer.encoded[0]
    assert first.mime_type == "video/H264" and first.keyframe and first.parameter_sets
    assert strictly_increasing(viewer.numbers), viewer.numbers
    assert not decode_failures(caplog)


async def test_viewers_wait_while_the_publisher_is_away_and_resume_on_its_return(
    peers: Peers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc")
    relay = StreamRelay()
    first = await peers.publish(relay)
    viewer = await peers.view(relay)
    await viewer.wait_frames(10)

    await first.pc.close()  # sends RTCP BYE: the relay notices at once
    left = asyncio.get_running_loop().time()
    await until(lambda: not relay.live and first.session.closed)
    frames_before = -1
    while frames_before != len(viewer.numbers):  # frames already on their way still land
        frames_before = len(viewer.numbers)
        await asyncio.sleep(0.3)
    encoded_before = len(viewer.encoded)
    assert viewer.pc.connectionState == "connected" and not viewer.session.closed  # type: ignore[union-attr]

    await peers.publish(relay, start=5000)
    away = asyncio.get_running_loop().time() - left
    await until(lambda: bool(viewer.numbers) and viewer.numbers[-1] >= 5000)
    await viewer.wait_frames(10)

    # aiortc's jitter buffer releases a frame when the next one starts, so the first publisher's
    # last frame comes out just before the second one's first: find the jump in time.
    stamps = [f.timestamp for f in viewer.encoded]
    resumed = max(range(encoded_before - 1, len(stamps)), key=lambda i: stamps[i] - stamps[i - 1])
    assert viewer.encoded[resumed].keyframe, "resumes on the new publisher's keyframe"
    gap = (stamps[resumed] - stamps[resumed - 1]) / 90000
    assert 0.3 < gap < away + 1, "timestamps go on, by about the time spent away"
    after = viewer.numbers[frames_before:]
    assert sum(n < 5000 for n in after) <= 1 and strictly_increasing(viewer.numbers)
    assert not decode_failures(caplog)


async def test_a_newer_publisher_replaces_the_current_one(peers: Peers) -> None:
    relay = StreamRelay()
    old = await peers.publish(relay)
    viewer = await peers.view(relay)
    await viewer.wait_frames(5)

    new = await peers.publish(relay, start=7000)
    await until(lambda: old.session.closed)
    await until(lambda: viewer.numbers[-1] >= 7000)
    assert new.session.live and not old.session.live
    assert strictly_increasing(viewer.numbers)


async def test_a_publisher_that_ignores_keyframe_requests_still_starts_viewers(
    peers: Peers, caplog: pytest.LogCaptureFixture
) -> None:
    # Like OBS: a keyframe every 15 frames (0.5 s) whatever is asked.
    caplog.set_level(logging.WARNING, logger="aiortc")
    relay = StreamRelay(keyframe_interval=0.2, keyframe_retry=0.4)
    publisher = await peers.publish(relay, keyframe_every=15, ignore_requests=True)
    await asyncio.sleep(0.2)
    viewer = await peers.view(relay)
    await viewer.wait_frames(20)

    assert viewer.encoded[0].keyframe and viewer.numbers[0] % 15 == 0
    assert strictly_increasing(viewer.numbers)
    assert publisher.camera.requests >= 1  # asked (and ignored) ...
    times = publisher.camera.request_times
    assert all(b - a >= 0.2 - 0.05 for a, b in itertools.pairwise(times))  # ... politely
    assert not decode_failures(caplog)


async def test_viewers_keyframe_requests_are_merged_and_rate_limited(peers: Peers) -> None:
    relay = StreamRelay(keyframe_interval=0.5, keyframe_retry=1.0)
    publisher = await peers.publish(relay)
    viewers = await asyncio.gather(*(peers.view(relay) for _ in range(4)))
    for viewer in viewers:
        await viewer.wait_frames(5)
    await until(lambda: not relay.keyframes.outstanding)
    asked = publisher.camera.requests

    def keyframes_seen() -> list[int]:
        return [sum(frame.keyframe for frame in viewer.encoded) for viewer in viewers]

    async def every_viewer_sends_a_pli_and_gets_a_keyframe() -> None:
        before, requested = keyframes_seen(), relay.keyframes.requested
        for viewer in viewers:
            receiver = viewer.video.receiver
            for source in receiver.getSynchronizationSources():
                await aiortcseam.send_pli(receiver, source.source)
        await until(lambda: relay.keyframes.requested >= requested + 4)
        await until(lambda: all(a > b for a, b in zip(keyframes_seen(), before, strict=True)))

    await every_viewer_sends_a_pli_and_gets_a_keyframe()
    assert publisher.camera.requests == asked + 1  # four PLIs, one request upstream

    await every_viewer_sends_a_pli_and_gets_a_keyframe()  # soon after: held back, still merged
    assert publisher.camera.requests == asked + 2
    first, second = publisher.camera.request_times[-2:]
    assert second - first >= 0.5 - 0.05


async def test_a_slow_viewer_skips_to_the_next_keyframe_instead_of_buffering(
    peers: Peers,
) -> None:
    relay = StreamRelay(video_capacity=8)
    publisher = await peers.publish(relay)
    watching = await peers.view(relay)
    stalled = relay.add_viewer("video")  # a viewer whose sender never reads
    await until(lambda: stalled.queue.overflows >= 2)
    await watching.wait_frames(5)

    assert len(stalled.queue) <= 8
    assert publisher.camera.requests >= 2  # each overflow asked for a keyframe to restart on
    await until(lambda: len(stalled.queue) > 0)
    packet = await stalled.recv()
    assert EncodedFrame.parse("video/VP8", 90000, bytes(packet), 0).keyframe
    assert strictly_increasing(watching.numbers)
    stalled.stop()
    assert stalled not in relay.viewers("video")


async def test_offers_and_sessions_fail_cleanly(peers: Peers) -> None:
    relay = StreamRelay()
    viewer = Viewer()
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    offer = viewer.pc.localDescription.sdp
    with pytest.raises(StreamNotLive):
        await accept_viewer(relay, offer, CONFIG)
    with pytest.raises(OfferRejected):
        await accept_publisher(relay, offer, CONFIG)  # it only receives
    with pytest.raises(OfferRejected):
        await accept_publisher(relay, "v=0\r\nnonsense", CONFIG)
    with pytest.raises(ValueError, match="explicit"):
        await accept_publisher(relay, offer, RTCConfiguration())
    await viewer.close()

    publisher = await peers.publish(relay)
    h264_only = Viewer()
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    h264_only.video.setCodecPreferences(h264)
    await h264_only.pc.setLocalDescription(await h264_only.pc.createOffer())
    offer = h264_only.pc.localDescription.sdp
    with pytest.raises(OfferRejected, match="codec"):  # the stream is VP8: no transcoding
        await accept_viewer(relay, offer, CONFIG)
    await h264_only.close()

    await publisher.session.close()
    await publisher.session.close()
    assert not relay.live
    watcher = await peers.view(relay)  # the last codec is remembered: viewers may wait
    assert watcher.session is not None
    await asyncio.gather(watcher.session.close(), watcher.session.close())
    assert not relay.viewers("video")


# --- parts -------------------------------------------------------------------------------------


def test_check_aiortc_passes_and_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    check_aiortc()
    monkeypatch.delattr(RTCRtpSender, "_send_keyframe")
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(AiortcIncompatible, match=r"1\.17\.0.*_send_keyframe"):
        check_aiortc()


def test_check_aiortc_covers_what_the_benches_reach_into(monkeypatch: pytest.MonkeyPatch) -> None:
    def datagram_received(self: aioice.ice.StunProtocol, data: bytes) -> None:
        return None

    monkeypatch.setattr(aioice.ice.StunProtocol, "datagram_received", datagram_received)
    monkeypatch.delattr(aiortc.codecs.vpx, "DEFAULT_BITRATE")
    with pytest.raises(AiortcIncompatible, match=r"StunProtocol.*DEFAULT_BITRATE"):
        check_aiortc()


async def test_filter_datagrams_sees_each_datagram_first_and_drops_the_refused() -> None:
    offerer, answerer = RTCPeerConnection(CONFIG), RTCPeerConnection(CONFIG)
    channel = offerer.createDataChannel("figures")
    messages: asyncio.Queue[str] = asyncio.Queue()
    answerer.on("datachannel", lambda remote: remote.on("message", messages.put_nowait))
    seen: list[bytes] = []
    refusing = False

    def keep(data: bytes) -> bool:
        seen.append(data)
        return not refusing

    try:
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())  # gathers
        aiortcseam.filter_datagrams(answerer.sctp.transport, keep)
        await offerer.setRemoteDescription(answerer.localDescription)
        await until(lambda: channel.readyState == "open")
        channel.send("kept")
        assert await asyncio.wait_for(messages.get(), 10) == "kept"
        assert seen  # STUN checks, the DTLS handshake and SCTP all came through ``keep``
        refusing, before = True, len(seen)
        channel.send("refused")
        await until(lambda: len(seen) > before)
        await asyncio.sleep(0.5)
        assert messages.empty()
    finally:
        await asyncio.gather(offerer.close(), answerer.close())


def test_viewer_queue_starts_on_a_keyframe_and_skips_ahead_when_full() -> None:
    queue: ViewerQueue[str] = ViewerQueue(capacity=4)
    assert queue.push("d0", keyframe=False) is Pushed.SKIPPED
    assert queue.push("k1", keyframe=True) is Pushed.QUEUED
    for name in ("d2", "k3", "d4"):
        assert queue.push(name, keyframe=name.startswith("k")) is Pushed.QUEUED
    # Full: jump to the newest queued keyframe rather than drop everything.
    assert queue.push("d5", keyframe=False) is Pushed.QUEUED
    assert [queue.pop() for _ in range(len(queue))] == ["k3", "d4", "d5"]

    for name in ("d6", "d7", "d8", "d9"):
        queue.push(name, keyframe=False)
    # Full with no keyframe to skip to: drop all, wait for the next keyframe.
    assert queue.push("d10", keyframe=False) is Pushed.OVERFLOWED
    assert len(queue) == 0 and queue.waiting_for_keyframe
    assert queue.push("d11", keyframe=False) is Pushed.SKIPPED
    assert queue.push("k12", keyframe=True) is Pushed.QUEUED
    assert queue.pop() == "k12" and queue.overflows == 2 and queue.dropped == 9

    queue.push("d13", keyframe=False)
    queue.restart()
    assert queue.push("d14", keyframe=False) is Pushed.SKIPPED
    assert queue.pop() == "d13"


async def test_keyframe_requests_merge_and_respect_the_interval() -> None:
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def send() -> None:
        sent.append(loop.time())

    requester = KeyframeRequester(send, min_interval=0.2, retry_interval=0.4)
    for _ in range(10):
        requester.request()
    await until(lambda: len(sent) == 1)
    assert requester.requested == 10 and requester.outstanding
    requester.keyframe_received()

    requester.request()  # right after the last one: held back for the interval
    await asyncio.sleep(0)
    assert len(sent) == 1
    await until(lambda: len(sent) == 2)
    assert sent[1] - sent[0] >= 0.2 - 0.01

    for _ in range(5):  # merged into the outstanding one
        requester.request()
    await until(lambda: len(sent) == 3)  # no keyframe came: asked again after the retry interval
    assert sent[2] - sent[1] >= 0.4 - 0.01
    requester.keyframe_received()
    await asyncio.sleep(0.5)
    assert len(sent) == 3 and not requester.outstanding
    requester.close()


async def test_closing_the_relay_ends_the_keyframe_requests_in_flight() -> None:
    """A PLI still being sent when the relay closes is cancelled, and awaited by its owner."""
    never = asyncio.Event()

    async def stuck_request() -> None:
        await never.wait()  # a publisher whose PLI send never finishes

    relay = StreamRelay()
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    relay.attach_publisher({"video": codec}, stuck_request)
    before = asyncio.all_tasks()
    relay.add_viewer("video")  # asks the publisher for a keyframe at once
    await asyncio.sleep(0.05)
    in_flight = asyncio.all_tasks() - before
    assert len(in_flight) == 1 and relay.keyframes.sent == 1
    relay.close()
    await relay.wait_closed()
    assert all(task.done() for task in in_flight)


def test_keyframes_are_recognised_in_vp8_and_h264() -> None:
    vp8 = [EncodedFrame.parse("video/VP8", 90000, p, 0) for p in encode("libvpx", 3)]
    assert [f.keyframe for f in vp8] == [True, False, False]
    h264 = [EncodedFrame.parse("video/H264", 90000, p, 0) for p in encode("libx264", 3)]
    assert [f.keyframe for f in h264] == [True, False, False]
    assert h264[0].parameter_sets.startswith(b"\x00\x00\x00\x01\x67")  # SPS first
    assert EncodedFrame.parse("audio/opus", 48000, b"\xfc\xff\xfe", 0).keyframe


async def test_an_h264_keyframe_without_parameter_sets_gets_the_last_ones() -> None:
    relay = StreamRelay()
    codec = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)

    async def no_request() -> None:
        pass

    ingest = relay.attach_publisher({"video": codec}, no_request)
    track = relay.add_viewer("video")
    first = EncodedFrame.parse("video/H264", 90000, encode("libx264", 1)[0], 0)
    bare_idr = b"\x00" + first.data[first.data.index(b"\x00\x00\x01\x65") :]  # the IDR slice
    ingest.push(codec, first.data, 0)
    ingest.push(codec, bare_idr, 3000)
    assert bytes(await track.recv()) == first.data
    repaired = await track.recv()
    assert bytes(repaired) == first.parameter_sets + bare_idr
    assert repaired.pts == 3000 and repaired.time_base == fractions.Fraction(1, 90000)
    relay.close()
    relay.close()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_timestamps_keep_increasing_across_publishers() -> None:
    relay = StreamRelay()
    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)

    async def no_request() -> None:
        pass

    first = relay.attach_publisher({"audio": codec}, no_request)
    track = relay.add_viewer("audio")
    for timestamp in (0, 960, 1920):
        first.push(codec, b"\xfc", timestamp)
    first.detach()
    second = relay.attach_publisher({"audio": codec}, no_request)
    first.push(codec, b"\xfc", 2880)  # a detached publisher is ignored
    for timestamp in (0, 960):  # each publisher starts from 0
        second.push(codec, b"\xfc", timestamp)
    pts = [(await track.recv()).pts or 0 for _ in range(5)]
    assert pts[:3] == [0, 960, 1920] and strictly_increasing(pts) and pts[4] - pts[3] == 960


async def test_the_relay_tells_when_it_goes_live_and_when_its_publisher_leaves() -> None:
    told: list[bool] = []
    relay = StreamRelay(on_live=told.append)
    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)

    async def no_request() -> None:
        pass

    first = relay.attach_publisher({"audio": codec}, no_request)
    assert told == [True] and relay.publisher is first and first.attached
    second = relay.attach_publisher({"audio": codec}, no_request)  # a replacement: no change
    assert told == [True] and relay.publisher is second and not first.attached
    first.push(codec, b"\xfc", 0)
    assert relay.frames_in == 0, "a replaced publisher's frames are ignored"
    second.push(codec, b"\xfc", 0)
    assert relay.frames_in == 1
    first.detach()
    assert told == [True] and second.attached, "a replaced publisher leaving changes nothing"
    second.detach()
    assert told == [True, False] and relay.publisher is None
    relay.attach_publisher({"audio": codec}, no_request)
    relay.close()
    relay.close()
    assert told == [True, False, True, False]


def test_only_the_seam_reaches_into_another_objects_private_members() -> None:
    """Outside the seams (aiortcseam.py, srtpseam.py), media code uses ``self._x`` only, never
    ``other._x``: what one class needs from another is a public method (an Ingest asks its
    relay, it does not reach in)."""
    media = Path(livecommerce.media.__file__).parent
    reaching = []
    for path in sorted(media.rglob("*.py")):
        if path.name in ("aiortcseam.py", "srtpseam.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            own = isinstance(node.value, ast.Name) and node.value.id == "self"
            if not own and not node.attr.startswith("__"):
                reaching.append(f"{path.relative_to(media)}:{node.lineno} {ast.unparse(node)}")
    assert reaching == []


def test_ice_config_keeps_loopback_peers_on_loopback_and_announces_behind_nat() -> None:
    offer = (
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
        "a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n"
        "a=candidate:2 1 udp 2130706431 127.0.0.1 5001 typ host\r\n"
        "a=candidate:3 1 udp 2130706431 peer.local 5002 typ host\r\n"
    )
    kept = IceConfig(hosts=("127.0.0.1",)).reachable(offer)
    assert [line.split()[4] for line in kept.splitlines() if "candidate" in line] == ["127.0.0.1"]
    assert IceConfig(hosts=("192.0.2.9",)).reachable(offer) == offer
    announced = IceConfig(announced="198.51.100.7").announce(kept)
    assert "c=IN IP4 198.51.100.7" in announced and "127.0.0.1" not in announced
    assert IceConfig().announce(kept) == kept
    with pytest.raises(ValueError):
        IceConfig(announced="nat.example.net")


def test_ice_config_never_defaults_to_a_public_server() -> None:
    assert IceConfig().rtc_configuration().iceServers == []
    servers = (
        IceConfig(
            hosts=("127.0.0.1", "::1"),
            servers=(
                "stun:stun.example.net:3478",
                "turn:user:secret@turn.example.net?transport=tcp",
            ),
        )
        .rtc_configuration()
        .iceServers
    )
    assert servers is not None
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        ("stun:stun.example.net:3478", None, None),
        ("turn:turn.example.net?transport=tcp", "user", "secret"),
    ]
    for bad in ({"hosts": ("localhost",)}, {"servers": ("http://x",)}, {"servers": ("turn:x",)}):
        with pytest.raises(ValueError):
            IceConfig(**bad)


async def test_host_candidates_are_pinned_to_loopback(peers: Peers) -> None:
    relay = StreamRelay()
    publisher = await peers.publish(relay)
    for sdp in (publisher.pc.localDescription.sdp, publisher.pc.remoteDescription.sdp):
        candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(" 127.0.0.1 " in c and "typ host" in c for c in candidates)


async def test_mangled_offers_are_refused_as_offers_never_crash(
    peers: Peers, caplog: pytest.LogCaptureFixture
) -> None:
    """Lines dropped, cut short or swapped in real offers: an answer or OfferRejected, nothing
    else (aiortc's parser raises AssertionError, IndexError, ... on malformed lines), and every
    half-made peer connection closes cleanly."""
    caplog.set_level(logging.WARNING, logger="livecommerce.media")
    relay = StreamRelay()
    publisher = await peers.publish(relay)
    source = RTCPeerConnection(CONFIG)
    source.addTransceiver("video", direction="sendonly")
    source.addTransceiver("audio", direction="sendonly")
    await source.setLocalDescription(await source.createOffer())
    viewer = Viewer()
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    offers = [source.localDescription.sdp, viewer.pc.localDescription.sdp]
    rng = random.Random(17)
    refused = 0
    for attempt in range(120):
        lines = offers[attempt % 2].splitlines()
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(lines))
            mangle = rng.choice(("drop", "cut", "swap", "junk"))
            if mangle == "drop":
                del lines[at]
            elif mangle == "cut":
                lines[at] = lines[at][: rng.randrange(len(lines[at]) + 1)]
            elif mangle == "swap":
                other = rng.randrange(len(lines))
                lines[at], lines[other] = lines[other], lines[at]
            else:
                lines[at] = lines[at][:2] + "\x00 x y z"
        offer = "\r\n".join(lines) + "\r\n"
        accept = accept_publisher if attempt % 2 == 0 else accept_viewer
        try:
            _answer, session = await accept(relay, offer, CONFIG)
        except OfferRejected:
            refused += 1
            continue
        await session.close()
    assert refused > 30
    assert publisher.session.live, "the stream carried on throughout"
    assert [r.getMessage() for r in caplog.records if r.name.startswith("livecommerce")] == []
    await source.close()
    await viewer.close()


def test_the_session_quota_counts_an_ipv6_64_as_one_address() -> None:
    quota = AddressQuota(2)
    quota.take("2001:db8:1:2::1")
    quota.take("2001:db8:1:2:ffff::9")
    with pytest.raises(TooManySessions):
        quota.take("2001:db8:1:2::abcd")
    quota.take("2001:db8:1:3::1")  # another /64
    quota.take("::ffff:192.0.2.1")
    quota.take("192.0.2.1")
    with pytest.raises(TooManySessions):
        quota.take("192.0.2.1")
    quota.give_back("2001:db8:1:2::1")
    quota.take("2001:db8:1:2::77")
    assert quota.held("2001:db8:1:2::") == 2
    assert quota.held("192.0.2.1") == 2
