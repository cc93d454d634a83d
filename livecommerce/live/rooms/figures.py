"""The show's figures: what a stream sold and to how many people, over time.

Recording stays off the hot path. ``ShowRecorder`` is the ``emit`` the rooms are given, wrapped:
after a broadcast it notes in SQL the moments the studio's chart marks (a pin, an unpin, a flash
sale starting or ending: one row each, written by the process that did it) and, at most once per
``sample_s`` per stream across every process (a Redis ``SET NX PX``), the viewer count that the
heartbeat already computes. No write per viewer, per chat message or per purchase: purchases
come from the orders themselves (their ``paid_at``).

Definitions (the README's "Show figures"): gross sales are the amounts of the stream's orders
that were paid (refunds shown apart), per currency; units and orders count those orders;
buyers are their distinct buyers; peak and average viewers come from the samples (concurrent
viewers, as the room's ``viewers`` event counts them); conversion is buyers / peak viewers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import NotFound
from livecommerce.live.rooms.rooms import ReadCard
from livecommerce.live.rooms.roomstate import RoomState, now_ms
from livecommerce.live.streams import get_stream
from livecommerce.platform.db.tables import orders, skus, stream_moments

log = logging.getLogger(__name__)

MAX_POINTS = 300  # the timeline's buckets: enough for a chart, bounded for a long show
MAX_SAMPLES = 50_000  # a week of 10 s samples
MOMENTS = {
    "product:pinned": "pin",
    "product:unpinned": "unpin",
    "sale:started": "sale",
    "sale:ended": "sale_end",
}


class Broadcast(Protocol):
    """The room emitter's call (``rooms.Emit`` without the per-event overloads)."""

    async def __call__(
        self, event: str, data: Mapping[str, Any], room: str, *, version: int | None = None
    ) -> None: ...


class ShowRecorder:
    """An ``Emit`` that broadcasts, then records what the show's figures are drawn from.

    The rows go to SQL through one writer per process: the moments noted while a batch is
    being written go together in the next one (a burst of pins is one transaction, not fifty
    writers queueing for SQLite's lock). A caller returns once its row is committed.
    """

    def __init__(
        self, emit: Broadcast, engine: AsyncEngine, state: RoomState, sample_s: float
    ) -> None:
        self._emit = emit
        self._engine = engine
        self._state = state
        self._sample_ms = int(sample_s * 1000)
        self._rows: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def __call__(
        self, event: str, data: Mapping[str, Any], room: str, *, version: int | None = None
    ) -> None:
        await self._emit(event, data, room, version=version)
        try:
            if event == "viewers":
                await self._sample(int(data["stream_id"]), int(data["count"]))
            elif event in MOMENTS:
                await self._moment(MOMENTS[event], data)
        except (SQLAlchemyError, RedisError) as exc:
            # The figures lose a point; the room has already heard its event.
            log.warning("show figures: %s not recorded: %s", event, exc)

    async def _sample(self, stream_id: int, count: int) -> None:
        if not await self._state.first_to(f"figures:{{stream{stream_id}}}", self._sample_ms):
            return
        await self._record(stream_id, "viewers", viewers=count)

    async def _moment(self, kind: str, data: Mapping[str, Any]) -> None:
        product_id = sku_id = None
        label = ""
        if kind == "pin":
            card = data["product"]
            product_id, sku_id, label = card["product_id"], card["sku_id"], card["title"]
        elif kind == "sale":
            sale = data["sale"]
            product_id, sku_id = sale["product_id"], sale["sku_id"]
            label = f"{sale['quantity']} at {sale['sale_price']} {sale['currency']} (minor units)"
        await self._record(
            int(data["stream_id"]), kind, product_id=product_id, sku_id=sku_id, label=str(label)
        )

    async def _record(
        self,
        stream_id: int,
        kind: str,
        *,
        viewers: int | None = None,
        product_id: int | None = None,
        sku_id: int | None = None,
        label: str = "",
    ) -> None:
        if self._closed:
            return
        row = {
            "stream_id": stream_id,
            "at_ms": now_ms(),
            "kind": kind,
            "viewers": viewers,
            "product_id": product_id,
            "sku_id": sku_id,
            "label": label[:200],
        }
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rows.append((row, written))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="show figures: moments")
        await asyncio.shield(written)

    async def _write(self) -> None:
        try:
            while self._rows:
                batch, self._rows = self._rows, []
                try:
                    async with self._engine.begin() as conn:
                        await conn.execute(sa.insert(stream_moments), [row for row, _ in batch])
                except BaseException as exc:
                    told = exc if isinstance(exc, Exception) else RuntimeError("not written")
                    for _, written in batch:
                        if not written.done():
                            written.set_exception(told)
                            written.exception()  # a caller that went away leaves no warning
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, written in batch:
                        if not written.done():
                            written.set_result(None)
        finally:
            self._writer = None

    async def close(self) -> None:
        """Write what was noted; nothing more is recorded after."""
        self._closed = True
        writer = self._writer
        if writer is not None:
            await asyncio.gather(writer, return_exceptions=True)


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000)


