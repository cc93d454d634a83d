"""What happened to a shopstream that processes other than the one it happened on must act on."""

from __future__ import annotations

import dataclasses

from livecommerce.events.event import Event


@dataclasses.dataclass(frozen=True)
class StreamKeyRotated(Event):
    """The creator replaced the stream key: whoever publishes with the old one is cut off."""

    name = "stream.key_rotated"
    stream_id: int


@dataclasses.dataclass(frozen=True)
class StreamEnded(Event):
    """The show ended: its publisher and viewers are cut off; it takes none again."""

    name = "stream.ended"
    stream_id: int
