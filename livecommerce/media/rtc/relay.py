"""One live stream's relay: a publisher's encoded audio and video, fanned out to viewers' tracks."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from fractions import Fraction

import av
from aiortc import RTCRtpCodecParameters

from livecommerce.media.rtc.encodedframe import EncodedFrame
from livecommerce.media.rtc.fanout import FanOut
from livecommerce.media.rtc.keyframerequester import KeyframeRequester
from livecommerce.media.rtc.leansender import LeanViewer
from livecommerce.media.rtc.relaytrack import RelayTrack
from livecommerce.media.rtc.sendload import SendLoad
from livecommerce.media.rtc.viewerqueue import Pushed

logger = logging.getLogger(__name__)

KINDS = ("audio", "video")


class StreamNotLive(LookupError):
    """No publisher has sent this stream yet, so there is no codec to offer a viewer."""


class Ingest:
    """A publisher's hold on a relay: frames pushed through it reach viewers until it detaches.

    A newer publisher replaces it (a reconnecting encoder must not be locked out by its own stale
    connection); from then on its frames are ignored.
    """

    def __init__(self, relay: StreamRelay, request_keyframe: Callable[[], Awaitable[None]]) -> None:
        self._relay = relay
        self.request_keyframe = request_keyframe

    @property
    def attached(self) -> bool:
        return self._relay.publisher is self

    def push(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        """One depacketized frame, with aiortc's timestamp (from 0, in ``codec.clockRate``)."""
        self._relay.forward(self, codec, data, timestamp)

    def detach(self) -> None:
        self._relay.detach(self)


