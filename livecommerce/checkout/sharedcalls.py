"""One call per key at a time; callers that arrive meanwhile share its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class SharedCalls:
    """One call per key at a time; callers that arrive meanwhile share its outcome.

    When a crowd taps Buy on a SKU nobody has bought since start-up, a thousand requests would
    otherwise load the same counters from SQL at once.
    """

    def __init__(self) -> None:
        self._running: dict[Any, asyncio.Future[Any]] = {}

    async def run(self, key: Any, call: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(call())
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return cast(T, await asyncio.shield(running))
