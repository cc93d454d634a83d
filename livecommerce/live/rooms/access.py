"""Who may act in a live room, and the Socket.IO rooms its messages go to."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.roles import Role, require_role, role_in_stream
from livecommerce.accounts.users import User
from livecommerce.errors import ErrorCode, LiveCommerceError

MODERATORS = (Role.CREATOR, Role.MODERATOR)


def stream_room(stream_id: int) -> str:
    return f"stream:{stream_id}"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


async def role_of(engine: AsyncEngine, stream_id: int, user_id: int | None) -> Role:
    async with engine.connect() as conn:
        return await role_in_stream(conn, stream_id, user_id)


async def require_moderator(engine: AsyncEngine, stream_id: int, user: User | None) -> None:
    """Refuse anyone but the stream's creator and its moderators."""
    if user is None:
        raise LiveCommerceError(ErrorCode.NOT_AUTHENTICATED, "log in first")
    async with engine.connect() as conn:
        await require_role(conn, stream_id, user.id, *MODERATORS)
