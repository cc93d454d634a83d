"""Whether the process is taking work, and the background tasks it must stop on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class Lifecycle:
    """Draining flag plus a set of named background tasks, cancelled in reverse on close."""

    def __init__(self) -> None:
        self.draining = False
        self._tasks: list[asyncio.Task[Any]] = []

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._report)
        self._tasks.append(task)
        return task

    @staticmethod
    def _report(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        """Cancel and await every task; safe to call twice."""
        self.draining = True
        tasks, self._tasks = self._tasks[::-1], []
        for task in tasks:
            # Some libraries turn a cancellation into their own error (redis-py reports a
            # connect cut short as ConnectionError), so a task may swallow one: ask again.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
