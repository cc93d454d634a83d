"""Writes new orders in groups: one transaction for every order that arrived meanwhile.

In a flash sale the winners all arrive within milliseconds, while the event loop is busy refusing
thousands of others. Written one transaction each, their inserts queue behind one another (SQLite
takes one writer at a time; each step of a transaction waits its turn on the busy loop), and the
last winner hears "reserved" seconds late. Written together, they share one commit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.checkout.orders import Order, insert_order, insert_orders

log = logging.getLogger(__name__)

MAX_BATCH = 500


class OrderWriter:
    """Group commit for ``reserved`` orders; ``insert`` answers when its row is committed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pending: list[tuple[dict[str, Any], asyncio.Future[Order]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def insert(self, values: dict[str, Any]) -> asyncio.Future[Order]:
        """Queue one order; the future holds the written ``Order`` or the write's exception.

        The write goes on even if the caller stops waiting: callers shield the future and, if
        they are cancelled, decide from its outcome (a committed order keeps its hold).
        """
        future: asyncio.Future[Order] = asyncio.get_running_loop().create_future()
        self._pending.append((values, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="order-writer")
        return future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                async with self._engine.begin() as conn:
                    written = await insert_orders(conn, [values for values, _ in batch])
            except IntegrityError:
                # Someone reused an idempotency key: write them one by one so only they fail.
                await self._one_by_one(batch)
                continue
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), order in zip(batch, written, strict=True):
                if not future.done():
                    future.set_result(order)

    async def _one_by_one(self, batch: list[tuple[dict[str, Any], asyncio.Future[Order]]]) -> None:
        for values, future in batch:
            try:
                async with self._engine.begin() as conn:
                    order = await insert_order(conn, **values)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(order)

    async def close(self) -> None:
        """Finish what is queued; safe to call twice."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
