"""The one place that reaches into pylibsrtp: protecting a frame's RTP packets in place.

``pylibsrtp.Session.protect(packet)`` takes a whole packet as ``bytes``: the relay would build
each packet (header + body) only for it to be copied into the session's C buffer, then allocate
a length cell, check the arguments and copy the result out. For hundreds of viewers, a few
packets each per frame, that is a fair part of the relay's work per packet. Here the header is
written straight into the session's own C buffer (``Session._cdata``, 1,500 bytes, read through
``Session._buffer``), the body copied after it, and libsrtp's ``srtp_protect`` called on it
(``Session._srtp``, through pylibsrtp's compiled ``_binding``) with one reused length cell:
the same C call ``Session.protect`` makes, on the same session and stream state, so the
packets are the same bytes. Everything runs on the event loop's thread, as aiortc's own uses
of the session do, so nothing else touches the buffer between the calls.

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
        if ffi.typeof(session._cdata) != ffi.typeof("char[]") or len(session._cdata) < 1500:
            problems.append("Session._cdata is not a char[] of at least 1,500 bytes")
        if len(session._buffer) != len(session._cdata):
            problems.append("Session._buffer is not the buffer of Session._cdata")
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


class FrameProtector:
    """Protects RTP packets for one outgoing SRTP session (``pylibsrtp.Session``), each built
    from its header fields and body in the session's own C buffer."""

    __slots__ = ("_buffer", "_cdata", "_length", "_limit", "_protect", "_srtp")

    def __init__(self, session: pylibsrtp.Session) -> None:
        _check_once()
        from pylibsrtp._binding import ffi, lib

        self._srtp: Any = session._srtp[0]
        self._cdata: Any = session._cdata
        self._buffer: Any = session._buffer
        self._length: Any = ffi.new("int *")
        self._limit = len(session._cdata) - _TRAILER
        self._protect = lib.srtp_protect

    def packets(
        self,
        first: int,
        payload_type: int,
        sequence: int,
        timestamp: int,
        ssrc: int,
        bodies: list[bytes],
    ) -> list[bytes]:
        """One frame's packets, protected: headers ``first`` (version, extension bit),
        ``payload_type`` (the marker bit set on the last), sequence numbers from ``sequence``
        (wrapping at 16 bits), ``timestamp`` and ``ssrc``; then each body (extension block and
        payload)."""
        buffer, cdata, length, srtp, protect = (
            self._buffer,
            self._cdata,
            self._length,
            self._srtp,
            self._protect,
        )
        pack_into, last, out = _HEADER.pack_into, len(bodies) - 1, []
        for i, body in enumerate(bodies):
            end = 12 + len(body)
            if end > self._limit:
                raise ValueError("RTP packet too long to protect")
            marker = 0x80 if i == last else 0
            pack_into(
                buffer, 0, first, payload_type | marker, (sequence + i) & 0xFFFF, timestamp, ssrc
            )
            buffer[12:end] = body
            length[0] = end
            status = protect(srtp, cdata, length)
            if status:
                raise pylibsrtp.Error(f"srtp_protect failed ({status})")
            out.append(buffer[0 : length[0]])
        return out
