"""Moderator invitations: a creator invites, the invited account accepts or declines.

Inviting by email answers the same whether or not an account has that email, and the pending
list shows the email as typed, so a creator learns nothing about who is signed up; the person
becomes a moderator only by accepting. An invitation by email waits for whoever signs up with
that address (emails are not verified: see SECURITY.md). By ``user_id`` (ids are public, they
are in every stream's payload) an unknown id is a plain 404.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.accounts.roles import Role, require_role
from livecommerce.accounts.users import User, get_user, normalise_email
from livecommerce.errors import ErrorCode, InvalidInput, LiveCommerceError, NotFound
from livecommerce.live.streams import Shopstream, get_stream
from livecommerce.platform.db.tables import (
    stream_invitations,
    stream_moderators,
    streams,
    users,
    utcnow,
)

MAX_PENDING_PER_STREAM = 100


@dataclass(frozen=True)
class Invitation:
    id: str
    stream_id: int
    created_at: datetime
    email: str | None = None
    user_id: int | None = None
    user_name: str | None = None

    def for_creator(self) -> dict[str, Any]:
        """What the inviting creator sees: the email they typed, or the account they named."""
        who: dict[str, Any] = (
            {"email": self.email}
            if self.email is not None
            else {"user": {"id": self.user_id, "display_name": self.user_name}}
        )
        return {"id": self.id, **who, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class NewInvitation:
    """An invitation just made: what its email needs (the address, the secret id for the link)."""

    id: str
    email: str
    stream_id: int
    stream_title: str
    creator_name: str


async def invite(
    engine: AsyncEngine,
    stream_id: int,
    creator_id: int,
    *,
    user_id: int | None = None,
    email: str | None = None,
) -> NewInvitation | None:
    """Invite one person to moderate. Creator only; inviting again is harmless (None: that
    invitation was pending already, so no second email goes out)."""
    async with engine.begin() as conn:
        await require_role(conn, stream_id, creator_id, Role.CREATOR)
        creator = await get_user(conn, creator_id)
        assert creator is not None
        if user_id is not None:
            invitee = await get_user(conn, user_id)
            if invitee is None:
                raise NotFound("user")
            if user_id == creator_id:
                raise InvalidInput("the creator already moderates their own stream")
            values: dict[str, Any] = {"user_id": user_id}
            address = invitee.email
        else:
            address = normalise_email(email or "")
            if address == creator.email:
                raise InvalidInput("the creator already moderates their own stream")
            values = {"email": address}
        existing = await conn.execute(
            sa.select(stream_invitations.c.id).where(
                stream_invitations.c.stream_id == stream_id,
                *(getattr(stream_invitations.c, k) == v for k, v in values.items()),
            )
        )
        if existing.scalar_one_or_none() is not None:
            return None
        pending = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(stream_invitations)
                .where(stream_invitations.c.stream_id == stream_id)
            )
        ).scalar_one()
        if pending >= MAX_PENDING_PER_STREAM:
            raise LiveCommerceError(
                ErrorCode.CONFLICT,
                f"{MAX_PENDING_PER_STREAM} invitations are pending; revoke some first",
            )
        invitation_id = secrets.token_urlsafe(16)
        try:
            async with conn.begin_nested():
                await conn.execute(
                    stream_invitations.insert().values(
                        id=invitation_id,
                        stream_id=stream_id,
                        created_at=utcnow(),
                        **values,
                    )
                )
        except IntegrityError:
            return None  # the same invitation, sent twice at once
        stream = await get_stream(conn, stream_id)
        return NewInvitation(
            id=invitation_id,
            email=address,
            stream_id=stream_id,
            stream_title=stream.title,
            creator_name=creator.display_name,
        )


async def pending_for_stream(
    conn: AsyncConnection, stream_id: int, creator_id: int
) -> list[Invitation]:
    await require_role(conn, stream_id, creator_id, Role.CREATOR)
    rows = await conn.execute(
        sa.select(stream_invitations, users.c.display_name)
        .outerjoin(users, users.c.id == stream_invitations.c.user_id)
        .where(stream_invitations.c.stream_id == stream_id)
        .order_by(stream_invitations.c.created_at, stream_invitations.c.id)
    )
    return [
        Invitation(
            id=m["id"],
            stream_id=m["stream_id"],
            created_at=m["created_at"],
            email=m["email"],
            user_id=m["user_id"],
            user_name=m["display_name"],
        )
        for m in (row._mapping for row in rows)
    ]


def _addressed_to(user: User) -> sa.ColumnElement[bool]:
    return sa.or_(
        stream_invitations.c.user_id == user.id,
        stream_invitations.c.email == normalise_email(user.email),
    )


async def pending_for_user(conn: AsyncConnection, user: User) -> list[dict[str, Any]]:
    """The invitations waiting for ``user``, each with the stream it is for."""
    creators = users.alias("creators")
    rows = await conn.execute(
        sa.select(
            stream_invitations.c.id,
            stream_invitations.c.created_at,
            streams.c.id.label("stream_id"),
            streams.c.title,
            streams.c.status,
            creators.c.id.label("creator_id"),
            creators.c.display_name.label("creator_name"),
        )
        .join(streams, streams.c.id == stream_invitations.c.stream_id)
        .join(creators, creators.c.id == streams.c.creator_id)
        .where(_addressed_to(user))
        .order_by(stream_invitations.c.created_at, stream_invitations.c.id)
    )
    return [
        {
            "id": m["id"],
            "created_at": m["created_at"].isoformat(),
            "stream": {
                "id": m["stream_id"],
                "title": m["title"],
                "status": m["status"],
                "creator": {"id": m["creator_id"], "display_name": m["creator_name"]},
            },
        }
        for m in (row._mapping for row in rows)
    ]


async def _take(conn: AsyncConnection, invitation_id: str, user: User) -> int:
    """Delete the caller's invitation (and any twin for the same stream); its stream id.

    Someone else's invitation is as unknown as a made-up id: 404 either way.
    """
    stream_id = (
        await conn.execute(
            sa.select(stream_invitations.c.stream_id).where(
                stream_invitations.c.id == invitation_id, _addressed_to(user)
            )
        )
    ).scalar_one_or_none()
    if stream_id is None:
        raise NotFound("invitation")
    await conn.execute(
        stream_invitations.delete().where(
            stream_invitations.c.stream_id == stream_id, _addressed_to(user)
        )
    )
    return int(stream_id)


async def accept(engine: AsyncEngine, invitation_id: str, user: User) -> Shopstream:
    """The invited account becomes a moderator of the stream."""
    async with engine.begin() as conn:
        stream_id = await _take(conn, invitation_id, user)
        stream = await get_stream(conn, stream_id)
        already = (
            await conn.execute(
                sa.select(stream_moderators.c.user_id).where(
                    stream_moderators.c.stream_id == stream_id,
                    stream_moderators.c.user_id == user.id,
                )
            )
        ).scalar_one_or_none()
        if already is None and stream.creator_id != user.id:
            await conn.execute(
                stream_moderators.insert().values(
                    stream_id=stream_id, user_id=user.id, created_at=utcnow()
                )
            )
        return await get_stream(conn, stream_id)


async def invitation_for(conn: AsyncConnection, invitation_id: str, user: User) -> dict[str, Any]:
    """One invitation waiting for ``user`` (the accept page shows it); 404 if it is not theirs."""
    for pending in await pending_for_user(conn, user):
        if pending["id"] == invitation_id:
            return pending
    raise NotFound("invitation")


async def decline(engine: AsyncEngine, invitation_id: str, user: User) -> None:
    async with engine.begin() as conn:
        await _take(conn, invitation_id, user)


async def revoke(engine: AsyncEngine, stream_id: int, invitation_id: str, creator_id: int) -> None:
    """Withdraw a pending invitation. Creator only."""
    async with engine.begin() as conn:
        await require_role(conn, stream_id, creator_id, Role.CREATOR)
        result = await conn.execute(
            stream_invitations.delete().where(
                stream_invitations.c.id == invitation_id,
                stream_invitations.c.stream_id == stream_id,
            )
        )
        if result.rowcount == 0:
            raise NotFound("invitation")
