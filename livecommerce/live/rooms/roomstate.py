"""A live room's shared state in Redis: pinned product, running flash sale, recent chat, viewers.

Every process reads and writes the same keys, so a late joiner on any process gets the same
snapshot. Keys carry the stream's hash tag (``{stream12}``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis

if TYPE_CHECKING:  # messages.py builds its payloads from this module's values
    from livecommerce.live.rooms.messages import ChatMessage

RECENT_CHAT = 50


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class PinnedVariant:
    """A variant (SKU) of the pinned product a viewer may choose instead of the pinned one."""

    sku_id: int
    label: str  # "M", "M / Black"; empty for a SKU without attributes
    attributes: dict[str, str]
    price: int
    currency: str

    def __post_init__(self) -> None:
        if self.price < 0:
            raise ValueError("a price is never negative")


@dataclass(frozen=True)
class PinnedProduct:
    """The product card shown over the video: the pinned SKU, named with its variant, and the
    product's variants (every SKU of it, the pinned one among them)."""

    product_id: int
    sku_id: int
    title: str
    image_url: str | None
    price: int
    currency: str
    pinned_at: int
    variant: str = ""  # the pinned SKU's label
    variants: tuple[PinnedVariant, ...] = ()

    def __post_init__(self) -> None:
        if self.price < 0:
            raise ValueError("a price is never negative")

    @classmethod
    def from_json(cls, raw: str | bytes) -> PinnedProduct:
        """As ``RoomState.pin`` stored it (a pin stored before variants were kept has none)."""
        data = json.loads(raw)
        data["variants"] = tuple(PinnedVariant(**v) for v in data.get("variants", ()))
        return cls(**data)


@dataclass(frozen=True)
class FlashSale:
    """A flash sale as viewers see it; ``ends_at`` is server epoch ms, the one truth."""

    sale_id: str
    stream_id: int
    product_id: int
    sku_id: int
    sale_price: int
    list_price: int
    currency: str
    quantity: int
    per_buyer_limit: int
    starts_at: int
    ends_at: int

    def __post_init__(self) -> None:
        if not 0 <= self.sale_price <= self.list_price:
            raise ValueError("a sale price is between zero and the list price")
        if self.quantity < 1 or self.per_buyer_limit < 1:
            raise ValueError("a sale sells at least one unit, at least one per buyer")
        if self.ends_at <= self.starts_at:
            raise ValueError("a sale ends after it starts")


