"""A live room's chat and its moderation: messages, deletions, mutes, slow mode, blocked words.

Each action checks the caller's role on the server and tells the room through ``emit``, as the
rest of the room's actions do (``rooms``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.roles import Role
from livecommerce.accounts.users import User, display_names, get_user
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.live.rooms.access import require_moderator, role_of, stream_room
from livecommerce.live.rooms.messages import ChatMessage, Emit
from livecommerce.live.rooms.roomstate import RoomState, now_ms
from livecommerce.platform.messagetext import check_blocked, clean_blocked_words, message_text

CHAT_EVERY_MS = 700  # the floor between two messages of one person, slow mode or not


class RoomChat:
    def __init__(self, engine: AsyncEngine, state: RoomState, emit: Emit) -> None:
        self._engine = engine
        self._state = state
        self._emit = emit

    async def post(self, stream_id: int, user: User | None, text: str) -> ChatMessage:
        """Post a message, after mute, slow mode, rate limit and blocked-word checks."""
        if user is None:
            raise LiveCommerceError(ErrorCode.NOT_AUTHENTICATED, "log in to chat")
        text = message_text(text)
        role = await role_of(self._engine, stream_id, user.id)
        if not role.can_moderate:
            until = await self._state.muted_until(stream_id, user.id)
            if until:
                raise LiveCommerceError(
                    ErrorCode.FORBIDDEN, "you are muted in this room", until=until
                )
            slow_s, blocked = await self._state.chat_settings(stream_id)
            check_blocked(text, blocked)
            every = max(slow_s * 1000, CHAT_EVERY_MS)
            if not await self._state.take_turn(stream_id, user.id, "chat", every):
                raise LiveCommerceError(
                    ErrorCode.RATE_LIMITED,
                    f"slow down: one message every {every / 1000:g} s",
                    retry_after_ms=every,
                )
        message: ChatMessage = {
            "id": uuid.uuid4().hex[:12],
            "stream_id": stream_id,
            "user": {"id": user.id, "display_name": user.display_name, "role": role.value},
            "text": text,
            "at": now_ms(),
        }
        await self._state.add_chat(stream_id, message)
        await self._emit("chat:message", message, stream_room(stream_id))
        return message

    async def delete(self, stream_id: int, user: User | None, message_id: str) -> None:
        await require_moderator(self._engine, stream_id, user)
        if not await self._state.delete_chat(stream_id, message_id):
            raise LiveCommerceError(ErrorCode.NOT_FOUND, "no such message among the recent ones")
        await self._emit(
            "chat:deleted", {"stream_id": stream_id, "id": message_id}, stream_room(stream_id)
        )

    async def _display_name(self, user_id: int) -> str:
        async with self._engine.connect() as conn:
            target = await get_user(conn, user_id)
        if target is None:
            raise LiveCommerceError(ErrorCode.NOT_FOUND, "no such user")
        return target.display_name

    async def mute(self, stream_id: int, user: User | None, target_id: int, seconds: int) -> int:
        """Keep ``target_id`` (a viewer) out of the chat for ``seconds``; returns until when
        (epoch ms). The room hears ``chat:muted`` with their display name."""
        await require_moderator(self._engine, stream_id, user)
        if await role_of(self._engine, stream_id, target_id) is not Role.VIEWER:
            raise LiveCommerceError(ErrorCode.FORBIDDEN, "the stream's team cannot be muted")
        name = await self._display_name(target_id)
        until = await self._state.mute(stream_id, target_id, seconds)
        await self._emit(
            "chat:muted",
            {"stream_id": stream_id, "user_id": target_id, "display_name": name, "until": until},
            stream_room(stream_id),
        )
        return until

    async def unmute(self, stream_id: int, user: User | None, target_id: int) -> bool:
        """Let ``target_id`` chat again at once; harmless if they were not muted (the room
        hears ``chat:unmuted`` either way, so every console drops its notice). True if a mute
        was lifted."""
        await require_moderator(self._engine, stream_id, user)
        name = await self._display_name(target_id)
        lifted = await self._state.unmute(stream_id, target_id)
        await self._emit(
            "chat:unmuted",
            {"stream_id": stream_id, "user_id": target_id, "display_name": name},
            stream_room(stream_id),
        )
        return lifted

    async def mutes(self, stream_id: int, user: User | None) -> list[dict[str, Any]]:
        """Who is muted in the room now (for the team: a console opened after a mute shows
        it), each with their display name and until when (epoch ms)."""
        await require_moderator(self._engine, stream_id, user)
        listed = await self._state.mutes(stream_id)
        if not listed:
            return []
        async with self._engine.connect() as conn:
            names = await display_names(conn, [user_id for user_id, _ in listed])
        return [
            {"user_id": user_id, "display_name": names[user_id], "until": until}
            for user_id, until in listed
            if user_id in names
        ]

    async def slow_mode(self, stream_id: int, user: User | None, seconds: int) -> None:
        await require_moderator(self._engine, stream_id, user)
        await self._state.set_slow_mode(stream_id, seconds)
        await self._emit(
            "chat:slowmode", {"stream_id": stream_id, "seconds": seconds}, stream_room(stream_id)
        )

    async def block_words(self, stream_id: int, user: User | None, words: list[str]) -> list[str]:
        """Replace the list; matching is case-insensitive, inside words too. Returns the list."""
        await require_moderator(self._engine, stream_id, user)
        cleaned = clean_blocked_words(words)
        await self._state.set_blocked_words(stream_id, cleaned)
        return cleaned