class ShowFigures:
    """Reads a stream's figures (``GET /api/streams/{id}/figures``); the team only."""

    def __init__(self, engine: AsyncEngine, read_card: ReadCard) -> None:
        self._engine = engine
        self._read_card = read_card

    async def figures(self, stream_id: int) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            stream = await get_stream(conn, stream_id)
            paid = (
                await conn.execute(
                    sa.select(
                        orders.c.buyer_id,
                        orders.c.qty,
                        orders.c.amount_minor,
                        orders.c.refunded_minor,
                        orders.c.currency,
                        orders.c.paid_at,
                        skus.c.product_id,
                    )
                    .join(skus, skus.c.id == orders.c.sku_id)
                    .where(orders.c.stream_id == stream_id, orders.c.paid_at.is_not(None))
                    .order_by(orders.c.paid_at)
                )
            ).all()
            samples = (
                await conn.execute(
                    sa.select(stream_moments.c.at_ms, stream_moments.c.viewers)
                    .where(stream_moments.c.stream_id == stream_id)
                    .where(stream_moments.c.kind == "viewers")
                    .order_by(stream_moments.c.at_ms)
                    .limit(MAX_SAMPLES)
                )
            ).all()
            marks = (
                await conn.execute(
                    sa.select(stream_moments)
                    .where(stream_moments.c.stream_id == stream_id)
                    .where(stream_moments.c.kind != "viewers")
                    .order_by(stream_moments.c.at_ms)
                    .limit(1000)
                )
            ).all()

        gross: dict[str, int] = {}
        refunded: dict[str, int] = {}
        units = 0
        buyers: set[int] = set()
        products: dict[int, dict[str, Any]] = {}
        for row in paid:
            gross[row.currency] = gross.get(row.currency, 0) + int(row.amount_minor)
            refunded[row.currency] = refunded.get(row.currency, 0) + int(row.refunded_minor)
            units += int(row.qty)
            buyers.add(int(row.buyer_id))
            entry = products.setdefault(
                int(row.product_id),
                {"product_id": int(row.product_id), "units": 0, "orders": 0, "gross": {}},
            )
            entry["units"] += int(row.qty)
            entry["orders"] += 1
            entry["gross"][row.currency] = entry["gross"].get(row.currency, 0) + int(
                row.amount_minor
            )
        titles = {int(m.product_id): m.label for m in marks if m.kind == "pin" and m.product_id}
        for product_id, entry in products.items():
            entry["title"] = titles.get(product_id) or await self._title(product_id)

        counts = [int(s.viewers) for s in samples]
        peak = max(counts, default=0)
        average = round(sum(counts) / len(counts), 1) if counts else 0.0
        points = [int(s.at_ms) for s in samples] + [_ms(r.paid_at) for r in paid]
        points += [int(m.at_ms) for m in marks]
        start = _ms(stream.started_at) if stream.started_at else min(points, default=now_ms())
        end = _ms(stream.ended_at) if stream.ended_at else max([now_ms(), *points])
        start = min([start, *points])
        bucket = max(1000, -(-(end - start) // MAX_POINTS))
        purchases: dict[int, dict[str, Any]] = {}
        for row in paid:
            at = start + (_ms(row.paid_at) - start) // bucket * bucket
            point = purchases.setdefault(at, {"at": at, "orders": 0, "units": 0})
            point["orders"] += 1
            point["units"] += int(row.qty)
        return {
            "stream_id": stream_id,
            "status": stream.status.value,
            "gross": [{"amount": a, "currency": c} for c, a in sorted(gross.items())],
            "refunded": [{"amount": a, "currency": c} for c, a in sorted(refunded.items()) if a],
            "units": units,
            "orders": len(paid),
            "buyers": len(buyers),
            "peak_viewers": peak,
            "average_viewers": average,
            "conversion": round(len(buyers) / peak, 4) if peak else None,
            "products": sorted(products.values(), key=lambda p: (-p["units"], p["product_id"])),
            "timeline": {
                "start": start,
                "end": end,
                "bucket_ms": bucket,
                "viewers": _thin([[int(s.at_ms), int(s.viewers)] for s in samples]),
                "purchases": sorted(purchases.values(), key=lambda p: p["at"]),
                "moments": [
                    {
                        "at": int(m.at_ms),
                        "kind": m.kind,
                        "product_id": m.product_id,
                        "label": m.label,
                    }
                    for m in marks
                ],
            },
        }

    async def _title(self, product_id: int) -> str:
        try:
            card = await self._read_card(product_id, None)
        except NotFound:  # a product deleted since: its id still names it
            card = None
        return card.title if card is not None else f"Product #{product_id}"


def _thin(points: list[list[int]]) -> list[list[int]]:
    """At most ``MAX_POINTS`` samples for the chart, keeping each stretch's highest."""
    if len(points) <= MAX_POINTS:
        return points
    step = -(-len(points) // MAX_POINTS)
    return [max(points[i : i + step], key=lambda p: p[1]) for i in range(0, len(points), step)]


FIGURES = web.AppKey("figures", ShowFigures)