class RoomState:
    def __init__(self, redis: Redis, namespace: str, viewer_ttl_ms: int = 60_000) -> None:
        self._redis = redis
        self._ns = namespace
        self._viewer_ttl_ms = viewer_ttl_ms  # a socket not refreshed for this long is gone

    def _key(self, stream_id: int, what: str) -> str:
        return f"{self._ns}:{what}:{{stream{stream_id}}}"

    @property
    def sales_index(self) -> str:
        """Sorted set of running sales by end time, walked by every process's sale clock."""
        return f"{self._ns}:sales"

    async def pin(self, stream_id: int, card: PinnedProduct) -> int:
        """Pin ``card``; returns the room's pin version (see ``unpin``)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(stream_id, "room"), "pinned", json.dumps(asdict(card)))
            pipe.hincrby(self._key(stream_id, "room"), "pin_version", 1)
            _, version = await pipe.execute()
        return int(version)

    async def unpin(self, stream_id: int) -> int:
        """Unpin; returns the room's pin version: it grows with every pin and unpin, in the
        order Redis wrote them, so the broadcasts of the changes can be put back in that order."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._key(stream_id, "room"), "pinned")
            pipe.hincrby(self._key(stream_id, "room"), "pin_version", 1)
            _, version = await pipe.execute()
        return int(version)

    async def pinned(self, stream_id: int) -> PinnedProduct | None:
        raw = await self._redis.hget(self._key(stream_id, "room"), "pinned")
        return PinnedProduct.from_json(raw) if raw else None

    async def set_sale(self, sale: FlashSale) -> None:
        await self._redis.hset(self._key(sale.stream_id, "room"), "sale", json.dumps(asdict(sale)))
        await self._redis.zadd(self.sales_index, {f"{sale.stream_id}:{sale.sale_id}": sale.ends_at})

    async def sale(self, stream_id: int) -> FlashSale | None:
        raw = await self._redis.hget(self._key(stream_id, "room"), "sale")
        return FlashSale(**json.loads(raw)) if raw else None

    async def clear_sale(self, stream_id: int, sale_id: str) -> None:
        current = await self.sale(stream_id)
        if current is not None and current.sale_id == sale_id:
            await self._redis.hdel(self._key(stream_id, "room"), "sale")
        await self._redis.zrem(self.sales_index, f"{stream_id}:{sale_id}")

    async def due_sales(self, at_ms: int) -> list[tuple[int, str]]:
        members = await self._redis.zrangebyscore(self.sales_index, "-inf", at_ms)
        due = []
        for member in members:
            stream, _, sale_id = str(member).partition(":")
            due.append((int(stream), sale_id))
        return due

    async def add_chat(self, stream_id: int, message: ChatMessage) -> None:
        key = self._key(stream_id, "chat")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(message))
            pipe.ltrim(key, -RECENT_CHAT, -1)
            await pipe.execute()

    async def recent_chat(self, stream_id: int) -> list[ChatMessage]:
        # written by add_chat alone, as ChatMessage
        return [
            json.loads(m) for m in await self._redis.lrange(self._key(stream_id, "chat"), 0, -1)
        ]

    async def delete_chat(self, stream_id: int, message_id: str) -> bool:
        key = self._key(stream_id, "chat")
        for raw in await self._redis.lrange(key, 0, -1):
            if json.loads(raw)["id"] == message_id:
                return bool(await self._redis.lrem(key, 1, str(raw)))
        return False

    async def viewer_joined(self, stream_id: int, sid: str) -> int:
        """Count ``sid`` as watching (refreshed by heartbeats); returns the viewer count."""
        key = self._key(stream_id, "viewers")
        now = now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {sid: now + self._viewer_ttl_ms})
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zcard(key)
            result = await pipe.execute()
        return int(result[-1])

    async def viewers_joined(self, stream_id: int, sids: list[str]) -> int:
        """``viewer_joined`` for a crowd, in one round trip."""
        key = self._key(stream_id, "viewers")
        now = now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, dict.fromkeys(sids, now + self._viewer_ttl_ms))
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zcard(key)
            result = await pipe.execute()
        return int(result[-1])

    async def viewers_left(self, stream_id: int, sids: list[str]) -> int:
        """Stop counting ``sids`` (one viewer, or a crowd at a show's end), in one round trip."""
        key = self._key(stream_id, "viewers")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(key, *sids)
            pipe.zremrangebyscore(key, "-inf", now_ms())
            pipe.zcard(key)
            result = await pipe.execute()
        return int(result[-1])

    async def set_on_air(self, stream_id: int, on_air: bool, ttl_s: int) -> bool:
        """Record whether the stream's video is on air (kept ``ttl_s`` unless refreshed, so a
        dead media process cannot leave it on air for ever); True if that is a change."""
        key = self._key(stream_id, "onair")
        if on_air:
            return await self._redis.set(key, "1", ex=ttl_s, get=True) is None
        return bool(await self._redis.delete(key))

    async def on_air(self, stream_id: int) -> bool:
        return bool(await self._redis.exists(self._key(stream_id, "onair")))

    async def on_air_among(self, stream_ids: list[int]) -> set[int]:
        """Which of ``stream_ids`` are on air, in one round trip (a listing of shows)."""
        if not stream_ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream_id in stream_ids:
                pipe.exists(self._key(stream_id, "onair"))
            found = await pipe.execute()
        return {sid for sid, here in zip(stream_ids, found, strict=True) if here}

    async def viewers_still_here(self, watching: dict[int, list[str]]) -> dict[int, int]:
        """Heartbeat: push back the expiry of sockets still connected to this process.

        Sockets of a process that died are not refreshed and drop out after ``self._viewer_ttl_ms``.
        Returns each stream's viewer count.
        """
        now = now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream_id, sids in watching.items():
                key = self._key(stream_id, "viewers")
                pipe.zadd(key, dict.fromkeys(sids, now + self._viewer_ttl_ms))
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zcard(key)
            result = await pipe.execute()
        return {stream_id: int(result[3 * i + 2]) for i, stream_id in enumerate(watching)}

    async def viewers(self, stream_id: int) -> int:
        key = self._key(stream_id, "viewers")
        return int(await self._redis.zcount(key, now_ms(), "+inf"))

    async def muted_until(self, stream_id: int, user_id: int) -> int:
        """Epoch ms until which ``user_id`` may not chat here (0: not muted)."""
        ttl = await self._redis.pttl(self._key(stream_id, f"mute:{user_id}"))
        return now_ms() + int(ttl) if ttl and ttl > 0 else 0

    async def mute(self, stream_id: int, user_id: int, seconds: int) -> int:
        """Mute ``user_id`` for ``seconds``; returns until when (epoch ms). The mute's own key
        decides (it expires with the mute); the room's list of mutes (``mutes``) mirrors it."""
        until = now_ms() + seconds * 1000
        listed = self._key(stream_id, "mutes")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(stream_id, f"mute:{user_id}"), "1", px=seconds * 1000)
            pipe.zadd(listed, {str(user_id): until})
            pipe.pexpireat(listed, until, nx=True)
            pipe.pexpireat(listed, until, gt=True)
            await pipe.execute()
        return until

    async def unmute(self, stream_id: int, user_id: int) -> bool:
        """Lift a mute; True if there was one."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(stream_id, f"mute:{user_id}"))
            pipe.zrem(self._key(stream_id, "mutes"), str(user_id))
            lifted, _ = await pipe.execute()
        return bool(lifted)

    async def mutes(self, stream_id: int) -> list[tuple[int, int]]:
        """Who is muted here now, each with until when (epoch ms), soonest lifted first."""
        listed = self._key(stream_id, "mutes")
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(listed, "-inf", now_ms())
            pipe.zrange(listed, 0, -1, withscores=True)
            _, found = await pipe.execute()
        return [(int(member), int(score)) for member, score in found]

    async def set_slow_mode(self, stream_id: int, seconds: int) -> None:
        await self._redis.hset(self._key(stream_id, "room"), "slow", seconds)

    async def chat_settings(self, stream_id: int) -> tuple[int, list[str]]:
        slow, words = await self._redis.hmget(self._key(stream_id, "room"), ["slow", "blocked"])
        return int(slow or 0), json.loads(words) if words else []

    async def set_blocked_words(self, stream_id: int, words: list[str]) -> None:
        await self._redis.hset(self._key(stream_id, "room"), "blocked", json.dumps(words))

    async def take_turn(self, stream_id: int, user_id: int, what: str, every_ms: int) -> bool:
        """True at most once per ``every_ms`` per user (slow mode, rate limits), all processes."""
        key = self._key(stream_id, f"turn:{what}:{user_id}")
        return bool(await self._redis.set(key, "1", nx=True, px=every_ms))

    async def first_to(self, key: str, within_ms: int) -> bool:
        """True for the first caller (on any process) within ``within_ms``; for coalescing."""
        return bool(await self._redis.set(f"{self._ns}:{key}", "1", nx=True, px=within_ms))
