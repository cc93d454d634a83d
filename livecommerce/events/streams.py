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


@dataclasses.dataclass(frozen=True)
class LineupChanged(Event):
    """The stream's lineup (the products it sells) was replaced."""

    name = "stream.lineup_changed"
    stream_id: int


@dataclasses.dataclass(frozen=True)
class StreamOnAir(Event):
    """The stream's publisher is sending: its first frame reached the relay.

    Published by the process holding the stream's media when that starts, and again every few
    seconds while it lasts, so that a record of it can expire should that process die.
    """

    name = "stream.on_air"
    stream_id: int


@dataclasses.dataclass(frozen=True)
class StreamOffAir(Event):
    """The stream's publisher stopped sending: it left, was cut off (its key rotated, the show
    ended), or the process holding its media stops. Published by that process."""

    name = "stream.off_air"
    stream_id: int
