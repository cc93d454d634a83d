"""Sending a relay's frames to viewers: packetized once, then protected and sent per viewer.

aiortc's own sender would, for every viewer, read the frame from a track, packetize it, build
and serialise an ``RtpPacket`` per packet, read the clock per packet, protect it and hand it to
asyncio, one packet at a time. Here each frame is packetized once (aiortc's packer, as its sender
would), its packets' bodies (header extensions and payload) are built once per header-extension
layout, and each viewer only gets its own 12-byte RTP header (SSRC, sequence number, timestamp
origin, payload type), SRTP protection and one ``sendmsg`` per frame: with UDP GSO
(``UDP_SEGMENT``) where the kernel takes it, every run of equal-sized packets (all of a VP8
frame's but its last are) goes down in one system call.

What aiortc's sender did that viewers need is kept: sender reports (SR and SDES, about once a
second, sent for every viewer by one task on each viewer's own socket instead of a task per
sender in aiortc), a viewer's NACK is answered from the packets it was sent (RTX when
negotiated), PLI/FIR reach the relay's merged keyframe requests, and a viewer whose REMB stays
far below the stream's bit rate gets keyframes only until it recovers.

All reaching into aiortc goes through :mod:`~livecommerce.media.rtc.aiortcseam`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any, cast

import av
from aiortc import MediaStreamTrack, RTCRtpCodecParameters, RTCRtpSender
from aiortc import clock as aiortc_clock
from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtcpSdesPacket, RtcpSourceInfo

from livecommerce.media.rtc import aiortcseam, srtpseam

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")
_SEQUENCE = struct.Struct("!H")
_SEGMENT_SIZE = struct.Struct("=H")
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # Linux >= 4.18 (include/uapi/linux/udp.h)
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 60_000
_GSO_UNSUPPORTED = (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP)
_CONGESTED = (errno.EAGAIN, errno.ENOBUFS, errno.EWOULDBLOCK)

REPORT_INTERVAL_S = 1.0
"""How often each viewer gets an RTCP sender report (as aiortc's sender, on average)."""
_SENDER_REPORT = struct.Struct("!BBHIIIIII")  # RFC 3550 6.4.1, no report blocks
_RTCP_SR = 200
HISTORY_FRAMES = 128
"""Frames a viewer can still have retransmitted (NACK): about 4 s of 30 fps video."""
CATCH_UP_FRAMES = 60
"""A viewer starts on the first keyframe that came after it asked to join: if that came while it
was connecting, up to this many frames from there are kept to be sent at once when it connects
(after that many, it waits for the next keyframe, as it does if none came yet)."""
CATCH_UP_AUDIO = 10
"""A joining viewer's audio starts this many frames back (200 ms of Opus): its jitter buffer
fills at once."""
LOW_BITRATE_FRACTION = 0.4
"""A viewer whose REMB is below this fraction of the stream's video bit rate ..."""
LOW_BITRATE_FOR_S = 3.0
"""... for this long gets keyframes only, until its REMB is back above this fraction:"""
RECOVERED_FRACTION = 0.8

_gso = True
"""Whether the kernel takes UDP_SEGMENT; turned off, process-wide, at the first refusal."""


class Packetizer:
    """One codec's frames as RTP payloads, once for every viewer (aiortc's packer)."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.codec = codec
        self._time_base = Fraction(1, codec.clockRate)
        self._encoder = get_encoder(codec)

    def packetize(self, data: bytes, timestamp: int) -> list[bytes]:
        packet = av.Packet(data)
        packet.pts = timestamp
        packet.time_base = self._time_base
        payloads, _ = self._encoder.pack(packet)
        return payloads


class HeaderLayout:
    """The RTP header extensions of a group of viewers: the same IDs and the same MID.

    Viewers negotiated their own extension IDs (and MIDs) in their offers; those with the same
    share their packets' bodies.
    """

    def __init__(self, number: int, extensions: HeaderExtensionsMap, mid: str | None) -> None:
        self.number = number
        self._extensions = extensions
        self._mid = mid

    def block(self, abs_send_time: int) -> bytes:
        """The header extension block (RFC 8285), empty if none was negotiated."""
        values = HeaderExtensions(mid=self._mid, abs_send_time=abs_send_time)
        profile, value = self._extensions.set(values)
        if not value:
            return b""
        return _EXTENSION_HEADER.pack(profile, len(value) >> 2) + value

    def key(self) -> bytes:
        return self.block(0)


class OutFrame:
    """One frame packetized for every viewer; bodies are built per header layout on first use."""

    __slots__ = ("_by", "arrived", "keyframe", "ntp", "octets", "payloads", "serial", "timestamp")

    def __init__(self, serial: int, keyframe: bool, timestamp: int, payloads: list[bytes]) -> None:
        self.serial = serial
        self.keyframe = keyframe
        self.timestamp = timestamp
        self.payloads = payloads
        self.ntp = aiortc_clock.current_ntp_time()
        self.octets = sum(map(len, payloads))
        self.arrived = time.perf_counter()
        self._by: dict[int, tuple[bytes, list[bytes], list[tuple[int, int]]]] = {}

    def prepared(self, layout: HeaderLayout) -> tuple[bytes, list[bytes], list[tuple[int, int]]]:
        """(extension block, packet bodies after the 12-byte header, GSO runs) for ``layout``.

        A run ``(start, end)`` is packets that may go in one GSO send: all of the same size but
        the last, which is no larger.
        """
        found = self._by.get(layout.number)
        if found is None:
            block = layout.block((self.ntp >> 14) & 0xFFFFFF)
            bodies = [block + payload for payload in self.payloads] if block else self.payloads
            found = self._by[layout.number] = (block, bodies, _runs(list(map(len, bodies))))
        return found


def _runs(sizes: list[int]) -> list[tuple[int, int]]:
    runs = []
    start, count = 0, len(sizes)
    while start < count:
        size, end = sizes[start], start + 1
        limit = min(count, start + GSO_MAX_SEGMENTS, start + GSO_MAX_BYTES // max(size, 1))
        while end < limit and sizes[end] == size:
            end += 1
        if end < limit and sizes[end] < size:
            end += 1
        runs.append((start, end))
        start = end
    return runs


class _IdleTrack(MediaStreamTrack):
    """What the viewer's RTCRtpSender reads: never a frame (the relay sends past it).

    Its first ``recv()`` means the sender started (connected, parameters known); it then waits
    until the viewer ends and raises, which ends aiortc's sender loop as a track's end would.
    """

    def __init__(self, kind: str, on_start: Callable[[], None], on_stop: Callable[[], None]):
        super().__init__()
        self.kind = kind
        self._on_start: Callable[[], None] | None = on_start
        self._on_stop: Callable[[], None] | None = on_stop
        self._ended = asyncio.Event()

    async def recv(self) -> av.Packet[Any]:
        on_start, self._on_start = self._on_start, None
        if on_start is not None:
            on_start()
        await self._ended.wait()
        raise MediaStreamError

    def end(self) -> None:
        self._ended.set()

    def stop(self) -> None:
        super().stop()
        self._ended.set()
        on_stop, self._on_stop = self._on_stop, None
        if on_stop is not None:
            on_stop()


class LeanViewer:
    """One viewer's audio or video: frames are sent to it from the relay's fan-out."""

    def __init__(
        self,
        kind: str,
        mime_type: str,
        payload_type: int,
        fanout: FanOut,
    ) -> None:
        self.kind = kind
        self.mime_type = mime_type
        self.track = _IdleTrack(kind, self._start, self._stopped)
        self.sent_frames = 0
        self.sent_packets = 0
        self.retransmitted = 0
        self.dropped_frames = 0
        self.keyframes_only = False
        self.joined = 0
        """The fan-out's last frame when the viewer was added."""
        self.bitrate_estimate: int | None = None
        self._fanout = fanout
        self._pt = payload_type
        self._sender: RTCRtpSender | None = None
        self._live = False
        self._waiting = True
        self._last_serial = -1
        self._low_since: float | None = None
        self._octets = 0
        self._seq = random.getrandbits(16)
        self._ts_origin = random.getrandbits(32)
        self._rtx_seq = random.getrandbits(16)
        self._history: deque[tuple[int, OutFrame]] = deque(maxlen=HISTORY_FRAMES)
        self._sock: socket.socket | None = None
        self._frames: srtpseam.FrameProtector | None = None
        self._ssrc = 0
        self._address: tuple[Any, ...] = ()
        self._path: aiortcseam.SendPath | None = None
        self._layout: HeaderLayout | None = None
        self._sdes = b""
        self._last_sent: tuple[int, int] | None = None
        """(NTP time, RTP timestamp) of the last frame sent: what a sender report maps."""

    @property
    def live(self) -> bool:
        """Whether frames are being sent to it (connected, not ended)."""
        return self._live

    def attach(self, sender: RTCRtpSender) -> None:
        """Send through ``sender``'s connection; its NACKs, PLIs and REMBs come here."""
        self._sender = sender
        sender.replaceTrack(self.track)
        aiortcseam.take_sender_reports(sender)
        aiortcseam.on_retransmit(sender, self.retransmit)
        if self.kind == "video":
            aiortcseam.on_keyframe_request(sender, self._fanout.request_keyframe)
            aiortcseam.on_bitrate_estimate(sender, self.bitrate_estimated)

    def end(self) -> None:
        """No more frames: the viewer's sender stops (its session closes)."""
        self._close_socket()
        self.track.end()

    def restart(self) -> None:
        """Take nothing more until a keyframe (a new publisher)."""
        self._waiting = True

    def _start(self) -> None:
        sender = self._sender
        path = aiortcseam.send_path(sender) if sender is not None else None
        if path is None:
            logger.warning("a viewer's sender started without a usable transport; ending it")
            self.end()
            return
        self._path = path
        self._sock = path.sock
        self._frames = srtpseam.FrameProtector(path.srtp)
        self._ssrc = path.ssrc
        self._address = path.address
        self._layout = self._fanout.layout(path.extensions, path.mid)
        if path.cname is not None:
            chunk = RtcpSourceInfo(ssrc=path.ssrc, items=[(1, path.cname.encode())])
            self._sdes = bytes(RtcpSdesPacket(chunks=[chunk]))
        self._live = True
        self._fanout.started(self)

    def _stopped(self) -> None:
        self._close_socket()
        self._fanout.remove(self)

    def _close_socket(self) -> None:
        self._live = False
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def send(self, frame: OutFrame) -> None:
        """Send ``frame`` (once: a frame already sent, or older, is ignored)."""
        if frame.serial <= self._last_serial or not self._live:
            return
        self._last_serial = frame.serial
        if self._waiting:
            if not frame.keyframe:
                return
            self._waiting = False
        elif self.keyframes_only and not frame.keyframe:
            return
        block, bodies, runs = frame.prepared(self._layout)  # type: ignore[arg-type]  # live
        seq = self._seq
        timestamp = (frame.timestamp + self._ts_origin) & 0xFFFFFFFF
        first = 0x90 if block else 0x80
        frames = cast(srtpseam.FrameProtector, self._frames)  # set while live
        view, offsets = frames.frame(first, self._pt, seq, timestamp, self._ssrc, bodies)
        last = len(bodies) - 1
        if not self._transmit(view, offsets, runs):
            return
        self._seq = (seq + last + 1) & 0xFFFF
        self._history.append((seq, frame))
        self.sent_frames += 1
        self.sent_packets += last + 1
        self._octets += frame.octets
        self._last_sent = (frame.ntp, timestamp)

    def report(self) -> None:
        """Send an RTCP sender report (and SDES CNAME): the last frame's NTP time and RTP
        timestamp (any recent pair of one frame maps the clocks), packets and octets so far."""
        path, last = self._path, self._last_sent
        if not self._live or path is None or last is None or self._sock is None:
            return
        ntp, timestamp = last
        report = _SENDER_REPORT.pack(
            0x80,
            _RTCP_SR,
            6,
            path.ssrc,
            ntp >> 32,
            ntp & 0xFFFFFFFF,
            timestamp,
            self.sent_packets & 0xFFFFFFFF,
            self._octets & 0xFFFFFFFF,
        )
        try:
            self._sock.sendto(path.protect_rtcp(report + self._sdes), path.address)
        except OSError:
            return  # the next one may go; RTP sending notices a dead socket
        aiortcseam.report_sent(self._sender, ntp)  # type: ignore[arg-type]  # attached

    def _transmit(self, view: memoryview, offsets: list[int], runs: list[tuple[int, int]]) -> bool:
        """Send the packets laid end to end in ``view`` (packet ``i`` from ``offsets[i]`` to
        ``offsets[i + 1]``): each run of equal-sized ones in one GSO send."""
        global _gso
        sock, address = self._sock, self._address
        if sock is None:
            return False
        count = len(offsets) - 1
        try:
            if count == 1:
                sock.sendto(view[: offsets[1]], address)
            elif _gso:
                for start, end in runs:
                    head, tail = offsets[start], offsets[end]
                    if end - start == 1:
                        sock.sendto(view[head:tail], address)
                    else:
                        size = _SEGMENT_SIZE.pack(offsets[start + 1] - head)
                        sock.sendmsg([view[head:tail]], [(SOL_UDP, UDP_SEGMENT, size)], 0, address)
            else:
                for i in range(count):
                    sock.sendto(view[offsets[i] : offsets[i + 1]], address)
        except OSError as exc:
            if _gso and count > 1 and exc.errno in _GSO_UNSUPPORTED:
                _gso = False
                logger.info("UDP GSO refused (%s): sending one datagram at a time", exc)
                return self._transmit(view, offsets, runs)
            # Congested (send buffer full) or gone: this frame is lost for this viewer, who
            # restarts on the next keyframe rather than on a frame it cannot decode.
            self.dropped_frames += 1
            self._waiting = self.kind == "video"
            if exc.errno not in _CONGESTED:
                logger.info("sending to a viewer failed: %s", exc)
            if self.kind == "video":
                self._fanout.request_keyframe()
            return False
        return True

    def catch_up(self, frames: list[OutFrame]) -> None:
        for frame in frames:
            self.send(frame)

    def retransmit(self, sequence_number: int) -> None:
        """A viewer's NACK: send that packet again, if it is still known (RTX if negotiated)."""
        path, layout = self._path, self._layout
        if path is None or layout is None or self._sock is None:
            return
        for start, frame in reversed(self._history):
            offset = (sequence_number - start) & 0xFFFF
            if offset < len(frame.payloads):
                break
        else:
            return
        block, bodies, _ = frame.prepared(layout)
        first = 0x90 if block else 0x80
        marker = 0x80 if offset == len(bodies) - 1 else 0
        timestamp = (frame.timestamp + self._ts_origin) & 0xFFFFFFFF
        if path.rtx_payload_type is not None:
            header = _HEADER.pack(
                first, path.rtx_payload_type | marker, self._rtx_seq, timestamp, path.rtx_ssrc
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            packet = header + block + _SEQUENCE.pack(sequence_number) + frame.payloads[offset]
        else:
            header = _HEADER.pack(first, self._pt | marker, sequence_number, timestamp, path.ssrc)
            packet = header + bodies[offset]
        try:
            self._sock.sendto(path.protect(packet), path.address)
        except OSError:
            return
        self.retransmitted += 1

    def bitrate_estimated(self, bitrate: int) -> None:
        """A viewer's REMB: below the stream's bit rate for long, it gets keyframes only."""
        self.bitrate_estimate = bitrate
        stream = self._fanout.video_bitrate()
        if stream <= 0:
            return
        now = time.monotonic()
        if bitrate < LOW_BITRATE_FRACTION * stream:
            if self._low_since is None:
                self._low_since = now
            elif not self.keyframes_only and now - self._low_since >= LOW_BITRATE_FOR_S:
                logger.info("a viewer cannot keep up (REMB %d bit/s): keyframes only", bitrate)
                self.keyframes_only = True
        elif bitrate >= RECOVERED_FRACTION * stream:
            self._low_since = None
            if self.keyframes_only:
                self.keyframes_only = False
                self._waiting = True  # resume on a keyframe


class FanOut:
    """A relay's frames to its lean viewers: packetized once, sent in bounded slices.

    Frames are queued and sent by one task that yields to the event loop every
    ``slice_s`` seconds of sending (between viewers of a frame too), so that a keyframe for
    hundreds of viewers never holds up the publisher's ICE, DTLS and RTCP for long.
    """

    def __init__(
        self,
        request_keyframe: Callable[[], None],
        load: SendLoad,
        *,
        slice_s: float = 0.004,
        backlog: int = 240,
    ) -> None:
        self.request_keyframe = request_keyframe
        self.load = load
        self.slice_s = slice_s
        self.backlog = backlog
        self._viewers: dict[str, list[LeanViewer]] = {"audio": [], "video": []}
        self._packetizers: dict[str, Packetizer] = {}
        self._layouts: dict[bytes, HeaderLayout] = {}
        self._outbox: deque[tuple[str, OutFrame]] = deque()
        self._gop: list[OutFrame] = []
        self._recent_audio: deque[OutFrame] = deque(maxlen=CATCH_UP_AUDIO)
        self._serial = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._video_bytes = 0.0
        self._video_rate = 0.0
        self._rate_since = time.monotonic()
        self._closed = False

    def viewers(self, kind: str) -> list[LeanViewer]:
        return list(self._viewers[kind])

    def count(self) -> int:
        return sum(map(len, self._viewers.values()))

    def add(self, viewer: LeanViewer) -> None:
        viewer.joined = self._serial
        self._viewers[viewer.kind] = [*self._viewers[viewer.kind], viewer]

    def remove(self, viewer: LeanViewer) -> None:
        viewers = self._viewers[viewer.kind]
        if viewer in viewers:
            self._viewers[viewer.kind] = [v for v in viewers if v is not viewer]

    def layout(self, extensions: HeaderExtensionsMap, mid: str | None) -> HeaderLayout:
        candidate = HeaderLayout(len(self._layouts), extensions, mid)
        return self._layouts.setdefault(candidate.key(), candidate)

    def started(self, viewer: LeanViewer) -> None:
        """``viewer`` connected: start it on the last keyframe if recent, else on the next."""
        if self._reporter is None and not self._closed:
            self._reporter = asyncio.get_running_loop().create_task(
                self._report(), name="sender reports"
            )
        if viewer.kind != "video":
            viewer.catch_up(list(self._recent_audio))
            return
        gop = self._gop
        if gop and gop[0].serial > viewer.joined and len(gop) <= CATCH_UP_FRAMES:
            viewer.catch_up(list(gop))
        else:
            self.request_keyframe()

    def video_bitrate(self) -> float:
        """The publisher's video bit rate lately, bit/s."""
        return self._video_rate

    def push(
        self, kind: str, codec: RTCRtpCodecParameters, data: bytes, timestamp: int, keyframe: bool
    ) -> None:
        packetizer = self._packetizers.get(kind)
        if packetizer is None or packetizer.codec is not codec:
            packetizer = self._packetizers[kind] = Packetizer(codec)
        self._serial += 1
        frame = OutFrame(self._serial, keyframe, timestamp, packetizer.packetize(data, timestamp))
        if kind == "video":
            self._measure(len(data))
            if keyframe:
                self._gop = [frame]
            elif self._gop and len(self._gop) <= CATCH_UP_FRAMES:
                self._gop.append(frame)
            else:
                self._gop = []
        else:
            self._recent_audio.append(frame)
        if not self._viewers[kind] or self._closed:
            return
        if len(self._outbox) >= self.backlog:
            self._overflow()
        self._outbox.append((kind, frame))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump(), name="fan-out")
        self._wake.set()

    def restart(self) -> None:
        """A new publisher: every viewer waits for its first keyframe."""
        self._gop = []
        self._recent_audio.clear()
        for viewers in self._viewers.values():
            for viewer in viewers:
                viewer.restart()

    def end(self, kind: str, mime_type: str | None = None) -> None:
        """End ``kind``'s viewers (those not on ``mime_type``, if given)."""
        for viewer in self._viewers[kind]:
            if mime_type is None or viewer.mime_type.lower() != mime_type.lower():
                viewer.end()
                self.remove(viewer)

    def close(self) -> None:
        self._closed = True
        for kind in self._viewers:
            self.end(kind)
        self._outbox.clear()
        for task in (self._task, self._reporter):
            if task is not None:
                task.cancel()

    async def wait_closed(self) -> None:
        tasks = [task for task in (self._task, self._reporter) if task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _measure(self, size: int) -> None:
        self._video_bytes += size
        now = time.monotonic()
        elapsed = now - self._rate_since
        if elapsed >= 1.0:
            rate = self._video_bytes * 8 / elapsed
            self._video_rate = rate if self._video_rate == 0 else 0.5 * (self._video_rate + rate)
            self._video_bytes, self._rate_since = 0.0, now

    def _overflow(self) -> None:
        # Sending fell far behind (the process starved of CPU): drop the queued video up to the
        # newest queued keyframe, where viewers resume; without one, drop it all and restart
        # them on the next keyframe (asked for, at most every keyframe interval). A keyframe is
        # a dozen delta frames' work: forcing one per overflow would only dig deeper.
        self.load.overflows += 1
        frames = list(self._outbox)
        newest_key = max(
            (i for i, (kind, frame) in enumerate(frames) if kind == "video" and frame.keyframe),
            default=-1,
        )
        first_video = next((i for i, (kind, _f) in enumerate(frames) if kind == "video"), -1)
        if newest_key <= first_video:
            newest_key = -1  # none after the head: skipping to it would free nothing
        keep_from = newest_key if newest_key >= 0 else len(frames)
        self._outbox = deque(
            item for i, item in enumerate(frames) if item[0] != "video" or i >= keep_from
        )
        for viewer in self._viewers["video"]:
            viewer.restart()
        if newest_key < 0:
            self.request_keyframe()

    async def _report(self) -> None:
        """Every viewer's sender reports, about once a second, all in one pass."""
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S * (0.75 + random.random() / 2))
            for viewers in self._viewers.values():
                for viewer in viewers:
                    viewer.report()

    async def _pump(self) -> None:
        perf_counter, outbox, load = time.perf_counter, self._outbox, self.load
        while True:
            if not self._outbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            outbox = self._outbox
            kind, frame = outbox.popleft()
            began = perf_counter()
            slice_end = began + self.slice_s
            work = 0.0
            for viewer in self._viewers[kind]:
                viewer.send(frame)
                now = perf_counter()
                if now > slice_end:
                    work += now - began
                    await asyncio.sleep(0)  # the publisher (and everything else) comes first
                    began = perf_counter()
                    slice_end = began + self.slice_s
            now = perf_counter()
            load.frame_sent(kind, work + now - began, now - frame.arrived)


class SendLoad:
    """How busy sending to viewers keeps this process: for admitting viewers, or not.

    Fed by every relay's fan-out. One more viewer is refused (:meth:`refusal`) at the hard cap
    ``max_viewers`` (0: none), while frames reach the viewers more than ``lag_s`` after they
    arrived (on average, lately), or when the process's CPU, scaled by one more viewer, would
    exceed ``target`` cores: a single event loop cannot use more than one.
    """

    def __init__(self, max_viewers: int = 0, *, target: float = 0.9, lag_s: float = 0.25):
        self.max_viewers = max_viewers
        self.target = target
        self.lag_s = lag_s
        self.overflows = 0
        self.frames = 0
        self.work_s = 0.0
        self.lag = 0.0
        """Recent time from a video frame's arrival to its last viewer's send (EWMA), s."""
        self._cpu = 0.0
        self._cpu_at = time.monotonic()
        self._cpu_then = time.process_time()

    def frame_sent(self, kind: str, work_s: float, lag_s: float) -> None:
        self.frames += 1
        self.work_s += work_s
        if kind == "video":
            self.lag = 0.9 * self.lag + 0.1 * lag_s
            self._sample_cpu()

    def cpu(self) -> float:
        """The process's recent CPU use, in cores (EWMA over about a second)."""
        self._sample_cpu()
        return self._cpu

    def _sample_cpu(self) -> None:
        now = time.monotonic()
        elapsed = now - self._cpu_at
        if elapsed < 0.25:
            return
        cpu = time.process_time()
        use = (cpu - self._cpu_then) / elapsed
        self._cpu = 0.5 * self._cpu + 0.5 * use
        self._cpu_at, self._cpu_then = now, cpu

    def refusal(self, viewers: int, live: int | None = None) -> str | None:
        """Why a viewer beyond ``viewers`` (this process's now, ``live`` of them being sent
        to already, the others connecting) could not be taken without slowing the others
        down; ``None`` if it can."""
        if self.max_viewers and viewers >= self.max_viewers:
            return f"this process serves its maximum of {self.max_viewers} viewers"
        if self.lag > self.lag_s:
            return f"frames reach this process's viewers {self.lag * 1000:.0f} ms late"
        cpu = self.cpu()
        live = viewers if live is None else live
        # The CPU is what the live viewers cost: those connecting will cost as much.
        if live >= 8 and cpu * (viewers + 1) / live > self.target:
            return f"this process's CPU is {cpu:.0%} busy with its viewers"
        return None
