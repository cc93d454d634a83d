"""The SRTP seam protects a frame's packets exactly as pylibsrtp's own ``protect`` does."""

from __future__ import annotations

import os
import struct

import pylibsrtp
import pytest

from livecommerce.media.rtc import srtpseam

HEADER = struct.Struct("!BBHII")


def _pair() -> tuple[pylibsrtp.Session, pylibsrtp.Session, pylibsrtp.Session]:
    """Two sending sessions with the same key (ours and pylibsrtp's) and a receiving one."""
    key = os.urandom(30)
    profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80

    def session(ssrc_type: int) -> pylibsrtp.Session:
        policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=profile)
        policy.allow_repeat_tx = True
        return pylibsrtp.Session(policy=policy)

    return (
        session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
        session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
        session(pylibsrtp.Policy.SSRC_ANY_INBOUND),
    )


def test_a_frame_is_protected_byte_for_byte_as_pylibsrtp_protects_it() -> None:
    """Packets laid end to end in the scratch buffer, each the bytes ``Session.protect``
    gives for the same header and body (the sessions share a key and stream state)."""
    ours, theirs, receiver = _pair()
    protector = srtpseam.FrameProtector(ours)
    ssrc, timestamp = 0x1234ABCD, 0xFFFFFF00
    for frame in range(3):
        # a video frame of several packets (the last shorter), wrapping the sequence number
        bodies = [os.urandom(1200), os.urandom(1200), os.urandom(333)]
        first_seq = 0xFFFE + frame * 3
        view, offsets = protector.frame(0x80, 96, first_seq, timestamp + frame, ssrc, bodies)
        assert len(offsets) == 4 and offsets[0] == 0
        packets = [bytes(view[offsets[i] : offsets[i + 1]]) for i in range(3)]
        for i, (packet, body) in enumerate(zip(packets, bodies, strict=True)):
            marker = 0x80 if i == 2 else 0
            seq = (first_seq + i) & 0xFFFF
            plain = HEADER.pack(0x80, 96 | marker, seq, timestamp + frame, ssrc) + body
            assert packet == theirs.protect(plain)
            assert receiver.unprotect(packet) == plain
    # audio: one packet, marked
    view, offsets = protector.frame(0x80, 111, 7, 960, ssrc, [b"\x01" * 90])
    assert bytes(view[: offsets[1]]) == theirs.protect(
        HEADER.pack(0x80, 111 | 0x80, 7, 960, ssrc) + b"\x01" * 90
    )


def test_a_packet_too_long_is_refused() -> None:
    ours, _theirs, _receiver = _pair()
    with pytest.raises(ValueError, match="too long"):
        srtpseam.FrameProtector(ours).frame(0x80, 96, 1, 1, 1, [b"x" * 1400])


def test_the_seam_refuses_versions_it_was_not_checked_against(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    srtpseam.check()
    monkeypatch.setattr(srtpseam, "CHECKED_VERSION", "9.9.")
    with pytest.raises(srtpseam.PylibsrtpIncompatible, match=r"is not 9\.9\.x"):
        srtpseam.check()


def test_a_keyframe_larger_than_the_scratch_buffer_grows_it() -> None:
    ours, theirs, _receiver = _pair()
    bodies = [os.urandom(1300) for _ in range(300)]  # ~390 KB, past the first 256 KiB
    view, offsets = srtpseam.FrameProtector(ours).frame(0x80, 96, 1, 9, 5, bodies)
    assert len(view) >= offsets[-1] > 390_000
    for i in (0, 150, 299):
        marker = 0x80 if i == 299 else 0
        plain = HEADER.pack(0x80, 96 | marker, 1 + i, 9, 5) + bodies[i]
        assert bytes(view[offsets[i] : offsets[i + 1]]) == theirs.protect(plain)
