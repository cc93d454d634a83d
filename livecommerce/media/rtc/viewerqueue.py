"""A viewer's bounded queue of encoded frames that skips ahead to a keyframe instead of growing."""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Pushed(Enum):
    QUEUED = "queued"
    SKIPPED = "skipped"
    """Not queued: the viewer is waiting for a keyframe to (re)start on."""
    OVERFLOWED = "overflowed"
    """The queue was full and had no later keyframe to skip to: everything queued was dropped
    and the viewer now waits for the next keyframe (the caller should ask the publisher for one).
    The item itself was queued if it was a keyframe, skipped otherwise."""


class ViewerQueue(Generic[T]):
    """Frames waiting to be sent to one viewer, never more than ``capacity``.

    A viewer starts on a keyframe: until one arrives, frames are skipped. When a slow viewer fills
    the queue, it jumps to the newest keyframe already queued if there is one after the head;
    otherwise it drops the lot and waits for the next keyframe. Either way it resumes on a frame
    it can decode, never on a delta frame whose reference it missed.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.waiting_for_keyframe = True
        self.dropped = 0
        """Frames dropped or skipped so far."""
        self.overflows = 0
        self._items: deque[tuple[T, bool]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T, keyframe: bool) -> Pushed:
        result = Pushed.QUEUED
        if len(self._items) >= self.capacity:
            self.overflows += 1
            if not self._skip_to_newest_keyframe():
                self.dropped += len(self._items)
                self._items.clear()
                self.waiting_for_keyframe = True
                result = Pushed.OVERFLOWED
        if self.waiting_for_keyframe:
            if not keyframe:
                self.dropped += 1
                return Pushed.SKIPPED if result is Pushed.QUEUED else result
            self.waiting_for_keyframe = False
        self._items.append((item, keyframe))
        return result

    def pop(self) -> T | None:
        return self._items.popleft()[0] if self._items else None

    def restart(self) -> None:
        """Keep what is queued, but take nothing more until a keyframe (e.g. a new publisher)."""
        self.waiting_for_keyframe = True

    def _skip_to_newest_keyframe(self) -> bool:
        for index in range(len(self._items) - 1, 0, -1):
            if self._items[index][1]:
                for _ in range(index):
                    self._items.popleft()
                self.dropped += index
                return True
        return False
