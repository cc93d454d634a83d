"""Roles per shopstream: the creator owns it, moderators are named by the creator, all else view."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.errors import Forbidden, NotFound
from livecommerce.platform.db.tables import stream_moderators, streams


class Role(StrEnum):
    CREATOR = "creator"
    MODERATOR = "moderator"
    VIEWER = "viewer"

    @property
    def can_moderate(self) -> bool:
        return self in (Role.CREATOR, Role.MODERATOR)


async def role_in_stream(conn: AsyncConnection, stream_id: int, user_id: int | None) -> Role:
    """The caller's role in a stream; a missing stream is a 404."""
    creator_id = (
        await conn.execute(sa.select(streams.c.creator_id).where(streams.c.id == stream_id))
    ).scalar_one_or_none()
    if creator_id is None:
        raise NotFound("stream")
    if user_id is None:
        return Role.VIEWER
    if creator_id == user_id:
        return Role.CREATOR
    moderator = (
        await conn.execute(
            sa.select(stream_moderators.c.user_id).where(
                stream_moderators.c.stream_id == stream_id,
                stream_moderators.c.user_id == user_id,
            )
        )
    ).scalar_one_or_none()
    return Role.MODERATOR if moderator is not None else Role.VIEWER


async def require_role(conn: AsyncConnection, stream_id: int, user_id: int, *allowed: Role) -> Role:
    """The caller's role, or a 403 naming who may do this."""
    return allow(await role_in_stream(conn, stream_id, user_id), *allowed)


def allow(role: Role, *allowed: Role) -> Role:
    """``role``, or a 403 naming who may do this."""
    if role not in allowed:
        who = " or ".join(r.value for r in allowed)
        raise Forbidden(f"only the stream's {who} may do this")
    return role
