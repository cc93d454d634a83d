"""One encoded frame from a publisher, and whether a decoder can start on it (keyframe)."""

from __future__ import annotations

from dataclasses import dataclass

# H.264 NAL unit types (ITU-T H.264 table 7-1).
_NAL_IDR = 5
_NAL_SPS = 7
_NAL_PPS = 8
_START_CODE = b"\x00\x00\x00\x01"
# A VP8 keyframe's uncompressed header: 3-byte frame tag, then this start code (RFC 6386 9.1).
_VP8_KEYFRAME_START_CODE = b"\x9d\x01\x2a"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A depacketized frame: a whole VP8 frame, an H.264 access unit in Annex B, or an Opus packet.

    ``timestamp`` counts in ``clock_rate`` (90 kHz for video, 48 kHz for Opus). ``keyframe`` means a
    fresh decoder can start here: a VP8 key frame, an H.264 access unit with an IDR slice, and every
    audio frame (Opus packets decode independently). ``parameter_sets`` is the H.264 access unit's
    SPS and PPS NAL units, with start codes, or ``b""``.
    """

    mime_type: str
    clock_rate: int
    data: bytes
    timestamp: int
    keyframe: bool
    parameter_sets: bytes = b""

    @classmethod
    def parse(cls, mime_type: str, clock_rate: int, data: bytes, timestamp: int) -> EncodedFrame:
        mime = mime_type.lower()
        if mime == "video/vp8":
            return cls(mime_type, clock_rate, data, timestamp, _vp8_is_keyframe(data))
        if mime == "video/h264":
            keyframe, parameter_sets = _h264_scan(data)
            return cls(mime_type, clock_rate, data, timestamp, keyframe, parameter_sets)
        if mime.startswith("audio/"):
            return cls(mime_type, clock_rate, data, timestamp, True)
        # An unknown video codec: never claim a keyframe, so viewers are never started mid-GOP.
        return cls(mime_type, clock_rate, data, timestamp, False)

    def with_parameter_sets(self, parameter_sets: bytes) -> EncodedFrame:
        """This H.264 keyframe with ``parameter_sets`` in front, if it lacks its own.

        Some encoders send SPS/PPS only once, or only out of band; a viewer that starts on a later
        IDR could not decode it without them. Any other frame (VP8, Opus, ...) is returned as it
        is: H.264 parameter sets in front of it would make it undecodable.
        """
        if (
            self.mime_type.lower() != "video/h264"
            or not self.keyframe
            or self.parameter_sets
            or not parameter_sets
        ):
            return self
        return EncodedFrame(
            self.mime_type,
            self.clock_rate,
            parameter_sets + self.data,
            self.timestamp,
            True,
            parameter_sets,
        )


def _vp8_is_keyframe(data: bytes) -> bool:
    # Frame tag bit 0 is the inverse key-frame flag (0 = key frame).
    return len(data) >= 6 and not data[0] & 0x01 and data[3:6] == _VP8_KEYFRAME_START_CODE


def _h264_scan(data: bytes) -> tuple[bool, bytes]:
    """(has an IDR slice, its SPS and PPS NAL units each with a 4-byte start code)."""
    idr = False
    parameter_sets: list[bytes] = []
    # aiortc's depayloader emits Annex B; emulation prevention guarantees 00 00 01 only ever
    # starts a NAL unit.
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        header = start + 3
        end = data.find(b"\x00\x00\x01", header)
        nal_type = data[header] & 0x1F
        if nal_type == _NAL_IDR:
            idr = True
        elif nal_type in (_NAL_SPS, _NAL_PPS):
            stop = len(data) if end == -1 else end
            while stop > header and data[stop - 1] == 0:  # a 4-byte start code's leading zero
                stop -= 1
            parameter_sets.append(_START_CODE + data[header:stop])
        start = end
    return idr, b"".join(parameter_sets)
