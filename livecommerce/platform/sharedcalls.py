"""One call per key at a time; callers that arrive meanwhile share its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from livecommerce.platform.backgroundtasks import BackgroundTasks

T = TypeVar("T")


class SharedCalls:
    """One call per key at a time; callers that arrive meanwhile share its outcome.

    When a crowd taps Buy on a SKU nobody has bought since start-up, a thousand requests would
    otherwise load the same counters from SQL at once. The call runs as a task of its own (a
    caller that goes away does not cut it short for the others); ``close`` cancels and awaits
    those still running.
    """

    def __init__(self, owner: str = "shared calls") -> None:
        self._running: dict[Any, asyncio.Future[Any]] = {}
        # A failure is its callers' to handle, not a background error to log.
        self._tasks = BackgroundTasks(owner, log_failures=False)

    async def run(self, key: Any, call: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is None:
            started = self._tasks.spawn(_awaited(call), str(key))
            if started is None:  # closing: nobody else will share it
                return await call()
            running = started
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return cast(T, await asyncio.shield(running))

    def refresh(self, key: Any, call: Callable[[], Awaitable[Any]]) -> None:
        """Start ``call`` for ``key`` unless one is running, and wait for nothing: a cache
        renews an entry before it expires, so its readers never wait for SQL. Whoever asks
        for ``key`` meanwhile (``run``) shares it."""
        if key in self._running:
            return
        started = self._tasks.spawn(_awaited(call), str(key))
        if started is not None:
            self._running[key] = started
            started.add_done_callback(lambda _: self._running.pop(key, None))

    async def close(self) -> None:
        """Cancel and await the calls still running; safe to call twice."""
        await self._tasks.close()


async def _awaited(call: Callable[[], Awaitable[T]]) -> T:
    return await call()
