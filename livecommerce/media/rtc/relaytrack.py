"""A track of the publisher's encoded frames, as ``av.Packet``, that an RTCRtpSender (or any
reader) pulls at its own pace; WHEP viewers are sent to by the lean sender instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from livecommerce.media.rtc.viewerqueue import Pushed, ViewerQueue


class RelayTrack(MediaStreamTrack):
    """One viewer's audio or video, fed by a :class:`~livecommerce.media.rtc.relay.StreamRelay`.

    ``recv()`` returns ``av.Packet`` (never a decoded frame), so aiortc's sender only packetizes
    it. ``mime_type`` is the codec the viewer negotiated; the relay ends the track if the publisher
    switches to another one, since the viewer's connection could not carry it. ``stop()`` (called
    by the sender when it stops) detaches the track from the relay.
    """

    def __init__(
        self,
        kind: str,
        mime_type: str,
        capacity: int,
        on_stop: Callable[[RelayTrack], None],
    ) -> None:
        super().__init__()
        self.kind = kind
        self.mime_type = mime_type
        self.queue: ViewerQueue[av.Packet[Any]] = ViewerQueue(capacity)
        self.sent = 0
        self._on_stop: Callable[[RelayTrack], None] | None = on_stop
        self._ready = asyncio.Event()
        self._ended = False

    def push(self, packet: av.Packet[Any], keyframe: bool) -> Pushed:
        pushed = self.queue.push(packet, keyframe)
        if len(self.queue):
            self._ready.set()
        return pushed

    def end(self) -> None:
        """No more frames will come: ``recv()`` raises once the queue is drained."""
        self._ended = True
        self._ready.set()

    async def recv(self) -> av.Packet[Any]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            packet = self.queue.pop()
            if packet is not None:
                self.sent += 1
                return packet
            if self._ended:
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()

    def stop(self) -> None:
        super().stop()
        self._ended = True
        self._ready.set()
        on_stop, self._on_stop = self._on_stop, None
        if on_stop is not None:
            on_stop(self)
