"""The one place that reaches into pylibsrtp: protecting a frame's RTP packets in place.

``pylibsrtp.Session.protect(packet)`` takes a whole packet as ``bytes``: the relay would build
each packet (header + body) only for it to be copied into the session's C buffer, then allocate
a length cell, check the arguments and copy the result out as new ``bytes``. For hundreds of
viewers, a few packets each per frame, that is a fair part of the relay's work per packet. Here
a frame's packets are built one after another in one C buffer (header written in place, body
copied after it) and each protected where it lies by libsrtp's ``srtp_protect`` on the
session's own context (``Session._srtp``, through pylibsrtp's compiled ``_binding``), with one
reused length cell: the same C call ``Session.protect`` makes, on the same session and stream
state, so the packets are the same bytes; they are sent from there (a run of equal-sized ones
in one GSO send) without being copied out. Everything runs on the event loop's thread, as
aiortc's own uses of the session do, so nothing else touches the buffer meanwhile.

``check()`` runs before the first use (and at start-up, through ``media.rtc.sessions``) and
refuses versions this was not checked against (:data:`CHECKED_VERSION`).
"""

from __future__ import annotations

import functools
import struct
from importlib.metadata import version
from typing import Any

import pylibsrtp

CHECKED_VERSION = "1.0."  # pylibsrtp
# libsrtp appends at most this many bytes to an RTP packet (pylibsrtp's SRTP_MAX_TRAILER_LEN).
_TRAILER = 16 + 128
_HEADER = struct.Struct("!BBHII")
# The longest RTP packet protected: what pylibsrtp's Session.protect takes (its 1,500-byte
# buffer, less the longest trailer).
MAX_PACKET = 1500 - _TRAILER


class PylibsrtpIncompatible(RuntimeError):
    """The installed pylibsrtp is not the one this seam was checked against."""


def check() -> None:
    """Raise :class:`PylibsrtpIncompatible` unless pylibsrtp is as this module expects."""
    problems = []
    installed = version("pylibsrtp")
    if not installed.startswith(CHECKED_VERSION):
        problems.append(f"pylibsrtp {installed} is not {CHECKED_VERSION}x")
    try:
        from pylibsrtp._binding import ffi, lib

        session = pylibsrtp.Session()
        if not callable(getattr(lib, "srtp_protect", None)):
            problems.append("pylibsrtp._binding.lib.srtp_protect is missing")
        if len(session._cdata) != 1500:
            problems.append("Session.protect no longer takes packets of up to 1,500 bytes")
        if ffi.typeof(session._srtp) != ffi.typeof("srtp_t *"):
            problems.append("Session._srtp is not an srtp_t *")
    except (ImportError, AttributeError, TypeError) as exc:
        problems.append(f"pylibsrtp's session internals changed ({exc})")
    if problems:
        raise PylibsrtpIncompatible(
            "livecommerce.media relies on pylibsrtp internals that changed: " + "; ".join(problems)
        )


@functools.cache
def _check_once() -> None:
    check()


class _Scratch:
    """Where a frame's packets are protected, end to end: one C buffer for the whole process
    (every sender runs on the event loop's thread, one frame at a time), grown as needed."""

    def __init__(self) -> None:
        self.size = 0
        self.cdata: Any = None
        self.buffer: Any = None
        self.view = memoryview(b"")

    def fit(self, size: int) -> None:
        if size > self.size:
            from pylibsrtp._binding import ffi

            self.size = max(size, 2 * self.size, 256 * 1024)
            self.cdata = ffi.new("char[]", self.size)
            self.buffer = ffi.buffer(self.cdata)
            self.view = memoryview(self.buffer)


_scratch = _Scratch()


class FrameProtector:
    """Protects one frame's RTP packets at a time for one outgoing SRTP session
    (``pylibsrtp.Session``): each built from its header fields and body and protected in
    place, one after another in a scratch buffer, ready to be sent from there."""

    __slots__ = ("_length", "_protect", "_srtp")

    def __init__(self, session: pylibsrtp.Session) -> None:
        _check_once()
        from pylibsrtp._binding import ffi, lib

        self._srtp: Any = session._srtp[0]
        self._length: Any = ffi.new("int *")
        self._protect = lib.srtp_protect

    def frame(
        self,
        first: int,
        payload_type: int,
        sequence: int,
        timestamp: int,
        ssrc: int,
        bodies: list[bytes],
    ) -> tuple[memoryview, list[int]]:
        """One frame's packets, protected: headers ``first`` (version, extension bit),
        ``payload_type`` (the marker bit set on the last), sequence numbers from ``sequence``
        (wrapping at 16 bits), ``timestamp`` and ``ssrc``; then each body (extension block and
        payload). Returns a view of the packets laid end to end and where each starts (and,
        last, where the last ends). The view is good until the next call of any protector."""
        scratch = _scratch
        scratch.fit(sum(map(len, bodies)) + len(bodies) * (12 + _TRAILER))
        buffer, cdata, length, srtp, protect = (
            scratch.buffer,
            scratch.cdata,
            self._length,
            self._srtp,
            self._protect,
        )
        pack_into, last, offset, offsets = _HEADER.pack_into, len(bodies) - 1, 0, [0]
        for i, body in enumerate(bodies):
            size = 12 + len(body)
            if size > MAX_PACKET:
                raise ValueError("RTP packet too long to protect")
            marker = 0x80 if i == last else 0
            pack_into(
                buffer,
                offset,
                first,
                payload_type | marker,
                (sequence + i) & 0xFFFF,
                timestamp,
                ssrc,
            )
            buffer[offset + 12 : offset + size] = body
            length[0] = size
            status = protect(srtp, cdata + offset, length)
            if status:
                raise pylibsrtp.Error(f"srtp_protect failed ({status})")
            offset += length[0]
            offsets.append(offset)
        return scratch.view, offsets
