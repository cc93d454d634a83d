"""A synthetic camera whose frames show their own number as 16 black/white blocks, so that a
receiver that decodes them can read the numbers back: which frames arrived, in what order, and
(with the time each was made) how long from the camera to the decoded picture."""

from __future__ import annotations

import asyncio

from aiortc import VideoStreamTrack
from av import VideoFrame
from av.video.frame import PictureType

WIDTH, HEIGHT = 320, 240
BLOCK = 40  # 16 blocks of 40x40: two rows of eight, one bit each


def numbered_frame(number: int) -> VideoFrame:
    frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma = frame.planes[0]
    rows = []
    for block_row in range(2):
        row = bytearray()
        for column in range(8):
            bit = number >> (block_row * 8 + column) & 1
            row += bytes([235 if bit else 16]) * BLOCK
        rows.append(bytes(row).ljust(luma.line_size, b"\x80"))
    # Below the blocks, a bar that moves, so that the picture changes beyond the number.
    moving = (b"\x80" * ((number * 4) % (WIDTH - 40)) + b"\xff" * 40).ljust(luma.line_size, b"\x80")
    data = rows[0] * BLOCK + rows[1] * BLOCK + moving * (HEIGHT - 2 * BLOCK)
    luma.update(data)
    for chroma in frame.planes[1:]:
        chroma.update(b"\x80" * chroma.buffer_size)
    return frame


def read_number(frame: VideoFrame) -> int:
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    luma = frame.planes[0]
    data = bytes(luma)
    number = 0
    for bit in range(16):
        top = (bit // 8) * BLOCK + BLOCK // 2 - 4
        left = (bit % 8) * BLOCK + BLOCK // 2 - 4
        total = sum(
            sum(data[row * luma.line_size + left : row * luma.line_size + left + 8])
            for row in range(top, top + 8)
        )
        if total / 64 > 128:
            number |= 1 << bit
    return number


class NumberedCamera(VideoStreamTrack):
    """30 fps frames numbered from ``start``; a keyframe every ``keyframe_every`` frames if set,
    and on :meth:`keyframe_request` unless ``ignore_requests`` (like OBS)."""

    def __init__(self, start: int = 0, keyframe_every: int = 0, ignore_requests: bool = False):
        super().__init__()
        self.number = start
        self.keyframe_every = keyframe_every
        self.ignore_requests = ignore_requests
        self.requests = 0
        self.request_times: list[float] = []
        self._keyframe_wanted = False

    def keyframe_request(self) -> None:
        self.requests += 1
        self.request_times.append(asyncio.get_running_loop().time())
        if not self.ignore_requests:
            self._keyframe_wanted = True

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = numbered_frame(self.number)
        frame.pts, frame.time_base = pts, time_base
        periodic = self.keyframe_every and self.number % self.keyframe_every == 0
        if periodic or self._keyframe_wanted:
            # aiortc's VP8 encoder keeps a frame's picture type: I forces a keyframe.
            frame.pict_type = PictureType.I
            self._keyframe_wanted = False
        self.number += 1
        return frame
