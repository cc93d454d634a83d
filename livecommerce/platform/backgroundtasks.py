"""The owner of an object's short background tasks: kept, reported, cancelled and awaited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Tasks an object starts and does not wait for (a room push, an event to publish).

    Each is kept until it ends (an unreferenced task may be collected mid-flight), a failure is
    logged (unless ``log_failures`` is false: someone awaits the task and hears of it), and
    ``close`` cancels and awaits those still running. After ``close`` nothing new starts: the
    coroutine is closed unrun.
    """

    def __init__(self, owner: str, *, log_failures: bool = True) -> None:
        self._owner = owner
        self._log_failures = log_failures
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any] | None:
        """Run ``coro`` in the background; None (and the coroutine closed) once closed."""
        if self._closed:
            coro.close()
            return None
        task = asyncio.create_task(coro, name=f"{self._owner}: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # Reading the exception also keeps asyncio from warning it was never retrieved.
        if not task.cancelled() and task.exception() is not None and self._log_failures:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def join(self) -> None:
        """Wait until every task started so far (and any they start) has ended."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def close(self) -> None:
        """Cancel every running task and wait for it to end; safe to call twice."""
        self._closed = True
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
