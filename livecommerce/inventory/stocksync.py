"""The Redis side of a money movement already written in SQL, retried until Redis answers.

Once a card is charged (or a refund made) and SQL says so, a Redis outage must not turn the
answer into an error: the buyer would retry a payment that went through. So the hold's commit
or release, or a refund's restock, is tried at once and, if Redis is unreachable, queued and
retried here every ``interval_s`` until it lands. Commit and release are idempotent (the Lua
scripts do nothing for a hold already gone); the reaper is the safety net across a restart: a
due hold whose order is paid is committed, one whose order is closed is released.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

from redis.exceptions import RedisError

from livecommerce.inventory.reservations import Reservations

log = logging.getLogger(__name__)


class Step(StrEnum):
    COMMIT = "commit"
    RELEASE = "release"
    RESTOCK = "restock"


@dataclass(frozen=True)
class Pending:
    step: Step
    sku_id: int
    hold_id: str = ""
    qty: int = 0


class StockSync:
    def __init__(self, reservations: Reservations) -> None:
        self._reservations = reservations
        self._pending: dict[str, Pending] = {}
        self._wake = asyncio.Event()

    def lagging(self, hold_id: str) -> bool:
        """True while this hold's commit or release waits for Redis."""
        return hold_id in self._pending

    async def commit(self, sku_id: int, hold_id: str) -> bool:
        """Move a paid hold's units to sold; False if queued for later."""
        return await self._try(hold_id, Pending(Step.COMMIT, sku_id, hold_id))

    async def release(self, sku_id: int, hold_id: str) -> bool:
        """Put a closed hold's units back on sale; False if queued for later."""
        return await self._try(hold_id, Pending(Step.RELEASE, sku_id, hold_id))

    async def restock(self, sku_id: int, qty: int, key: str) -> bool:
        """Put ``qty`` refunded units back on sale, once per ``key``; False if queued."""
        return await self._try(key, Pending(Step.RESTOCK, sku_id, qty=qty))

    async def _try(self, key: str, step: Pending) -> bool:
        try:
            await self._run(step)
        except RedisError as exc:
            log.warning(
                "Redis unreachable after a payment step; retrying in the background",
                extra={"step": step.step.value, "sku_id": step.sku_id, "error": str(exc)},
            )
            self._pending[key] = step
            self._wake.set()
            return False
        return True

    async def _run(self, step: Pending) -> None:
        if step.step is Step.COMMIT:
            await self._reservations.commit(step.sku_id, step.hold_id)
        elif step.step is Step.RELEASE:
            await self._reservations.release(step.sku_id, step.hold_id)
        else:
            # Not loaded: the counters will be loaded from SQL, which has the units already.
            await self._reservations.adjust(step.sku_id, step.qty)

    async def run(self, interval_s: float = 1.0) -> None:
        """Retry queued steps until each lands (runs for the app's lifetime)."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(interval_s)
            try:
                await self.retry()
            except Exception:
                log.exception("stock sync pass failed")
            if not self._pending:
                self._wake.clear()

    async def retry(self) -> int:
        """One pass over the queue; returns how many steps landed."""
        landed = 0
        for key, step in list(self._pending.items()):
            try:
                await self._run(step)
            except RedisError:
                return landed  # still down: try again next pass
            self._pending.pop(key, None)
            landed += 1
        return landed
