"""A relay's frames as they go to viewers: packetized once, their packets' bodies built once
per header-extension layout (viewers who negotiated the same extension IDs and MID share
them), and the runs of equal-sized packets that may go down in one GSO send.

All reaching into aiortc goes through :mod:`~livecommerce.media.rtc.aiortcseam`; this module
uses aiortc's public packer (``aiortc.codecs``) and header extensions only.
"""

from __future__ import annotations

import struct
import time
from fractions import Fraction

import av
from aiortc import RTCRtpCodecParameters
from aiortc import clock as aiortc_clock
from aiortc.codecs import get_encoder
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap

_EXTENSION_HEADER = struct.Struct("!HH")
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 60_000


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
            found = self._by[layout.number] = (block, bodies, runs(list(map(len, bodies))))
        return found


def runs(sizes: list[int]) -> list[tuple[int, int]]:
    """Where a frame's packets of ``sizes`` split into GSO sends (``OutFrame.prepared``)."""
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
