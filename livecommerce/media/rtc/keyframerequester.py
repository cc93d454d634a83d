"""Merging viewers' keyframe requests into few, rate-limited requests to the publisher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class KeyframeRequester:
    """Asks upstream for a keyframe on behalf of any number of viewers, at most once per interval.

    Viewers call :meth:`request` (joining, overflowing, or relaying their own PLI/FIR); the relay
    calls :meth:`keyframe_received` for every keyframe the publisher sends. Requests made while one
    is outstanding are merged into it. An outstanding request is sent at once unless one was sent
    less than ``min_interval`` ago, in which case it is sent when the interval is over; it is
    repeated every ``retry_interval`` until a keyframe arrives, because a PLI can be lost and some
    publishers (OBS) ignore them and only send keyframes on their own schedule.
    """

    def __init__(
        self,
        send: Callable[[], Awaitable[None]],
        *,
        min_interval: float = 0.5,
        retry_interval: float = 1.0,
    ) -> None:
        if min_interval <= 0 or retry_interval < min_interval:
            raise ValueError("need 0 < min_interval <= retry_interval")
        self.min_interval = min_interval
        self.retry_interval = retry_interval
        self.requested = 0
        """Requests from viewers."""
        self.sent = 0
        """Requests sent upstream."""
        self._send = send
        self._outstanding = False
        self._last_sent: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def outstanding(self) -> bool:
        return self._outstanding

    def request(self) -> None:
        self.requested += 1
        if self._outstanding or self._closed:
            return
        self._outstanding = True
        loop = asyncio.get_running_loop()
        delay = 0.0
        if self._last_sent is not None:
            delay = max(0.0, self._last_sent + self.min_interval - loop.time())
        self._schedule(delay)

    def keyframe_received(self) -> None:
        self._outstanding = False
        self._cancel_timer()

    def cancel(self) -> None:
        """Drop the outstanding request, if any (its publisher is gone)."""
        self.keyframe_received()

    def close(self) -> None:
        self._closed = True
        self._outstanding = False
        self._cancel_timer()
        for task in self._tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        """After :meth:`close`: until the requests it cancelled have ended."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _schedule(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._outstanding or self._closed:
            return
        self.sent += 1
        self._last_sent = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(self._send())
        self._tasks.add(task)
        task.add_done_callback(self._sent)
        self._schedule(self.retry_interval)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("keyframe request failed", exc_info=task.exception())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
