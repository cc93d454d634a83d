"""A relay's frames to its lean viewers (``leansender.LeanViewer``): queued, packetized once
(``outframes``), and sent by one task in bounded slices; a joining viewer starts on the last
keyframe if it is recent (or asks for one), and every viewer gets its sender reports."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

from aiortc import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensionsMap

from livecommerce.media.rtc.leansender import LeanViewer
from livecommerce.media.rtc.outframes import HeaderLayout, OutFrame, Packetizer
from livecommerce.media.rtc.sendload import SendLoad

REPORT_INTERVAL_S = 1.0
"""How often each viewer gets an RTCP sender report (as aiortc's sender, on average)."""
CATCH_UP_FRAMES = 60
"""A viewer starts on the first keyframe that came after it asked to join: if that came while it
was connecting, up to this many frames from there are kept to be sent at once when it connects
(after that many, it waits for the next keyframe, as it does if none came yet)."""
CATCH_UP_AUDIO = 10
"""A joining viewer's audio starts this many frames back (200 ms of Opus): its jitter buffer
fills at once."""


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
