"""Joins absorbed in crowds: the presence writes of a burst of joiners share one Redis round
trip, and joiners of one room within ``SHARE_S`` share one ``room:state`` snapshot.

A shared snapshot is never older than the room's last broadcast on this process: the joiner is
in the room before the snapshot is read, and a snapshot during which the room heard a broadcast
of something it shows is read again (``generation``; viewer counts, reactions and the purchase
feed are not in it), so ``room:state`` can never undo a pin the joiner already saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from livecommerce.live.rooms.messages import RoomStateMessage
from livecommerce.live.rooms.roomstate import RoomState
from livecommerce.platform.backgroundtasks import BackgroundTasks

PRESENCE_WINDOW_S = 0.02
SHARE_S = 0.1
READS = 3  # a room this busy gets the third read however many broadcasts came meanwhile
KEPT = 256  # past this many rooms' snapshots, the stale ones are dropped


class PresenceBatch:
    """``joined`` counts a viewer in a stream, ``left`` stops; the joins (and the leaves) of
    ``window_s`` go to Redis at once (a crowd arriving, or leaving when the show ends)."""

    def __init__(self, state: RoomState, window_s: float = PRESENCE_WINDOW_S) -> None:
        self._state = state
        self._window_s = window_s
        # by (stream, joining): the viewers of the window, each with who waits for the count
        self._pending: dict[tuple[int, bool], list[tuple[str, asyncio.Future[int]]]] = {}
        self._timers: dict[tuple[int, bool], asyncio.TimerHandle] = {}
        self._flushes = BackgroundTasks("presence writes")

    async def joined(self, stream_id: int, viewer: str) -> int:
        """Count ``viewer`` as watching; returns the stream's viewer count after the batch."""
        return await self._batched((stream_id, True), viewer)

    async def left(self, stream_id: int, viewer: str) -> int:
        """Stop counting ``viewer``; returns the stream's viewer count after the batch."""
        return await self._batched((stream_id, False), viewer)

    async def _batched(self, key: tuple[int, bool], viewer: str) -> int:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        batch = self._pending.get(key)
        if batch is None:
            batch = self._pending[key] = []
            self._timers[key] = loop.call_later(self._window_s, self._flush_soon, key)
        batch.append((viewer, done))
        return await asyncio.shield(done)

    def _flush_soon(self, key: tuple[int, bool]) -> None:
        self._timers.pop(key, None)
        batch = self._pending.pop(key, [])
        if self._flushes.spawn(self._flush(key, batch), "presence") is None:
            self._fail(batch, RuntimeError("shutting down"))

    async def _flush(
        self, key: tuple[int, bool], batch: list[tuple[str, asyncio.Future[int]]]
    ) -> None:
        stream_id, joining = key
        write = self._state.viewers_joined if joining else self._state.viewers_left
        try:
            count = await write(stream_id, [viewer for viewer, _ in batch])
        except BaseException as exc:
            self._fail(batch, exc)
            raise
        for _, done in batch:
            if not done.done():
                done.set_result(count)

    @staticmethod
    def _fail(batch: list[tuple[str, asyncio.Future[int]]], exc: BaseException) -> None:
        for _, done in batch:
            if not done.done():
                done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
                done.exception()  # a joiner that went away leaves no "never retrieved" warning

    async def close(self) -> None:
        """Stop pending batches (their joiners get an error); safe to call twice."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for batch in self._pending.values():
            self._fail(batch, RuntimeError("shutting down"))
        self._pending.clear()
        await self._flushes.close()


class _Shared:
    __slots__ = ("generation", "read", "started")

    def __init__(self, generation: int, started: float, read: asyncio.Future[RoomStateMessage]):
        self.generation = generation
        self.started = started
        self.read = read


class SharedSnapshots:
    """The anonymous ``room:state`` of a stream, read once for the joiners of ``share_s``.

    ``read(stream_id)`` reads it; ``generation(room)`` counts the broadcasts the room heard on
    this process.
    """

    def __init__(
        self,
        read: Callable[[int], Awaitable[RoomStateMessage]],
        generation: Callable[[str], int],
        share_s: float = SHARE_S,
    ) -> None:
        self._read = read
        self._generation = generation
        self._share_s = share_s
        self._shared: dict[int, _Shared] = {}

    async def get(self, stream_id: int, room: str) -> RoomStateMessage:
        """The snapshot (shared: copy it before changing it), read after the caller entered
        ``room`` and not older than the room's last broadcast here."""
        for _ in range(READS):
            generation = self._generation(room)
            shared = self._shared.get(stream_id)
            now = time.monotonic()
            if (
                shared is None
                or shared.generation != generation
                or now - shared.started > self._share_s
                or (shared.read.done() and shared.read.exception() is not None)
            ):
                shared = _Shared(generation, now, asyncio.get_running_loop().create_future())
                self._shared[stream_id] = shared
                if len(self._shared) > KEPT:
                    self._forget_old(now)
                try:
                    shared.read.set_result(await self._read(stream_id))
                except BaseException as exc:
                    if self._shared.get(stream_id) is shared:
                        del self._shared[stream_id]
                    told = exc if isinstance(exc, Exception) else RuntimeError("read cancelled")
                    shared.read.set_exception(told)
                    shared.read.exception()  # the joiners sharing it get it; none may be
                    raise
            state = await asyncio.shield(shared.read)
            if self._generation(room) == generation:
                return state
        return state

    def _forget_old(self, now: float) -> None:
        for stream_id, shared in list(self._shared.items()):
            if now - shared.started > self._share_s and shared.read.done():
                del self._shared[stream_id]
