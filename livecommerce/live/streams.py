"""Shopstreams: title, schedule, status, lineup, moderators and the secret stream key."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.accounts.roles import Role, require_role
from livecommerce.accounts.users import find_user_by_email, get_user
from livecommerce.errors import ErrorCode, InvalidInput, LiveCommerceError, NotFound
from livecommerce.platform.db.tables import (
    products,
    skus,
    stream_lineup,
    stream_moderators,
    streams,
    users,
    utcnow,
)


class StreamStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class ShowPhase(StrEnum):
    """What a show is doing now, as every page and client shows it: the stored status joined
    with the media's on-air signal. ``paused``: the show is live (not ended) but its publisher
    is gone (a closed browser, a lost connection, OBS stopped); it may come back on air."""

    SCHEDULED = "scheduled"
    ON_AIR = "on_air"
    PAUSED = "paused"
    ENDED = "ended"


def show_phase(status: StreamStatus, on_air: bool) -> ShowPhase:
    """The one place a show's phase is decided. An ended show is ended even while its last
    frames are still being cut off; a scheduled show whose publisher is on air is becoming
    live (the status follows within the same notice)."""
    if status is StreamStatus.ENDED:
        return ShowPhase.ENDED
    if on_air:
        return ShowPhase.ON_AIR
    return ShowPhase.PAUSED if status is StreamStatus.LIVE else ShowPhase.SCHEDULED


_NEXT: dict[StreamStatus, set[StreamStatus]] = {
    StreamStatus.SCHEDULED: {StreamStatus.LIVE, StreamStatus.ENDED},
    StreamStatus.LIVE: {StreamStatus.ENDED},
    StreamStatus.ENDED: set(),
}


STREAM_KEY_PREFIX = "lcsk_"


def new_stream_key() -> str:
    """``lcsk_`` + 192 random bits. Keys made before (``sk_live_…``, easy to mistake for a
    Stripe secret key in a scanner or a support ticket) keep working until rotated."""
    return STREAM_KEY_PREFIX + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Shopstream:
    id: int
    creator_id: int
    creator_name: str
    title: str
    description: str
    status: StreamStatus
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    lineup: tuple[int, ...]
    moderators: tuple[tuple[int, str], ...]

    def to_dict(self, *, on_air: bool) -> dict[str, Any]:
        """The API's view; ``on_air`` is the media's signal (``RoomState.on_air``), which
        with ``status`` makes ``phase`` (``show_phase``)."""

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "status": self.status.value,
            "on_air": on_air and self.status is not StreamStatus.ENDED,
            "phase": show_phase(self.status, on_air).value,
            "creator": {"id": self.creator_id, "display_name": self.creator_name},
            "scheduled_at": iso(self.scheduled_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "created_at": iso(self.created_at),
            "lineup": list(self.lineup),
            "moderators": [{"id": uid, "display_name": name} for uid, name in self.moderators],
        }


async def get_stream(conn: AsyncConnection, stream_id: int) -> Shopstream:
    found = await _load(conn, [stream_id])
    if not found:
        raise NotFound("stream")
    return found[0]


async def streams_listing_sku(conn: AsyncConnection, sku_id: int) -> list[int]:
    """The streams not ended whose lineup holds the product of ``sku_id``."""
    rows = await conn.execute(
        sa.select(stream_lineup.c.stream_id)
        .join(streams, streams.c.id == stream_lineup.c.stream_id)
        .join(skus, skus.c.product_id == stream_lineup.c.product_id)
        .where(skus.c.id == sku_id, streams.c.status != "ended")
    )
    return [int(stream_id) for (stream_id,) in rows]


async def pin_check(
    conn: AsyncConnection, stream_id: int, user_id: int, product_id: int
) -> tuple[Role, bool]:
    """The caller's role in a stream and whether ``product_id`` is in its lineup, in one query
    (a pin asks both; a missing stream is a 404)."""
    row = (
        await conn.execute(
            sa.select(
                streams.c.creator_id,
                sa.exists().where(
                    stream_moderators.c.stream_id == stream_id,
                    stream_moderators.c.user_id == user_id,
                ),
                sa.exists().where(
                    stream_lineup.c.stream_id == stream_id,
                    stream_lineup.c.product_id == product_id,
                ),
            ).where(streams.c.id == stream_id)
        )
    ).first()
    if row is None:
        raise NotFound("stream")
    creator_id, moderator, listed = row
    role = Role.CREATOR if creator_id == user_id else Role.MODERATOR if moderator else Role.VIEWER
    return role, bool(listed)


async def list_streams(
    conn: AsyncConnection,
    *,
    statuses: list[StreamStatus] | None = None,
    creator_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Shopstream]:
    query = sa.select(streams.c.id)
    if statuses:
        query = query.where(streams.c.status.in_([s.value for s in statuses]))
    if creator_id is not None:
        query = query.where(streams.c.creator_id == creator_id)
    # Live first, then the soonest scheduled, then the most recent.
    order = sa.case((streams.c.status == "live", 0), (streams.c.status == "scheduled", 1), else_=2)
    query = query.order_by(order, streams.c.scheduled_at, streams.c.id.desc())
    ids = list((await conn.execute(query.limit(limit).offset(offset))).scalars())
    return await _load(conn, ids)


async def _load(conn: AsyncConnection, ids: list[int]) -> list[Shopstream]:
    if not ids:
        return []
    rows = (
        await conn.execute(
            sa.select(streams, users.c.display_name)
            .join(users, users.c.id == streams.c.creator_id)
            .where(streams.c.id.in_(ids))
        )
    ).all()
    lineups: dict[int, list[int]] = {i: [] for i in ids}
    for sid, pid in await conn.execute(
        sa.select(stream_lineup.c.stream_id, stream_lineup.c.product_id)
        .where(stream_lineup.c.stream_id.in_(ids))
        .order_by(stream_lineup.c.position)
    ):
        lineups[sid].append(pid)
    mods: dict[int, list[tuple[int, str]]] = {i: [] for i in ids}
    for sid, uid, name in await conn.execute(
        sa.select(stream_moderators.c.stream_id, users.c.id, users.c.display_name)
        .join(users, users.c.id == stream_moderators.c.user_id)
        .where(stream_moderators.c.stream_id.in_(ids))
        .order_by(stream_moderators.c.created_at)
    ):
        mods[sid].append((uid, name))
    by_id = {}
    for row in rows:
        m = row._mapping
        by_id[m["id"]] = Shopstream(
            id=m["id"],
            creator_id=m["creator_id"],
            creator_name=m["display_name"],
            title=m["title"],
            description=m["description"],
            status=StreamStatus(m["status"]),
            scheduled_at=m["scheduled_at"],
            started_at=m["started_at"],
            ended_at=m["ended_at"],
            created_at=m["created_at"],
            lineup=tuple(lineups[m["id"]]),
            moderators=tuple(mods[m["id"]]),
        )
    return [by_id[i] for i in ids if i in by_id]


async def _set_lineup(
    conn: AsyncConnection, stream_id: int, creator_id: int, product_ids: list[int]
) -> None:
    if len(set(product_ids)) != len(product_ids):
        raise InvalidInput("lineup lists a product twice")
    if product_ids:
        owned = set(
            (
                await conn.execute(
                    sa.select(products.c.id).where(
                        products.c.id.in_(product_ids), products.c.owner_id == creator_id
                    )
                )
            ).scalars()
        )
        missing = [p for p in product_ids if p not in owned]
        if missing:
            raise InvalidInput(
                f"lineup products must exist and belong to the creator: {missing}",
                products=missing,
            )
    await conn.execute(stream_lineup.delete().where(stream_lineup.c.stream_id == stream_id))
    if product_ids:
        await conn.execute(
            stream_lineup.insert(),
            [
                {"stream_id": stream_id, "product_id": pid, "position": i}
                for i, pid in enumerate(product_ids)
            ],
        )


async def create_stream(
    engine: AsyncEngine,
    creator_id: int,
    *,
    title: str,
    description: str = "",
    scheduled_at: datetime | None = None,
    lineup: list[int] | None = None,
) -> tuple[Shopstream, str]:
    """Create a scheduled shopstream owned by ``creator_id``; returns it and its stream key."""
    key = new_stream_key()
    async with engine.begin() as conn:
        stream_id = (
            await conn.execute(
                streams.insert()
                .values(
                    creator_id=creator_id,
                    title=title,
                    description=description,
                    scheduled_at=scheduled_at,
                    status=StreamStatus.SCHEDULED.value,
                    stream_key=key,
                    created_at=utcnow(),
                )
                .returning(streams.c.id)
            )
        ).scalar_one()
        if lineup:
            await _set_lineup(conn, stream_id, creator_id, lineup)
        return await get_stream(conn, stream_id), key


async def update_stream(
    engine: AsyncEngine,
    stream_id: int,
    editor_id: int,
    changes: dict[str, Any],
    lineup: list[int] | None = None,
) -> Shopstream:
    """Change title, description, schedule, status or lineup. Creator only.

    Status moves forward only: scheduled → live → ended (or scheduled → ended).
    """
    async with engine.begin() as conn:
        await require_role(conn, stream_id, editor_id, Role.CREATOR)
        current = await get_stream(conn, stream_id)
        values = dict(changes)
        status = values.pop("status", None)
        if status is not None and status != current.status:
            values.update(_transition(current.status, StreamStatus(status)))
        if values:
            await conn.execute(streams.update().where(streams.c.id == stream_id).values(**values))
        if lineup is not None:
            await _set_lineup(conn, stream_id, current.creator_id, lineup)
        return await get_stream(conn, stream_id)


def _transition(current: StreamStatus, target: StreamStatus) -> dict[str, Any]:
    if target not in _NEXT[current]:
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION,
            f"a {current.value} stream cannot become {target.value}",
        )
    values: dict[str, Any] = {"status": target.value}
    if target is StreamStatus.LIVE:
        values["started_at"] = utcnow()
    if target is StreamStatus.ENDED:
        values["ended_at"] = utcnow()
    return values


async def set_status(engine: AsyncEngine, stream_id: int, target: StreamStatus) -> Shopstream:
    """Move a stream's status without a role check: for ingest, which proved the stream key.

    The update applies only to the status it was checked against: a show ended by its creator
    meanwhile is not brought back to life (``invalid_transition`` instead).
    """
    while True:  # statuses only move forward, so this retries at most twice
        async with engine.begin() as conn:
            current = await get_stream(conn, stream_id)
            if current.status is target:
                return current
            moved = await conn.execute(
                streams.update()
                .where(streams.c.id == stream_id, streams.c.status == current.status.value)
                .values(**_transition(current.status, target))
            )
            if moved.rowcount == 1:
                return await get_stream(conn, stream_id)


async def add_moderator(
    engine: AsyncEngine,
    stream_id: int,
    editor_id: int,
    *,
    user_id: int | None = None,
    email: str | None = None,
) -> Shopstream:
    """Name a moderator at once, by id or email (demo seeding). Creator only; harmless twice.

    The API never calls this: people join a team by accepting an invitation (invitations.py).
    """
    async with engine.begin() as conn:
        await require_role(conn, stream_id, editor_id, Role.CREATOR)
        user = (
            await get_user(conn, user_id)
            if user_id is not None
            else await find_user_by_email(conn, email or "")
        )
        if user is None:
            raise NotFound("user")
        if user.id == editor_id:
            raise InvalidInput("the creator already moderates their own stream")
        already = (
            await conn.execute(
                sa.select(stream_moderators.c.user_id).where(
                    stream_moderators.c.stream_id == stream_id,
                    stream_moderators.c.user_id == user.id,
                )
            )
        ).scalar_one_or_none()
        if already is None:
            await conn.execute(
                stream_moderators.insert().values(
                    stream_id=stream_id, user_id=user.id, created_at=utcnow()
                )
            )
        return await get_stream(conn, stream_id)


async def remove_moderator(
    engine: AsyncEngine, stream_id: int, editor_id: int, user_id: int
) -> Shopstream:
    async with engine.begin() as conn:
        await require_role(conn, stream_id, editor_id, Role.CREATOR)
        await conn.execute(
            stream_moderators.delete().where(
                stream_moderators.c.stream_id == stream_id,
                stream_moderators.c.user_id == user_id,
            )
        )
        return await get_stream(conn, stream_id)


async def stream_key(engine: AsyncEngine, stream_id: int, editor_id: int) -> str:
    """The stream key, for the creator's studio or OBS settings. Creator only."""
    async with engine.connect() as conn:
        await require_role(conn, stream_id, editor_id, Role.CREATOR)
        key: str = (
            await conn.execute(sa.select(streams.c.stream_key).where(streams.c.id == stream_id))
        ).scalar_one()
    return key


