"""Holds on available stock, kept in Redis by Lua scripts so each step is one atomic call.

Every key of one SKU carries the hash tag ``{sku<id>}``: one script touches one slot, so the
layout works on Redis Cluster. A buyer's unpaid units across SKUs cannot live in any SKU's slot:
they sit beside the buyer (``{buyer<id>}``) and are checked in a second step after the SKU's own
script, which gives the hold back if that bound refuses it (see ``reserve``). Scripts are
loaded once and called by SHA (redis-py's ``Script`` reloads them if the server lost its
script cache).
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any, cast

from aiohttp import web
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.stock import StockBack
from livecommerce.inventory.holds import (
    Hold,
    LiveHold,
    NotLoaded,
    PriceChanged,
    SaleWindow,
    StockLevel,
    text,
)
from livecommerce.inventory.unpaidtotals import (
    NO_BOUNDS,
    BuyerHolds,
    Released,
    UnpaidBounds,
    UnpaidTotals,
)
from livecommerce.platform.pipelined import PipelinedRedis

__all__ = ["Released", "Reservations", "UnpaidBounds"]


def _script(name: str) -> str:
    return resources.files("livecommerce.inventory").joinpath(f"lua/{name}.lua").read_text()


class Reservations:
    """The stock ledger's hot half. SQL stays the system of record (see ``inventory.rebuild``)."""

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        hot: PipelinedRedis,
        buyer_holds: BuyerHolds | None = None,
        events_channel: str = "",
    ) -> None:
        """``hot`` carries the scripts a buy runs (reserve, release, commit); ``redis`` the rest.

        ``buyer_holds`` seeds a buyer's unpaid total the first time it is needed (and after
        Redis lost it); without it a buyer starts from nothing held. ``events_channel`` is the
        event bus's channel, where the scripts publish ``StockOut`` and ``StockBack``
        (``events.stock``) as they change the counters; empty: they publish nothing.
        """
        self._channel = events_channel
        self._totals = UnpaidTotals(redis, namespace, hot, buyer_holds)
        self._redis = redis
        self._hot = hot
        self._ns = namespace
        self._reserve: AsyncScript = redis.register_script(_script("reserve"))
        self._release: AsyncScript = redis.register_script(_script("release"))
        self._commit: AsyncScript = redis.register_script(_script("commit"))
        self._load: AsyncScript = redis.register_script(_script("load"))
        self._adjust: AsyncScript = redis.register_script(_script("adjust"))
        self._sale: AsyncScript = redis.register_script(_script("sale"))
        self._end_sale: AsyncScript = redis.register_script(_script("end_sale"))

    @property
    def redis(self) -> Redis:
        return self._redis

    def warm_buyer(self, buyer_id: int) -> None:
        """Seed the buyer's unpaid total in the background (see ``UnpaidTotals.warm``)."""
        self._totals.warm(buyer_id)

    async def close(self) -> None:
        """Stop the background warming; safe to call twice."""
        await self._totals.close()

    def _keys(self, sku_id: int) -> dict[str, str]:
        tag = f"{{sku{sku_id}}}"
        ns = self._ns
        return {
            "stock": f"{ns}:stock:{tag}",
            "holds": f"{ns}:holds:{tag}",
            "data": f"{ns}:hold:{tag}",
            "sale": f"{ns}:sale:{tag}",
            "buyers": f"{ns}:salebuyers:{tag}",
            "unpaid": f"{ns}:unpaid:{tag}",
        }

    def _idem_key(self, sku_id: int, buyer_id: int, key: str) -> str:
        return f"{self._ns}:idem:{{sku{sku_id}}}:{buyer_id}:{key}"

    @property
    def loaded_set(self) -> str:
        """The set of SKU ids whose counters live in Redis (the reaper walks it)."""
        return f"{self._ns}:skus"

    async def preload_scripts(self) -> None:
        """Load every script into the server's cache up front, so the first buy pays nothing."""
        for script in (
            self._reserve,
            self._release,
            self._commit,
            self._load,
            self._adjust,
            self._sale,
            self._end_sale,
            *self._totals.scripts,
        ):
            script.sha = await self._redis.script_load(script.script)

    async def _run_hot(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        return await self._hot.evalsha(str(script.script), script.sha, keys, args)

    async def reserve(
        self,
        *,
        sku_id: int,
        buyer_id: int,
        qty: int,
        hold_id: str,
        idempotency_key: str,
        now_ms: int,
        deadline_ms: int,
        idempotency_ttl_s: int,
        stream_id: int | None = None,
        bounds: UnpaidBounds = NO_BOUNDS,
        most_per_unit: int | None = None,
    ) -> Hold:
        """Take ``qty`` units for ``buyer_id`` until ``deadline_ms``, or raise why not.

        Checks, in one atomic step: the flash-sale window and cap (a sale's price is for
        purchases in its stream), the sale's per-buyer limit, the buyer's unpaid units of this
        SKU, available stock, and (``most_per_unit``) the price the buyer agreed to: a dearer
        unit raises ``PriceChanged`` with nothing taken. The same ``idempotency_key`` from the
        same buyer returns the first hold (``replayed=True``) and takes nothing more.

        With ``bounds.per_buyer``, the hold is also counted in the buyer's unpaid units across
        SKUs (another slot), by a script sent in the same round trip just before this one: if
        the hold fails, that count is taken back; if the bound refuses it, the hold is given
        back (its idempotency key too) before this raises. Meanwhile the units are briefly out
        of stock, or a failed hold briefly counted: a buyer at their bound can make another
        miss one unit, or be refused once, for one round trip; nothing is ever oversold.
        """
        k = self._keys(sku_id)
        # The buyer's unpaid total is counted in the same round trip as the hold, written just
        # before it (another slot, so not the same script), and taken back if the hold fails.
        taking = (
            self._totals.start_take(buyer_id, hold_id, qty, now_ms, deadline_ms, bounds.per_buyer)
            if bounds.per_buyer
            else None
        )
        try:
            reply = await self._run_hot(
                self._reserve,
                [
                    k["stock"],
                    k["holds"],
                    k["data"],
                    self._idem_key(sku_id, buyer_id, idempotency_key),
                    k["sale"],
                    k["buyers"],
                    k["unpaid"],
                ],
                [
                    hold_id,
                    buyer_id,
                    qty,
                    now_ms,
                    deadline_ms,
                    idempotency_ttl_s,
                    "" if stream_id is None else stream_id,
                    bounds.per_sku,
                    self._channel,
                    sku_id,
                    "" if most_per_unit is None else most_per_unit,
                ],
            )
        except BaseException:
            if taking is not None:
                self._totals.undo_take(taking, buyer_id, hold_id, qty)
            raise
        status = text(reply[0])
        if status != "ok" and taking is not None:
            self._totals.undo_take(taking, buyer_id, hold_id, qty)
        if status == "ok":
            if bounds.per_buyer:
                await self._take_unpaid(
                    sku_id,
                    buyer_id,
                    hold_id,
                    qty,
                    now_ms,
                    deadline_ms,
                    idempotency_key,
                    bounds,
                    taking,
                )
            return Hold(
                hold_id=text(reply[1]),
                sku_id=sku_id,
                qty=qty,
                buyer_id=buyer_id,
                unit_price=int(reply[3]),
                sale_id=text(reply[4]) or None,
                available_after=int(reply[2]),
            )
        if status == "replay":
            return Hold(text(reply[1]), sku_id, qty, buyer_id, 0, None, -1, replayed=True)
        if status == "not_loaded":
            raise NotLoaded(sku_id)
        if status == "price_changed":
            raise PriceChanged(int(reply[1]))
        left = int(reply[1])
        if status == "insufficient":
            if left == 0:
                raise LiveCommerceError(ErrorCode.SOLD_OUT, "sold out", available=0)
            raise LiveCommerceError(
                ErrorCode.INSUFFICIENT_STOCK, f"only {left} left", available=left
            )
        if status == "sale_sold_out":
            raise LiveCommerceError(
                ErrorCode.SOLD_OUT, f"the flash sale has {left} left", available=left
            )
        if status == "limit_exceeded":
            raise LiveCommerceError(
                ErrorCode.LIMIT_EXCEEDED,
                f"the flash sale allows you {max(left, 0)} more, counting the units you hold "
                "unpaid: pay for or cancel your reserved orders",
                remaining=max(left, 0),
            )
        if status == "too_many_unpaid":
            raise _too_many_unpaid(left, bounds.per_sku, "of this item")
        raise RuntimeError(f"reserve script answered {status!r}")

    async def _take_unpaid(
        self,
        sku_id: int,
        buyer_id: int,
        hold_id: str,
        qty: int,
        now_ms: int,
        deadline_ms: int,
        idempotency_key: str,
        bounds: UnpaidBounds,
        started: asyncio.Future[Any] | None,
    ) -> None:
        idem_key = self._idem_key(sku_id, buyer_id, idempotency_key)
        try:
            if started is None:
                added, held = await self._totals.take(
                    buyer_id, hold_id, qty, now_ms, deadline_ms, bounds.per_buyer
                )
            else:
                added, held = await self._totals.finish_take(
                    started, buyer_id, hold_id, qty, now_ms, deadline_ms, bounds.per_buyer
                )
        except BaseException:
            await self.release(sku_id, hold_id, idem_key)
            raise
        if not added:
            await self.release(sku_id, hold_id, idem_key)
            raise _too_many_unpaid(held, bounds.per_buyer, "in all")

    async def release(self, sku_id: int, hold_id: str, idempotency_key: str | None = None) -> int:
        """Put a hold back on the shelf; returns units released (0 if it was already gone)."""
        released = await self.release_many(sku_id, [hold_id], idempotency_key)
        return released[0].qty if released else 0

    async def forget_key(self, sku_id: int, buyer_id: int, hold_id: str, key: str) -> int:
        """Give the hold back and free its idempotency key, for a purchase that did not happen
        (its order could not be written): the buyer may retry with the same key at once."""
        return await self.release(sku_id, hold_id, self._idem_key(sku_id, buyer_id, key))

    async def release_many(
        self, sku_id: int, hold_ids: list[str], idempotency_key: str | None = None
    ) -> list[Released]:
        """Put holds of one SKU back in one atomic step; returns those released now.

        ``idempotency_key`` (the full key, one hold only) is freed with the hold.
        """
        if not hold_ids:
            return []
        k = self._keys(sku_id)
        keys = [k["stock"], k["holds"], k["data"], k["sale"], k["buyers"], k["unpaid"]]
        if idempotency_key is not None:
            keys.append(idempotency_key)
        reply = await self._run_hot(self._release, keys, [self._channel, sku_id, *hold_ids])
        released = [Released(text(h), int(q), int(b)) for h, q, b in reply]
        await self._totals.forget(released)
        return released

    async def commit(self, sku_id: int, hold_id: str) -> int:
        """Mark a hold sold; returns units committed (0 if it was already gone)."""
        k = self._keys(sku_id)
        keys = [k["stock"], k["holds"], k["data"], k["unpaid"]]
        qty, buyer = await self._run_hot(self._commit, keys, [hold_id])
        if int(qty):
            await self._totals.forget([Released(hold_id, int(qty), int(buyer))])
        return int(qty)

    async def load(
        self,
        sku_id: int,
        *,
        available: int,
        price: int,
        currency: str,
        holds: list[LiveHold],
    ) -> bool:
        """Install counters for a SKU unless present. True if this call loaded them."""
        k = self._keys(sku_id)
        args: list[Any] = [available, price, currency]
        for hold in holds:
            args += [hold.hold_id, hold.deadline_ms, hold.encode()]
        keys = [k["stock"], k["holds"], k["data"], k["unpaid"]]
        loaded = int(await self._load(keys=keys, args=args)) == 1
        await self._redis.sadd(self.loaded_set, str(sku_id))
        if loaded:
            await self._say_back(sku_id)  # what was known of the counters before is void
        # The buyers' totals need nothing here: a set Redis lost is seeded again from SQL,
        # these holds included, on that buyer's next purchase.
        return loaded

    async def adjust(self, sku_id: int, delta: int, price: int | None = None) -> int | None:
        """Move available units by ``delta`` (and set the list price); None if not loaded.

        A decrease larger than what is available (the rest being held by buyers) is refused.
        """
        reply = await self._adjust(
            keys=[self._keys(sku_id)["stock"]],
            args=[delta, "" if price is None else price, self._channel, sku_id],
        )
        status = text(reply[0])
        if status == "not_loaded":
            return None
        if status == "short":
            raise LiveCommerceError(
                ErrorCode.CONFLICT,
                f"only {int(reply[1])} units are free; the rest are held by buyers",
                available=int(reply[1]),
            )
        return int(reply[1])

    async def level(self, sku_id: int) -> StockLevel | None:
        """Available, held and sold units, read together (one HMGET), or None if not loaded."""
        avail, held, sold = await self._redis.hmget(
            self._keys(sku_id)["stock"], ["avail", "held", "sold"]
        )
        return StockLevel.read(avail, held, sold)

    async def sale_units_of(self, sku_id: int, buyer_id: int) -> int:
        """Units ``buyer_id`` holds or bought in the SKU's current flash sale (what its
        per-buyer limit counts); 0 without a sale."""
        return int(await self._redis.hget(self._keys(sku_id)["buyers"], str(buyer_id)) or 0)

    async def levels(self, sku_ids: list[int]) -> dict[int, StockLevel | None]:
        """``level`` of many SKUs in one round trip (a show's whole lineup)."""
        if not sku_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for sku_id in sku_ids:
                pipe.hmget(self._keys(sku_id)["stock"], ["avail", "held", "sold"])
            found = await pipe.execute()
        return {
            sku_id: StockLevel.read(*counters)
            for sku_id, counters in zip(sku_ids, found, strict=True)
        }

    async def hold(self, sku_id: int, hold_id: str) -> LiveHold | None:
        k = self._keys(sku_id)
        data = await self._redis.hget(k["data"], hold_id)
        if data is None:
            return None
        score = await self._redis.zscore(k["holds"], hold_id)
        return LiveHold.decode(hold_id, int(score or 0), text(data))

    async def due(self, sku_id: int, now_ms: int, limit: int = 200) -> list[LiveHold]:
        """Holds whose deadline has passed, oldest first."""
        k = self._keys(sku_id)
        entries = cast(
            list[tuple[Any, float]],
            await self._redis.zrangebyscore(
                k["holds"], "-inf", now_ms, start=0, num=limit, withscores=True
            ),
        )
        if not entries:
            return []
        ids = [text(member) for member, _ in entries]
        data = await self._redis.hmget(k["data"], ids)
        return [
            LiveHold.decode(hold_id, int(score), text(raw))
            for (hold_id, (_, score), raw) in zip(ids, entries, data, strict=True)
            if raw is not None
        ]

    async def due_by_sku(
        self, sku_ids: list[int], now_ms: int, limit: int = 500
    ) -> dict[int, list[str]]:
        """Ids of holds past their deadline, for many SKUs in one round trip (the reaper's
        walk); SKUs with none are left out."""
        if not sku_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for sku_id in sku_ids:
                pipe.zrangebyscore(self._keys(sku_id)["holds"], "-inf", now_ms, start=0, num=limit)
            found = await pipe.execute()
        pairs = zip(sku_ids, found, strict=True)
        return {sku_id: [text(h) for h in ids] for sku_id, ids in pairs if ids}

    async def loaded_skus(self) -> list[int]:
        return sorted(int(s) for s in await self._redis.smembers(self.loaded_set))

    async def start_sale(self, sku_id: int, window: SaleWindow) -> None:
        k = self._keys(sku_id)
        await self._sale(
            keys=[k["sale"], k["buyers"]],
            args=[
                window.sale_id,
                window.price,
                window.cap,
                window.starts_ms,
                window.ends_ms,
                window.per_buyer_limit,
                "" if window.stream_id is None else window.stream_id,
            ],
        )
        await self._say_back(sku_id)

    async def end_sale(self, sku_id: int, sale_id: str, now_ms: int) -> bool:
        """End the sale now if it is still running; True if this call ended it."""
        ended = (
            int(await self._end_sale(keys=[self._keys(sku_id)["sale"]], args=[sale_id, now_ms]))
            == 1
        )
        if ended:
            await self._say_back(sku_id)
        return ended

    async def _say_back(self, sku_id: int) -> None:
        """Tell every process that whatever it knew of this SKU's running out is void."""
        if self._channel:
            message = json.dumps(StockBack(sku_id=sku_id).to_wire())
            await self._redis.publish(self._channel, message)

    async def sale(self, sku_id: int) -> SaleWindow | None:
        found: dict[Any, Any] = await self._redis.hgetall(self._keys(sku_id)["sale"])
        return SaleWindow.read(found)

    async def offer(self, sku_id: int) -> tuple[StockLevel | None, SaleWindow | None]:
        """``level`` and ``sale`` read together in one round trip: what a live card shows."""
        k = self._keys(sku_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(k["stock"], ["avail", "held", "sold"])
            pipe.hgetall(k["sale"])
            counters, found = await pipe.execute()
        return StockLevel.read(*counters), SaleWindow.read(found)


def _too_many_unpaid(held: int, bound: int, where: str) -> LiveCommerceError:
    return LiveCommerceError(
        ErrorCode.TOO_MANY_UNPAID,
        f"you already hold {held} unpaid units {where} (at most {bound}): pay for or cancel "
        "your reserved orders first",
        unpaid=held,
        bound=bound,
    )


RESERVATIONS = web.AppKey("reservations", Reservations)
