"""The ``/live`` Socket.IO namespace: the wire contract of live rooms.

Every client event is answered by its ack: ``{"ok": true, ...}`` or
``{"error": {"code", "message"}}``. Client payloads are typed in ``schemas.py``; server events
in ``rooms/messages.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from http.cookies import SimpleCookie
from typing import Any

import socketio
from redis.exceptions import RedisError

from livecommerce.accounts.roles import Role
from livecommerce.accounts.users import TokenCache, User, token_digest
from livecommerce.checkout.buy import Buy
from livecommerce.errors import ErrorCode, LiveCommerceError, NotFound
from livecommerce.events.accounts import TokensRevoked
from livecommerce.live.rooms.access import stream_room, user_room
from livecommerce.live.rooms.messages import SessionEnded, pinned_card, sale_view
from livecommerce.live.rooms.rooms import LiveRooms
from livecommerce.live.rooms.roomstate import now_ms
from livecommerce.live.transport import socketioserver
from livecommerce.live.transport.engineioseam import peer_address
from livecommerce.live.transport.eventbudget import EventBudget, SocketLimits, Verdict
from livecommerce.live.transport.joins import PresenceBatch, SharedSnapshots
from livecommerce.live.transport.schemas import (
    BlockedWords,
    BuyTerms,
    ChatDelete,
    ChatMute,
    ChatSend,
    ChatUnmute,
    InStream,
    Join,
    Pin,
    Reaction,
    SaleStart,
    SaleStop,
    SlowMode,
)
from livecommerce.live.transport.socketioseam import MAX_EVENT_BYTES, Unreadable
from livecommerce.platform.backgroundtasks import BackgroundTasks
from livecommerce.platform.clientaddress import Network, forwarded_client
from livecommerce.platform.payload import validate

log = logging.getLogger(__name__)

COOKIE = "lc_session"
VIEWER_PUSH_MS = 1000
HEARTBEAT_S = 20.0  # viewer entries live 60 s: two beats may be missed before one drops out
TOKEN_SWEEP_S = 60.0  # sockets whose token expired, or whose revocation this process missed


def _error(exc: LiveCommerceError) -> dict[str, Any]:
    return exc.to_dict()


def _refused(code: ErrorCode, message: str) -> socketio.exceptions.ConnectionRefusedError:
    # the client sees err.message == code and err.data == {code, message}
    return socketio.exceptions.ConnectionRefusedError(
        code.value, {"code": code.value, "message": message}
    )


class LiveSession:
    """One connected socket: who (if anyone), with which token, from where, and its budget."""

    __slots__ = ("address", "budget", "digest", "user")

    def __init__(self, address: str, budget: EventBudget) -> None:
        self.address = address
        self.budget = budget
        self.user: User | None = None
        self.digest: str | None = None


class LiveNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """One room per shopstream; buyers also sit in a private room for their order updates."""

    def __init__(
        self,
        rooms: LiveRooms,
        tokens: TokenCache,
        buy: Buy,
        limits: SocketLimits | None = None,
        trusted_proxies: tuple[Network, ...] = (),
    ) -> None:
        super().__init__("/live")
        self._rooms = rooms
        self._tokens = tokens
        self._buy_use_case = buy
        self._limits = limits or SocketLimits()
        self._trusted = trusted_proxies
        self._sessions: dict[str, LiveSession] = {}
        self._per_address: dict[str, int] = {}
        self._watching: dict[str, int] = {}
        # watching sockets that count as viewers (not the team), with who they count as
        self._counted: dict[str, str] = {}
        # (stream, viewer) -> their counted sockets here: a person's tabs count once
        self._tabs: Counter[tuple[int, str]] = Counter()
        self._pushes = BackgroundTasks("viewer counts")
        self._counting: set[int] = set()  # streams with a viewer-count push pending here
        self._presence = PresenceBatch(rooms.state)
        self._snapshots = SharedSnapshots(
            lambda stream_id: rooms.snapshot(stream_id, None),
            lambda room: socketioserver.fanout(self.server).generation(room),
        )

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Auth payload ``{"token": "..."}`` (or the session cookie); none means anonymous.

        Refusals (``connect_error``): ``too_many_connections`` past ``SOCKETS_PER_ADDRESS``
        sockets of one client address on this process, ``not_authenticated`` for a bad token,
        ``invalid_json`` / ``payload_too_large`` for an unreadable auth payload.
        """
        address = forwarded_client(
            peer_address(environ), environ.get("HTTP_X_FORWARDED_FOR"), self._trusted
        )
        if self._per_address.get(address, 0) >= self._limits.per_address:
            raise _refused(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {self._limits.per_address} connections from one address",
            )
        # The slot is taken before any await, so a burst of connects cannot overshoot the cap.
        session = LiveSession(address, EventBudget(self._limits, time.monotonic()))
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._sessions[sid] = session
        try:
            await self._authenticate(sid, session, environ, auth)
        except BaseException:
            self._forget(sid)
            raise

    async def _authenticate(
        self, sid: str, session: LiveSession, environ: dict[str, Any], auth: Any
    ) -> None:
        if isinstance(auth, list) and auth and isinstance(auth[0], Unreadable):
            raise _refused(auth[0].code, auth[0].message)
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None:
            cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
            token = cookie[COOKIE].value if COOKIE in cookie else None
        if not token:
            return
        try:
            user = await self._tokens.user(token) if isinstance(token, str) else None
        except Exception as exc:  # SQL or Redis down: refuse cleanly, the client retries
            log.warning("socket authentication failed: %s", exc)
            raise _refused(
                ErrorCode.STORE_UNAVAILABLE, "a data store is unavailable; retry"
            ) from None
        if user is None:
            raise _refused(ErrorCode.NOT_AUTHENTICATED, "this token is not valid; log in")
        session.user, session.digest = user, token_digest(token)
        await self.enter_room(sid, user_room(user.id))

    def _forget(self, sid: str) -> None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        left = self._per_address.get(session.address, 1) - 1
        if left > 0:
            self._per_address[session.address] = left
        else:
            self._per_address.pop(session.address, None)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        try:
            stream_id = self._watching.pop(sid, None)
            if stream_id is not None:
                await self._left(sid, stream_id)
        finally:
            self._uncount(sid, stream_id)
            self._forget(sid)  # the address's slot is free even if Redis is not

    async def tokens_revoked(self, event: TokensRevoked) -> None:
        """Log-out or password change on any process: that token's sockets here end now."""
        revoked = set(event.token_hashes)
        ended = [sid for sid, s in self._sessions.items() if s.digest in revoked]
        await self._end_sessions(ended)

    async def _end_sessions(self, sids: list[str]) -> None:
        ended: SessionEnded = {
            "code": ErrorCode.NOT_AUTHENTICATED.value,
            "message": "you were logged out",
        }
        for sid in sids:
            # These sockets are on this process: no need to go through Redis to reach them.
            await self.emit("session:ended", ended, to=sid, ignore_queue=True)
            await self.disconnect(sid)

    async def keep_checking_tokens(self, every_s: float = TOKEN_SWEEP_S) -> None:
        """Disconnect sockets whose token expired, or was revoked while this process was cut
        off from the event bus."""
        while True:
            await asyncio.sleep(every_s)
            by_digest: dict[str, list[str]] = {}
            for sid, session in self._sessions.items():
                if session.digest is not None:
                    by_digest.setdefault(session.digest, []).append(sid)
            if not by_digest:
                continue
            try:
                alive = await self._tokens.still_valid(list(by_digest))
            except Exception as exc:
                log.warning("token sweep skipped: %s", exc)
                continue
            await self._end_sessions(
                [sid for digest, sids in by_digest.items() if digest not in alive for sid in sids]
            )

    async def trigger_event(self, event: Any, *args: Any) -> Any:
        """Every event runs here: rate and size limits, validation and errors become an error
        ack (``rate_limited``, ``payload_too_large``, ``invalid_json``, ``invalid_input``...)."""
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid, data = args[0], args[1] if len(args) > 1 else None
        session = self._sessions.get(sid)
        if session is None:
            return {"error": {"code": "not_authenticated", "message": "not connected"}}
        verdict = session.budget.take(time.monotonic())
        if verdict is Verdict.DROP:
            log.warning("socket dropped for flooding", extra={"address": session.address})
            await self.disconnect(sid)
            return None
        if verdict is Verdict.REFUSE:
            return LiveCommerceError(
                ErrorCode.RATE_LIMITED,
                f"slow down: at most {self._limits.rate:g} events a second",
                retry_after_ms=session.budget.retry_after_ms(),
            ).to_dict()
        if isinstance(event, Unreadable):
            return event.ack()
        handler = _HANDLERS.get(event)
        if handler is None:
            return {"error": {"code": "unknown_event", "message": f"no event named {event!r}"}}
        if len(str(data)) > MAX_EVENT_BYTES:
            return {"error": {"code": "payload_too_large", "message": "that event is too large"}}
        try:
            return {"ok": True, **(await handler(self, sid, data))}
        except LiveCommerceError as exc:
            return _error(exc)
        except Exception:
            log.exception("live event %s failed", event)
            return {"error": {"code": ErrorCode.INTERNAL.value, "message": "internal error"}}

    def _user(self, sid: str) -> User | None:
        session = self._sessions.get(sid)
        return session.user if session is not None else None

    def _viewer(self, sid: str) -> str:
        """Who counts as one viewer: a logged-in person once, whatever their tabs; an anonymous
        socket on its own (one address's sockets are capped by ``SOCKETS_PER_ADDRESS``)."""
        user = self._user(sid)
        return f"user{user.id}" if user is not None else sid

    async def _join(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(Join, data)
        previous = self._watching.get(sid)
        if previous is not None and previous != body.stream_id:
            await self.leave_room(sid, stream_room(previous))
            await self._left(sid, previous)
        # In the room first: a broadcast made while the snapshot is read reaches the joiner.
        room = stream_room(body.stream_id)
        await self.enter_room(sid, room)
        try:
            user = self._user(sid)
            if user is None:  # the crowd: one snapshot for the joiners of a short window
                state = (await self._snapshots.get(body.stream_id, room)).copy()
            else:
                state = await self._rooms.snapshot(body.stream_id, user)
        except BaseException:
            if self._watching.get(sid) != body.stream_id:
                await self.leave_room(sid, room)
            raise
        self._watching[sid] = body.stream_id
        if user is not None and state["role"] != Role.VIEWER.value:
            # The creator and moderators watch their own show: they are not its audience.
            self._uncount(sid, body.stream_id)
            state["viewers"] = await self._rooms.state.viewers(body.stream_id)
        else:
            if sid not in self._counted:
                viewer = self._viewer(sid)
                self._counted[sid] = viewer
                self._tabs[(body.stream_id, viewer)] += 1
            state["viewers"] = await self._presence.joined(body.stream_id, self._viewer(sid))
        state["server_time"] = now_ms()
        # this process's socket: no need to tell the others through Redis
        await self.emit("room:state", state, to=sid, ignore_queue=True)
        self._count_soon(body.stream_id)
        return {"state": state}

    async def _left(self, sid: str, stream_id: int) -> None:
        if sid not in self._counted:
            return  # the team is not counted, so its leaving changes no count
        viewer = self._counted[sid]
        if self._uncount(sid, stream_id):
            await self._presence.left(stream_id, viewer)
        self._count_soon(stream_id)

    def _uncount(self, sid: str, stream_id: int | None) -> bool:
        """Stop counting ``sid``; True if it was its viewer's last counted tab here."""
        viewer = self._counted.pop(sid, None)
        if viewer is None or stream_id is None:
            return False
        key = (stream_id, viewer)
        self._tabs[key] -= 1
        if self._tabs[key] > 0:
            return False
        del self._tabs[key]
        return True

    def _count_soon(self, stream_id: int) -> None:
        """After joins and leaves the room hears the count at most once per ``VIEWER_PUSH_MS``
        (trailing edge, all processes): telling everyone of every joiner costs N² messages
        while a crowd arrives."""
        if stream_id not in self._counting:
            self._counting.add(stream_id)
            self._pushes.spawn(self._count_later(stream_id), "count")

    async def close(self) -> None:
        """Stop the pending viewer-count pushes and presence writes; safe to call twice."""
        await self._presence.close()
        await self._pushes.close()

    async def _count_later(self, stream_id: int) -> None:
        try:
            await self._count_once(stream_id)
        finally:
            self._counting.discard(stream_id)

    async def _count_once(self, stream_id: int) -> None:
        try:
            if not await self._rooms.state.first_to(
                f"viewerpush:{{stream{stream_id}}}", VIEWER_PUSH_MS
            ):
                return
            await asyncio.sleep(VIEWER_PUSH_MS / 1000)
            await self._viewers(stream_id, await self._rooms.state.viewers(stream_id))
        except RedisError as exc:
            log.warning("viewer count not pushed: %s", exc)

    async def _viewers(self, stream_id: int, count: int) -> None:
        await self._rooms.emit(
            "viewers", {"stream_id": stream_id, "count": count}, stream_room(stream_id)
        )

    async def keep_counting(self, every_s: float = HEARTBEAT_S) -> None:
        """Refresh this process's viewers and announce each room's count (one process per room
        per beat), so that the count also falls when another process dies with its sockets."""
        while True:
            await asyncio.sleep(every_s)
            viewers: dict[int, set[str]] = {}
            for sid, stream_id in self._watching.items():
                if sid not in self._counted:
                    continue
                viewers.setdefault(stream_id, set()).add(self._viewer(sid))
            watching = {stream_id: sorted(ids) for stream_id, ids in viewers.items()}
            if not watching:
                continue
            try:
                counts = await self._rooms.state.viewers_still_here(watching)
                for stream_id, count in counts.items():
                    beat = f"viewerbeat:{{stream{stream_id}}}"
                    if await self._rooms.state.first_to(beat, int(every_s * 1000 * 0.9)):
                        await self._viewers(stream_id, count)
            except RedisError as exc:
                log.warning("viewer heartbeat skipped: %s", exc)

    async def _clock(self, sid: str, data: Any) -> dict[str, Any]:
        """``{"client_time": ms}`` → server time; the client takes half the round trip."""
        client = data.get("client_time") if isinstance(data, dict) else None
        return {"server_time": time.time_ns() // 1_000_000, "client_time": client}

    async def _pin(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(Pin, data)
        card = await self._rooms.pin(body.stream_id, self._user(sid), body.product_id, body.sku_id)
        return {"pinned": pinned_card(card)}

    async def _unpin(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(InStream, data)
        await self._rooms.unpin(body.stream_id, self._user(sid))
        return {}

    async def _sale_start(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(SaleStart, data)
        terms = body.model_dump(exclude={"stream_id"})
        sale = await self._rooms.start_sale(body.stream_id, self._user(sid), **terms)
        return {"sale": sale_view(sale)}

    async def _sale_stop(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(SaleStop, data)
        await self._rooms.stop_sale(body.stream_id, self._user(sid), body.sale_id)
        return {}

    async def _buy(self, sid: str, data: Any) -> dict[str, Any]:
        """``{"sku_id", "qty"?, "idempotency_key", "stream_id"?, "pay_with_saved_card"?,
        "unit_price_minor"?}`` → the answer of ``POST /api/purchases`` (the saved card, if any,
        is charged at once unless ``pay_with_saved_card`` is false)."""
        body = validate(BuyTerms, data)
        user = self._user(sid)
        if user is None:
            raise LiveCommerceError(ErrorCode.NOT_AUTHENTICATED, "log in to buy")
        buy = self._buy_use_case
        buy.refuse_if_draining()
        bought = await buy(
            user,
            sku_id=body.sku_id,
            qty=body.qty,
            idempotency_key=body.idempotency_key,
            stream_id=body.stream_id,
            pay_with_saved_card=body.pay_with_saved_card,
            unit_price_minor=body.unit_price_minor,
        )
        return bought.to_dict()

    async def _chat(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(ChatSend, data)
        return {"message": await self._rooms.chat.post(body.stream_id, self._user(sid), body.text)}

    async def _chat_delete(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(ChatDelete, data)
        await self._rooms.chat.delete(body.stream_id, self._user(sid), body.message_id)
        return {}

    async def _chat_mute(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(ChatMute, data)
        until = await self._rooms.chat.mute(
            body.stream_id, self._user(sid), body.user_id, body.seconds
        )
        return {"until": until}

    async def _chat_unmute(self, sid: str, data: Any) -> dict[str, Any]:
        """``{"stream_id", "user_id"}`` (the team) → ``{"lifted": bool}``; the room hears
        ``chat:unmuted``."""
        body = validate(ChatUnmute, data)
        return {
            "lifted": await self._rooms.chat.unmute(body.stream_id, self._user(sid), body.user_id)
        }

    async def _slow_mode(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(SlowMode, data)
        await self._rooms.chat.slow_mode(body.stream_id, self._user(sid), body.seconds)
        return {}

    async def _blocked_words(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(BlockedWords, data)
        return {
            "words": await self._rooms.chat.block_words(body.stream_id, self._user(sid), body.words)
        }

    async def _reaction(self, sid: str, data: Any) -> dict[str, Any]:
        body = validate(Reaction, data)
        if self._watching.get(sid) != body.stream_id:
            raise NotFound("joined room")
        self._rooms.react(body.stream_id, body.kind)
        return {}


_HANDLERS = {
    "join": LiveNamespace._join,
    "clock:sync": LiveNamespace._clock,
    "pin": LiveNamespace._pin,
    "unpin": LiveNamespace._unpin,
    "sale:start": LiveNamespace._sale_start,
    "sale:stop": LiveNamespace._sale_stop,
    "buy": LiveNamespace._buy,
    "chat:send": LiveNamespace._chat,
    "chat:delete": LiveNamespace._chat_delete,
    "chat:mute": LiveNamespace._chat_mute,
    "chat:unmute": LiveNamespace._chat_unmute,
    "chat:slowmode": LiveNamespace._slow_mode,
    "chat:blocklist": LiveNamespace._blocked_words,
    "reaction:send": LiveNamespace._reaction,
}