async def rotate_key(engine: AsyncEngine, stream_id: int, editor_id: int) -> str:
    """Replace the stream key; the old one stops working at once. Creator only."""
    key = new_stream_key()
    async with engine.begin() as conn:
        await require_role(conn, stream_id, editor_id, Role.CREATOR)
        await conn.execute(streams.update().where(streams.c.id == stream_id).values(stream_key=key))
    return key


async def check_stream_key(engine: AsyncEngine, stream_id: int, presented: str) -> bool:
    """Constant-time check of a presented stream key (for WHIP ingest)."""
    async with engine.connect() as conn:
        key = (
            await conn.execute(sa.select(streams.c.stream_key).where(streams.c.id == stream_id))
        ).scalar_one_or_none()
    if key is None:
        raise NotFound("stream")
    return hmac.compare_digest(key.encode(), presented.encode())


class StreamKeys:
    """A shopstream's key and whether its show is over, for the media's WHIP/WHEP handlers
    (``media.signal.StreamGate``, wired at composition)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def key_matches(self, stream_id: int, presented: str) -> bool:
        return await check_stream_key(self._engine, stream_id, presented)

    async def has_ended(self, stream_id: int) -> bool:
        async with self._engine.connect() as conn:
            return (await get_stream(conn, stream_id)).status is StreamStatus.ENDED
