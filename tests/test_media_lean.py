"""The lean sender: frames packetized once, sent per viewer; NACKs, REMB, GSO runs, load."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import pytest
from aiortc import RTCRtpCodecParameters

from livecommerce.media.rtc import aiortcseam, leansender
from livecommerce.media.rtc.fanout import FanOut
from livecommerce.media.rtc.leansender import LeanViewer
from livecommerce.media.rtc.outframes import GSO_MAX_SEGMENTS, runs
from livecommerce.media.rtc.relay import StreamRelay
from livecommerce.media.rtc.sendload import SendLoad
from tests.mediapeers import Peers, peers, strictly_increasing, until

__all__ = ["peers"]
pytestmark = pytest.mark.usefixtures("loopback_only")


def _rtp(datagram: bytes) -> bool:
    # RTP, not RTCP (RFC 5761 4: RTCP packet types 200-207 sit where an RTP header has M + PT).
    return 128 <= datagram[0] < 192 and not 200 <= datagram[1] <= 207


async def test_packets_lost_on_the_way_to_a_viewer_are_sent_again(peers: Peers) -> None:
    relay = StreamRelay()
    await peers.publish(relay, keyframe_every=0)
    viewer = await peers.view(relay)
    await viewer.wait_frames(3)
    counter = itertools.count(1)
    dropped = 0

    def lossy(datagram: bytes) -> bool:
        nonlocal dropped
        if _rtp(datagram) and next(counter) % 7 == 0:
            dropped += 1
            return False
        return True

    aiortcseam.filter_datagrams(viewer.video.receiver.transport, lossy)
    start = len(viewer.numbers)
    await viewer.wait_frames(40)

    (video,) = [v for v in relay.viewers("video") if isinstance(v, LeanViewer)]
    assert dropped >= 5 and video.retransmitted >= 1
    received = viewer.numbers[start:]
    assert strictly_increasing(viewer.numbers)
    # Every frame arrived in the end: no gap, no restart on a later keyframe.
    assert received == list(range(received[0], received[0] + len(received)))


def test_gso_runs_are_equal_sized_packets_then_one_no_larger() -> None:
    assert runs([1200, 1200, 1200, 700]) == [(0, 4)]
    assert runs([1200, 1201, 1201, 1201, 900, 900]) == [(0, 1), (1, 5), (5, 6)]
    assert runs([100]) == [(0, 1)]
    many = runs([1000] * 150)
    assert [end - start for start, end in many] == [60, 60, 30]
    assert all(end - start <= GSO_MAX_SEGMENTS for start, end in runs([10] * 200))


def test_the_load_refuses_past_the_cap_lag_or_cpu() -> None:
    load = SendLoad(max_viewers=3)
    assert load.refusal(2) is None
    assert "maximum of 3" in (load.refusal(3) or "")
    load = SendLoad()
    assert load.refusal(1000) is None or "CPU" in (load.refusal(1000) or "")
    for _ in range(100):
        load.frame_sent("video", 0.001, 0.5)
    assert "ms" in (load.refusal(5) or "")


async def test_a_viewer_whose_estimate_stays_low_gets_keyframes_only(
    peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leansender, "LOW_BITRATE_FOR_S", 0.0)
    relay = StreamRelay()
    await peers.publish(relay)
    viewer = await peers.view(relay)
    await viewer.wait_frames(3)
    (video,) = [v for v in relay.viewers("video") if isinstance(v, LeanViewer)]
    await until(lambda: relay.fanout.video_bitrate() > 0)
    stream = relay.fanout.video_bitrate()
    video.bitrate_estimated(int(stream * 0.1))
    assert not video.keyframes_only  # not at the first low estimate: only if it stays low
    video.bitrate_estimated(int(stream * 0.1))
    assert video.keyframes_only
    sent = video.sent_frames
    await asyncio.sleep(0.5)  # 15 frames, none a keyframe (the camera sends them on request)
    assert video.sent_frames == sent
    video.bitrate_estimated(int(stream * 2))
    assert not video.keyframes_only
    await viewer.wait_frames(5)
    assert strictly_increasing(viewer.numbers)


async def test_a_fan_out_far_behind_resumes_on_a_queued_keyframe_without_asking() -> None:
    asked: list[int] = []
    fanout = FanOut(lambda: asked.append(1), SendLoad(), backlog=4)
    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)
    video = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    fanout.add(LeanViewer("video", "video/VP8", 96, fanout))
    fanout.add(LeanViewer("audio", "audio/opus", 111, fanout))
    # Nothing is sent (the viewers never connect), and the pump never runs: the queue only grows.
    fanout.push("video", video, b"\x10\x02\x00\x9d\x01\x2a" + bytes(10), 0, True)
    fanout.push("audio", codec, b"\xfc", 0, True)
    fanout.push("video", video, bytes(10), 3000, False)
    fanout.push("video", video, b"\x10\x02\x00\x9d\x01\x2a" + bytes(10), 6000, True)
    fanout.push("video", video, bytes(10), 9000, False)  # full: skips to the queued keyframe
    queued = [(kind, frame.keyframe) for kind, frame in fanout._outbox]
    assert queued == [("audio", True), ("video", True), ("video", False)]
    assert fanout.load.overflows == 1 and not asked
    fanout.push("audio", codec, b"\xfc", 960, True)
    fanout.push("video", video, bytes(10), 12000, False)  # full, no keyframe after the head
    assert fanout.load.overflows == 2 and asked == [1]
    queued = [(kind, frame.keyframe) for kind, frame in fanout._outbox]
    assert queued == [("audio", True), ("audio", True), ("video", False)]  # viewers skip that
    fanout.close()
    await fanout.wait_closed()


async def test_a_frame_for_many_viewers_is_sent_in_slices_the_event_loop_runs_between() -> None:
    fanout = FanOut(lambda: None, SendLoad(), slice_s=0.004)
    video = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    sent: list[float] = []

    def slow_send(frame: object) -> None:  # 1 ms of work per viewer, 200 viewers
        began = time.perf_counter()
        while time.perf_counter() - began < 0.001:
            pass
        sent.append(began)

    for _ in range(200):
        viewer = LeanViewer("video", "video/VP8", 96, fanout)
        setattr(viewer, "send", slow_send)  # noqa: B010 - instance attribute, on purpose
        fanout.add(viewer)
    gaps: list[float] = []

    async def publisher_side() -> None:  # what the publisher's packets need: loop turns
        last = time.perf_counter()
        while len(sent) < 200:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(publisher_side())
    fanout.push("video", video, b"\x10\x02\x00\x9d\x01\x2a" + bytes(70_000), 0, True)
    await asyncio.wait_for(ticking, 10)
    assert len(sent) == 200
    # 200 ms of sending, yet the loop turned every few ms (slices of 4 ms, plus one viewer).
    assert len(gaps) >= 20
    assert statistics.median(gaps) < 0.015
    fanout.close()
    await fanout.wait_closed()


async def test_viewers_get_sender_reports_from_the_relay_and_their_rtt_is_known(
    peers: Peers,
) -> None:
    """The relay sends each viewer's RTCP sender reports itself (not aiortc's task per sender):
    the viewer's receiver hears them (packets and bytes sent so far), and the viewer's receiver
    reports, answering them, give the relay the round-trip time."""
    relay = StreamRelay()
    await peers.publish(relay, keyframe_every=30)
    viewer = await peers.view(relay)
    await viewer.wait_frames(10)
    (video,) = [v for v in relay.viewers("video") if isinstance(v, LeanViewer)]
    assert video._sender is not None
    assert "run_rtcp" in video._sender._run_rtcp.__qualname__  # the relay's stand-in runs

    async def heard() -> list[object]:
        stats = await viewer.video.receiver.getStats()
        return [s for s in stats.values() if s.type == "remote-outbound-rtp"]

    deadline = time.monotonic() + 10
    while not await heard():
        assert time.monotonic() < deadline, "no sender report reached the viewer"
        await asyncio.sleep(0.1)
    (report,) = await heard()
    assert 0 < report.packetsSent <= video.sent_packets  # type: ignore[attr-defined]
    assert report.bytesSent > 1000  # type: ignore[attr-defined]

    async def rtt() -> list[float]:
        stats = await video._sender.getStats()  # type: ignore[union-attr]
        return [
            s.roundTripTime
            for s in stats.values()
            if s.type == "remote-inbound-rtp" and s.roundTripTime is not None
        ]

    deadline = time.monotonic() + 10
    while not await rtt():
        assert time.monotonic() < deadline, "no round-trip time from the viewer's reports"
        await asyncio.sleep(0.2)
    assert 0 <= (await rtt())[0] < 1.0