class StreamRelay:
    """Forwards one publisher's encoded frames to every viewer, without decoding or encoding.

    A WHEP viewer is a :class:`LeanViewer` per kind (:meth:`add_lean_viewer`): its frames are
    packetized once for all by :attr:`fanout` and sent to it directly, starting on a keyframe.
    :meth:`add_viewer` gives instead a :class:`RelayTrack` to read frames from, with its own
    bounded queue (``video_capacity`` and ``audio_capacity`` frames): it starts on a keyframe, and
    a reader too slow to keep up skips to the next keyframe instead of buffering without end.
    Keyframe requests (a viewer joining or overflowing, a viewer's own PLI/FIR) are merged by
    :attr:`keyframes` into at most one PLI to the publisher per ``keyframe_interval`` seconds.

    When the publisher leaves, viewers' tracks stay open and wait; a returning publisher (same
    codecs) resumes them on its first keyframe, with timestamps continuing where they left off
    plus the time spent away. Viewers whose codec the new publisher does not send are ended.

    ``on_live`` is told each change of :attr:`live`: ``True`` when a publisher attaches (on its
    first frame) to a relay that had none, ``False`` when it leaves or the relay closes; a
    publisher replacing another is no change. It is called synchronously, from within the
    frame path: it must return at once and never raise.
    """

    def __init__(
        self,
        *,
        on_live: Callable[[bool], None] | None = None,
        video_capacity: int = 60,
        audio_capacity: int = 50,
        keyframe_interval: float = 0.5,
        keyframe_retry: float = 1.0,
        load: SendLoad | None = None,
    ) -> None:
        self.capacity = {"video": video_capacity, "audio": audio_capacity}
        self._on_live = on_live
        self.keyframes = KeyframeRequester(
            self._request_keyframe_upstream,
            min_interval=keyframe_interval,
            retry_interval=keyframe_retry,
        )
        self.fanout = FanOut(self.keyframes.request, load or SendLoad())
        self.frames_in = 0
        self._publisher: Ingest | None = None
        self._codecs: dict[str, RTCRtpCodecParameters] = {}
        self._tracks: dict[str, set[RelayTrack]] = {kind: set() for kind in KINDS}
        self._timelines: dict[str, _Timeline] = {}
        # The current publisher's last H.264 SPS/PPS, for its video keyframes that lack them.
        # Never carried over to another publisher or codec: they describe one encoder's stream.
        self._parameter_sets = b""
        self._closed = False

    @property
    def live(self) -> bool:
        return self._publisher is not None

    @property
    def publisher(self) -> Ingest | None:
        """The hold of the publisher whose frames are forwarded now, if any."""
        return self._publisher

    def codec(self, kind: str) -> RTCRtpCodecParameters | None:
        """The codec of ``kind`` the publisher sends, or last sent; ``None`` if it never did."""
        return self._codecs.get(kind)

    def viewers(self, kind: str = "video") -> list[RelayTrack | LeanViewer]:
        return [*self._tracks[kind], *self.fanout.viewers(kind)]

    def attach_publisher(
        self,
        codecs: Mapping[str, RTCRtpCodecParameters],
        request_keyframe: Callable[[], Awaitable[None]],
    ) -> Ingest:
        """Make a publisher, sending ``codecs`` (by kind), the source; replaces any current one.

        ``request_keyframe`` sends one PLI upstream; the relay rate-limits calls to it.
        """
        if self._closed:
            raise RuntimeError("relay is closed")
        replacing = self._publisher is not None
        if replacing:
            self._publisher_left()
        for kind, codec in codecs.items():
            self._set_codec(kind, codec)
        ingest = Ingest(self, request_keyframe)
        self._publisher = ingest
        if self._tracks["video"]:
            self.keyframes.cancel()  # ask this publisher now, not at the next retry
            self.keyframes.request()
        if not replacing:
            self._tell_live(True)
        return ingest

    def forward(
        self, ingest: Ingest, codec: RTCRtpCodecParameters, data: bytes, timestamp: int
    ) -> None:
        """Fan one of ``ingest``'s frames out to the viewers, unless a newer publisher replaced
        it (then the frame is ignored)."""
        if ingest is self._publisher:
            self._fan_out(codec, data, timestamp)

    def detach(self, ingest: Ingest) -> None:
        """``ingest``'s publisher left; nothing changes if a newer one replaced it already."""
        if ingest is self._publisher:
            self._publisher_left()
            self._tell_live(False)

    def add_viewer(self, kind: str) -> RelayTrack:
        """A viewer's new track of ``kind``, in the publisher's codec, starting on a keyframe."""
        codec = self._codecs.get(kind)
        if codec is None or self._closed:
            raise StreamNotLive(kind)
        track = RelayTrack(kind, codec.mimeType, self.capacity[kind], self._remove_viewer)
        self._tracks[kind].add(track)
        if kind == "video":
            self.keyframes.request()
        return track

    def add_lean_viewer(self, kind: str, payload_type: int) -> LeanViewer:
        """A viewer's new :class:`LeanViewer` of ``kind``: frames are sent to it from the fan-out
        (packetized once for all), with ``payload_type``, the viewer's for the publisher's codec.
        It starts on a keyframe once its sender is attached and connected."""
        codec = self._codecs.get(kind)
        if codec is None or self._closed:
            raise StreamNotLive(kind)
        viewer = LeanViewer(kind, codec.mimeType, payload_type, self.fanout)
        self.fanout.add(viewer)
        if kind == "video":
            self.keyframes.request()
        return viewer

    def request_keyframe(self) -> None:
        """A viewer asked for a keyframe (PLI/FIR); merged with everyone else's."""
        self.keyframes.request()

    def close(self) -> None:
        """End every viewer's track and ignore the publisher from now on. Safe to call twice."""
        was_live = self.live
        self._closed = True
        self._publisher = None
        self.keyframes.close()
        self.fanout.close()
        for tracks in self._tracks.values():
            for track in list(tracks):
                track.end()
        if was_live:
            self._tell_live(False)

    async def wait_closed(self) -> None:
        """After :meth:`close`: until the keyframe requests it cancelled have ended."""
        await self.keyframes.wait_closed()
        await self.fanout.wait_closed()

    def _tell_live(self, live: bool) -> None:
        if self._on_live is not None:
            self._on_live(live)

    def _remove_viewer(self, track: RelayTrack) -> None:
        self._tracks[track.kind].discard(track)

    def _set_codec(self, kind: str, codec: RTCRtpCodecParameters) -> None:
        previous = self._codecs.get(kind)
        self._codecs[kind] = codec
        if kind == "video" and not _same_codec(previous, codec):
            self._parameter_sets = b""  # another H.264 profile or packetization, or not H.264
        if previous is not None and previous.mimeType.lower() == codec.mimeType.lower():
            return
        self.fanout.end(kind, codec.mimeType)
        for track in list(self._tracks[kind]):
            if track.mime_type.lower() != codec.mimeType.lower():
                track.end()
                self._tracks[kind].discard(track)

    def _publisher_left(self) -> None:
        self._publisher = None
        self._parameter_sets = b""  # the next encoder has its own
        # The next publisher's timestamps start over and its stream over: every viewer must
        # restart on one of its keyframes.
        for timeline in self._timelines.values():
            timeline.restart()
        for tracks in self._tracks.values():
            for track in tracks:
                track.queue.restart()
        self.fanout.restart()
        self.keyframes.cancel()

    async def _request_keyframe_upstream(self) -> None:
        if self._publisher is not None:
            await self._publisher.request_keyframe()

    def _fan_out(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        self.frames_in += 1
        kind = codec.mimeType.partition("/")[0].lower()
        if codec is not self._codecs.get(kind):
            self._set_codec(kind, codec)
        frame = EncodedFrame.parse(codec.mimeType, codec.clockRate, data, timestamp)
        if kind == "video":
            # Only H.264 frames carry parameter sets, and only video frames get them back.
            if frame.parameter_sets:
                self._parameter_sets = frame.parameter_sets
            elif frame.keyframe and self._parameter_sets:
                frame = frame.with_parameter_sets(self._parameter_sets)
            if frame.keyframe:
                self.keyframes.keyframe_received()

        timeline = self._timelines.get(kind)
        if timeline is None or timeline.clock_rate != frame.clock_rate:
            timeline = self._timelines[kind] = _Timeline(frame.clock_rate)
        timestamp = timeline.map(frame.timestamp)
        self.fanout.push(kind, codec, frame.data, timestamp, frame.keyframe)
        if not self._tracks[kind]:
            return
        # One packet for all tracks: aiortc's pack() only reads it.
        packet = av.Packet(frame.data)
        packet.pts = timestamp
        packet.time_base = timeline.time_base
        overflowed = False
        for track in self._tracks[kind]:
            if track.push(packet, frame.keyframe) is Pushed.OVERFLOWED:
                overflowed = True
        if overflowed and kind == "video":
            self.keyframes.request()


def _same_codec(a: RTCRtpCodecParameters | None, b: RTCRtpCodecParameters) -> bool:
    return (
        a is not None
        and a.mimeType.lower() == b.mimeType.lower()
        and a.clockRate == b.clockRate
        and a.parameters == b.parameters
    )


class _Timeline:
    """Keeps one kind's timestamps increasing across publishers (each of which starts at 0)."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.time_base = Fraction(1, clock_rate)
        self._offset: int | None = None
        self._last: int | None = None
        self._last_at = 0.0

    def restart(self) -> None:
        self._offset = None

    def map(self, timestamp: int) -> int:
        now = time.monotonic()
        if self._offset is None:
            if self._last is None:
                self._offset = -timestamp
            else:
                # Continue after the time spent away, so audio and video stay in step.
                gap = max(1, round((now - self._last_at) * self.clock_rate))
                self._offset = self._last + gap - timestamp
        self._last = timestamp + self._offset
        self._last_at = now
        return self._last
