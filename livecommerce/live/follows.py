"""Following creators and "remind me" on scheduled shows, and the one "is live" email each
follower and reminded user gets when a show goes on air.

Each email is claimed by a unique row (``platform.notices``, kind ``live_now``, per show and
user) before it is queued, so however many processes hear that a show is on air (the media
relay says it again every few seconds, on every process), each person gets it once.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.errors import ErrorCode, LiveCommerceError, NotFound
from livecommerce.events.streams import StreamOnAir
from livecommerce.live.streams import StreamStatus, get_stream
from livecommerce.platform.db.tables import follows, show_reminders, users, utcnow
from livecommerce.platform.mail import Email, Mailer
from livecommerce.platform.notices import claim_notice

log = logging.getLogger(__name__)

MAX_FOLLOWS = 1000  # creators one user may follow


async def follow(engine: AsyncEngine, user_id: int, creator_id: int) -> None:
    """Follow a creator (any user who has made a show, or may); idempotent."""
    if user_id == creator_id:
        raise LiveCommerceError(ErrorCode.INVALID_INPUT, "you cannot follow yourself")
    async with engine.begin() as conn:
        exists = (
            await conn.execute(sa.select(users.c.id).where(users.c.id == creator_id))
        ).one_or_none()
        if exists is None:
            raise NotFound("creator")
        count = (
            await conn.execute(sa.select(sa.func.count()).where(follows.c.user_id == user_id))
        ).scalar_one()
        if count >= MAX_FOLLOWS:
            raise LiveCommerceError(
                ErrorCode.LIMIT_EXCEEDED, f"you follow {MAX_FOLLOWS} creators already"
            )
    await _insert_once(
        engine, follows.insert().values(user_id=user_id, creator_id=creator_id, created_at=utcnow())
    )


async def unfollow(engine: AsyncEngine, user_id: int, creator_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            follows.delete().where(follows.c.user_id == user_id, follows.c.creator_id == creator_id)
        )


async def remind(engine: AsyncEngine, user_id: int, stream_id: int) -> None:
    """Ask for an email when a scheduled show goes live; idempotent."""
    async with engine.connect() as conn:
        stream = await get_stream(conn, stream_id)
    if stream.status is not StreamStatus.SCHEDULED:
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION,
            f"this show is {stream.status.value}: reminders are for scheduled shows",
        )
    await _insert_once(
        engine,
        show_reminders.insert().values(user_id=user_id, stream_id=stream_id, created_at=utcnow()),
    )


async def unremind(engine: AsyncEngine, user_id: int, stream_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            show_reminders.delete().where(
                show_reminders.c.user_id == user_id, show_reminders.c.stream_id == stream_id
            )
        )


async def _insert_once(engine: AsyncEngine, insert: sa.Insert) -> None:
    try:
        async with engine.begin() as conn:
            await conn.execute(insert)
    except IntegrityError:
        pass  # there already: following twice is following


async def followed(conn: AsyncConnection, user_id: int) -> tuple[list[int], list[int]]:
    """(creator ids the user follows, stream ids they asked to be reminded of)."""
    creators = await conn.execute(
        sa.select(follows.c.creator_id).where(follows.c.user_id == user_id)
    )
    shows = await conn.execute(
        sa.select(show_reminders.c.stream_id).where(show_reminders.c.user_id == user_id)
    )
    return sorted(creators.scalars()), sorted(shows.scalars())


class LiveNow:
    """Sends "<creator> is live: <title>" to the creator's followers and the show's reminded
    users, once each per show."""

    def __init__(self, engine: AsyncEngine, mailer: Mailer, public_url: str) -> None:
        self._engine = engine
        self._mailer = mailer
        self._public_url = public_url.rstrip("/")
        self._announced: set[int] = set()  # shows this process has announced already

    async def stream_on_air(self, event: StreamOnAir) -> None:
        """Subscriber (every process): the first time a show is on air, tell its audience."""
        await self.announce(event.stream_id)

    async def announce(self, stream_id: int) -> int:
        """Queue the emails not sent yet for this show; returns how many this call queued."""
        if stream_id in self._announced:
            return 0
        async with self._engine.connect() as conn:
            stream = await get_stream(conn, stream_id)
            if stream.status is StreamStatus.ENDED:
                return 0
            audience = sa.union(
                sa.select(follows.c.user_id).where(follows.c.creator_id == stream.creator_id),
                sa.select(show_reminders.c.user_id).where(show_reminders.c.stream_id == stream_id),
            ).subquery()
            rows = (
                await conn.execute(
                    sa.select(users.c.id, users.c.email)
                    .where(users.c.id.in_(sa.select(audience.c.user_id)))
                    .where(users.c.id != stream.creator_id)
                    .order_by(users.c.id)
                )
            ).all()
        if len(self._announced) > 10_000:
            self._announced.clear()
        self._announced.add(stream_id)
        subject = f"{stream.creator_name} is live: {stream.title}"[:200]
        link = f"{self._public_url}/watch/{stream_id}"
        queued = 0
        for user_id, address in rows:
            if not await claim_notice(self._engine, "live_now", stream_id, user_id):
                continue
            try:
                mail = Email(address, subject, f"{subject}\n\nWatch now: {link}\n")
            except ValueError:
                log.warning("live-now email not sent: bad address", extra={"user_id": user_id})
                continue
            self._mailer.send_soon(mail)
            queued += 1
        return queued


LIVE_NOW = web.AppKey("live_now", LiveNow)
