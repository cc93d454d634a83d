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

This module is one viewer's side (``LeanViewer``); the frames it is handed are ``outframes``'
(packetized once for everyone), sent to every viewer of a relay by ``fanout.FanOut``, whose
load ``sendload.SendLoad`` weighs when one more viewer asks to join.

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
from typing import TYPE_CHECKING, Any, cast

import av
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtcpSdesPacket, RtcpSourceInfo

from livecommerce.media.rtc import aiortcseam, srtpseam
from livecommerce.media.rtc.outframes import HeaderLayout, OutFrame

if TYPE_CHECKING:
    from livecommerce.media.rtc.fanout import FanOut

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHII")
_SEQUENCE = struct.Struct("!H")
_SEGMENT_SIZE = struct.Struct("=H")
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # Linux >= 4.18 (include/uapi/linux/udp.h)
_GSO_UNSUPPORTED = (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP)
_CONGESTED = (errno.EAGAIN, errno.ENOBUFS, errno.EWOULDBLOCK)

_SENDER_REPORT = struct.Struct("!BBHIIIIII")  # RFC 3550 6.4.1, no report blocks
_RTCP_SR = 200
HISTORY_FRAMES = 128
"""Frames a viewer can still have retransmitted (NACK): about 4 s of 30 fps video."""
LOW_BITRATE_FRACTION = 0.4
"""A viewer whose REMB is below this fraction of the stream's video bit rate ..."""
LOW_BITRATE_FOR_S = 3.0
"""... for this long gets keyframes only, until its REMB is back above this fraction:"""
RECOVERED_FRACTION = 0.8

_gso = True
"""Whether the kernel takes UDP_SEGMENT; turned off, process-wide, at the first refusal."""


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
