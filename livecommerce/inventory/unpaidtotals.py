"""A buyer's unpaid units across SKUs: bounded, and kept beside the buyer.

The holds of one SKU live in that SKU's slot (``{sku<id>}``), so no single script sees a buyer's
holds of every SKU. Each buyer has a sorted set in their own slot (``{buyer<id>}``): member
``"<hold id>:<qty>"``, score the hold's deadline, so an entry whose removal was lost ages out by
itself. The set is seeded from the system of record the first time it is needed and again
whenever Redis has lost it; a member ``"~:0"`` marks it complete.

A signed-in buyer's set is seeded ahead of their first tap (``warm``, called when their token is
first read or renewed on a process), so the winners of a rush, mostly first-time buyers, wait
for no SQL read between their hold and their answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from livecommerce.platform.pipelined import PipelinedRedis, RedisReplyError

log = logging.getLogger(__name__)

# A seeded set lives at least this long (and a minute past its last hold's deadline), so a
# buyer warmed when they arrived is still warm when they tap.
SEEDED_FOR_MS = 600_000
# Buyers waiting to be warmed; past this the rest are seeded at their first buy instead.
WARM_QUEUE = 20_000
WARM_BATCH = 500


@dataclass(frozen=True)
class UnpaidBounds:
    """How many units one buyer may hold unpaid: of one SKU, and in all (0: no bound)."""

    per_sku: int = 0
    per_buyer: int = 0

    def __post_init__(self) -> None:
        if self.per_sku < 0 or self.per_buyer < 0:
            raise ValueError("a bound is a number of units, or 0 for none")


NO_BOUNDS = UnpaidBounds()


@dataclass(frozen=True)
class Released:
    """A hold given back or paid for: its units and whose they were."""

    hold_id: str
    qty: int
    buyer_id: int


class HeldUnits(Protocol):
    """A live hold as the system of record knows it (``inventory.holds.LiveHold``)."""

    @property
    def hold_id(self) -> str: ...
    @property
    def qty(self) -> int: ...
    @property
    def deadline_ms(self) -> int: ...


# A buyer's holds of reserved orders, from the system of record (see ``inventory.rebuild``).
BuyerHolds = Callable[[int], Awaitable[Sequence[HeldUnits]]]


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a failed removal only leaves an entry to age out


def _script(name: str) -> str:
    return resources.files("livecommerce.inventory").joinpath(f"lua/{name}.lua").read_text()


class UnpaidTotals:
    def __init__(
        self,
        redis: Redis,
        namespace: str,
        hot: PipelinedRedis,
        buyer_holds: BuyerHolds | None = None,
    ) -> None:
        """``buyer_holds`` seeds a buyer's set; without it a buyer starts from nothing held."""
        self._redis = redis
        self._hot = hot
        self._ns = namespace
        self._buyer_holds = buyer_holds
        self._take: AsyncScript = redis.register_script(_script("unpaid"))
        self._seed: AsyncScript = redis.register_script(_script("seed_unpaid"))
        self._warming: set[int] = set()
        self._warmer: asyncio.Task[None] | None = None
        self.warmed = 0  # sets seeded ahead of a buy (for tests and metrics)

    @property
    def scripts(self) -> tuple[AsyncScript, ...]:
        return (self._take, self._seed)

    def key(self, buyer_id: int) -> str:
        return f"{self._ns}:unpaidholds:{{buyer{buyer_id}}}"

    async def _run_hot(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        return await self._hot.evalsha(str(script.script), script.sha, keys, args)

    async def take(
        self, buyer_id: int, hold_id: str, qty: int, now_ms: int, deadline_ms: int, bound: int
    ) -> tuple[bool, int]:
        """Count the hold in the buyer's total if ``bound`` allows it; returns whether it did
        and the units the buyer held unpaid before."""
        key = self.key(buyer_id)
        args = [now_ms, bound, hold_id, qty, deadline_ms]
        added, held = await self._run_hot(self._take, [key], args)
        if int(added) == -1:
            await self._install(buyer_id, now_ms)
            added, held = await self._run_hot(self._take, [key], args)
        return int(added) == 1, int(held)

    def start_take(
        self, buyer_id: int, hold_id: str, qty: int, now_ms: int, deadline_ms: int, bound: int
    ) -> asyncio.Future[Any] | None:
        """``take``'s script, written now (so it goes to Redis with the hold's own script, one
        round trip for both); finish with ``finish_take``, or ``undo_take`` if the hold failed.
        ``None`` when the pipelined connection is not up (call ``take`` after the hold)."""
        args = [now_ms, bound, hold_id, qty, deadline_ms]
        script = self._take
        return self._hot.send_now("EVALSHA", script.sha, 1, self.key(buyer_id), *args)

    async def finish_take(
        self,
        started: asyncio.Future[Any],
        buyer_id: int,
        hold_id: str,
        qty: int,
        now_ms: int,
        deadline_ms: int,
        bound: int,
    ) -> tuple[bool, int]:
        """What ``take`` answers, for a take begun by ``start_take``."""
        try:
            added, held = await started
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.take(buyer_id, hold_id, qty, now_ms, deadline_ms, bound)
        if int(added) == -1:
            return await self.take(buyer_id, hold_id, qty, now_ms, deadline_ms, bound)
        return int(added) == 1, int(held)

    def undo_take(
        self, started: asyncio.Future[Any], buyer_id: int, hold_id: str, qty: int
    ) -> None:
        """Take back what ``start_take`` may have counted, for a hold that was not taken. The
        removal is written after the take on the same connection, so Redis runs it after; if it
        cannot be sent, the entry ages out at the hold's deadline."""
        started.add_done_callback(_ignore_outcome)
        undone = self._hot.send_now("ZREM", self.key(buyer_id), f"{hold_id}:{qty}")
        if undone is not None:
            undone.add_done_callback(_ignore_outcome)

    async def _install(self, buyer_id: int, now_ms: int) -> bool:
        """Seed the set from SQL unless it is there: paid once per buyer while they keep buying
        (or ahead, by ``warm``), and again after Redis lost it. Whether it seeded now."""
        holds = await self._buyer_holds(buyer_id) if self._buyer_holds else []
        live = [h for h in holds if h.deadline_ms >= now_ms]
        expire_at = max([now_ms + SEEDED_FOR_MS, *(h.deadline_ms + 60_000 for h in live)])
        args: list[Any] = [expire_at]
        for hold in live:
            args += [f"{hold.hold_id}:{hold.qty}", hold.deadline_ms]
        return bool(await self._run_hot(self._seed, [self.key(buyer_id)], args))

    def warm(self, buyer_id: int) -> None:
        """Seed ``buyer_id``'s set in the background unless Redis has it: a buyer who is here
        (their token just read) pays no SQL read at their first buy. Best effort: a failure
        only leaves the seeding to that buy."""
        if self._buyer_holds is None or len(self._warming) >= WARM_QUEUE:
            return
        self._warming.add(buyer_id)
        if self._warmer is None or self._warmer.done():
            self._warmer = asyncio.get_running_loop().create_task(
                self._warm_queued(), name="warm unpaid totals"
            )

    async def _warm_queued(self) -> None:
        while self._warming:
            batch = list(self._warming)[:WARM_BATCH]
            self._warming.difference_update(batch)
            hot = self._hot
            present = await asyncio.gather(
                *(hot.execute("EXISTS", self.key(buyer_id)) for buyer_id in batch),
                return_exceptions=True,
            )
            now_ms = time.time_ns() // 1_000_000
            cold = [b for b, there in zip(batch, present, strict=True) if there == 0]
            seeded = await asyncio.gather(
                *(self._install(b, now_ms) for b in cold), return_exceptions=True
            )
            self.warmed += sum(1 for s in seeded if s is True)
            failed = [r for r in (*present, *seeded) if isinstance(r, Exception)]
            if failed:
                log.warning(
                    "warming buyers' unpaid totals failed; their buys seed them",
                    extra={"buyers": len(failed), "error": str(failed[0])},
                )

    async def close(self) -> None:
        """Stop warming (what is left is seeded at those buyers' first buy); safe to call twice."""
        self._warming.clear()
        if self._warmer is not None:
            self._warmer.cancel()
            await asyncio.gather(self._warmer, return_exceptions=True)

    async def forget(self, holds: Sequence[Released]) -> None:
        """Take paid or released holds off their buyers' totals (one pipeline).

        Should this fail, the entries age out at their holds' deadlines by themselves.
        """
        if not holds:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for hold in holds:
                pipe.zrem(self.key(hold.buyer_id), f"{hold.hold_id}:{hold.qty}")
            await pipe.execute()
