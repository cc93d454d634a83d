"""Writes new orders in groups: one transaction for every order that arrived meanwhile.

In a flash sale the winners all arrive within milliseconds, while the event loop is busy refusing
thousands of others. Written one transaction each, their inserts queue behind one another (SQLite
takes one writer at a time; each step of a transaction waits its turn on the busy loop), and the
last winner hears "reserved" seconds late. Written together, they share one commit.

A batch is one INSERT on a connection the writer keeps: no pool checkout and liveness ping per
batch, each of which waits its turn on the busy event loop while the winners wait for
"reserved". On PostgreSQL it is one array per column (``insert_orders``: one prepared statement
for every batch size) sent in autocommit (one statement is one transaction: no BEGIN and COMMIT
round trips); on SQLite a multi-row INSERT in a transaction of its own (pysqlite begins it with
the statement; the commit is one more hop to aiosqlite's thread).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.orders.orders import Order, insert_orders, insert_orders_blocking
from livecommerce.platform.db.engine import sqlite_file_engine

log = logging.getLogger(__name__)

MAX_BATCH = 500

Pending = list[tuple[dict[str, Any], asyncio.Future[Order]]]


class OrderWriter:
    """Group commit for ``reserved`` orders; ``insert`` answers when its row is committed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pending: list[tuple[dict[str, Any], asyncio.Future[Order]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        # One INSERT for the whole batch (see above), so a statement alone is the transaction.
        self._autocommit = engine.dialect.name == "postgresql"
        # On a SQLite file, a batch runs whole in one thread: one hop from the event loop, not
        # one per DBAPI call (about five a batch through aiosqlite). Under a crowd each hop
        # waits a full turn of a loop busy answering thousands of refusals: five turns were
        # seconds, and the winners heard "reserved" after the crowd had gone.
        self._blocking = sqlite_file_engine(engine)
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="order-writer") if self._blocking else None
        )

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
                await self._write(batch)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _write(self, batch: Pending) -> None:
        """Write the batch in one transaction; if a row breaks a constraint (a reused
        idempotency key, a row naming something gone), halve and retry each half, so only the
        bad rows fail: k bad rows among n cost about 2·k·log2(n) transactions, not n."""
        try:
            rows = [values for values, _ in batch]
            if self._thread is not None:
                written = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._write_blocking, rows
                )
            else:
                written = await self._write_async(rows)
        except IntegrityError as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            middle = len(batch) // 2
            await self._write(batch[:middle])
            await self._write(batch[middle:])
            return
        for (_, future), order in zip(batch, written, strict=True):
            if not future.done():
                future.set_result(order)

    def _write_blocking(self, rows: list[dict[str, Any]]) -> list[Order]:
        assert self._blocking is not None
        with self._blocking.begin() as conn:
            return insert_orders_blocking(conn, rows)

    async def _write_async(self, rows: list[dict[str, Any]]) -> list[Order]:
        conn = await self._connection()
        try:
            if self._autocommit:
                return await insert_orders(conn, rows)
            async with conn.begin():
                return await insert_orders(conn, rows)
        except IntegrityError:
            raise
        except (DBAPIError, OSError):
            await self._drop_connection()  # the next batch connects afresh
            raise

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._engine.connect()
            if self._autocommit:
                try:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                except BaseException:
                    await conn.close()
                    raise
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.invalidate()
            finally:
                await conn.close()

    async def close(self) -> None:
        """Finish what is queued, then let the connection go; safe to call twice."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._blocking is not None:
            self._blocking.dispose()
