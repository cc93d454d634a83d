"""One Redis connection shared by every buyer, commands written as they come (auto-pipelining);
and ``listen``, a channel's messages read the same lean way.

The purchase path calls one Lua script per buy. Through redis-py each call costs about 180 µs of
CPU here (connection pool, retries, instrumentation), which caps a process near 5,000 calls/s.
This connection writes each command straight to the socket and matches replies in order
(Redis answers in order on one connection), parsed by hiredis: about 20 µs a call, and a burst
of buyers does not wait for one another's replies. It carries the scripts of the purchase path
and the event bus's messages; everything else uses redis-py. Not for Redis Cluster (one node, or
a proxy in front of the cluster).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

CALL_TIMEOUT_S = 5.0
# A subscribed connection says PING this often; one that hears nothing for twice as long is
# presumed dead (a silent network or server would otherwise leave a listener deaf for good).
LISTEN_PING_S = 10.0


class RedisReplyError(RedisError):
    """Redis answered a command with an error."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(encoding="utf-8", errors="replace")
        # Each command's reply slot with the loop time by which it must come.
        self.waiters: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        # One timer for the whole connection, not one per command (a timer each costs more than
        # the rest of a call): it checks the oldest reply still awaited.
        self._watch: asyncio.TimerHandle | None = None

    def write(self, command: bytes) -> None:
        # At once (one send each): held for one send at the loop's next turn, a command waited
        # for a whole pass of the loop's I/O (every request read meanwhile), which under a
        # crowd is what a winner's hold waited for most.
        if self.transport is not None and self.lost is None:
            self.transport.write(command)

    def expect(self, waiter: asyncio.Future[Any]) -> None:
        loop = asyncio.get_running_loop()
        self.waiters.append((waiter, loop.time() + CALL_TIMEOUT_S))
        if self._watch is None:
            self._watch = loop.call_later(CALL_TIMEOUT_S, self._check)

    def _check(self) -> None:
        self._watch = None
        if not self.waiters or self.transport is None:
            return
        loop = asyncio.get_running_loop()
        left = self.waiters[0][1] - loop.time()
        if left > 0:
            self._watch = loop.call_later(left, self._check)
            return
        # A server that does not answer for this long is presumed gone: every waiter fails
        # now, and the next call connects afresh.
        self.lost = RedisConnectionError("Redis did not answer in time")
        self.transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            waiter, _ = self.waiters.popleft()
            if waiter.done():  # the caller gave up (timeout); the reply is dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(RedisReplyError(str(reply)))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or exc or RedisConnectionError("Redis closed the connection")
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self.waiters:
            waiter, _ = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RedisConnectionError(f"Redis connection lost: {self.lost}"))


class _Listener(asyncio.Protocol):
    """A connection in subscriber mode: each message's payload goes to ``on_message`` as it is
    parsed, or is dropped unread when it starts with ``skip`` (a process's own events)."""

    def __init__(self, on_message: Callable[[str], None], skip: str) -> None:
        self.reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._on_message = on_message
        self._skip = skip
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.heard = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.heard = time.monotonic()
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                payload = reply[2]
                if not (self._skip and payload.startswith(self._skip)):
                    self._on_message(payload)
            elif isinstance(reply, list) and reply and reply[0] == "subscribe":
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
            elif isinstance(reply, hiredis.ReplyError):
                self._fail(f"Redis refused: {reply}")

    def _fail(self, why: str) -> None:
        if not self.closed.done():
            self.closed.set_result(why)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(str(exc) if exc else "Redis closed the connection")
        if not self.subscribed.done():
            self.subscribed.set_exception(RedisConnectionError(self.closed.result()))


def _pack(args: tuple[Any, ...]) -> bytes:
    """The command in RESP, by hiredis (C: a third of the time of the same in Python)."""
    return cast(bytes, hiredis.pack_command(args))


class PipelinedRedis:
    """A lazily (re)connected, auto-pipelined connection from a ``redis://`` URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        query = parse_qs(parts.query)
        self._url = parts
        # redis://host/3 or ?db=3; for unix:// the path is the socket, so only ?db=.
        path_db = "" if parts.scheme == "unix" else parts.path.strip("/")
        self._db = int(query.get("db", [path_db])[0] or 0)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._closed = False

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and protocol.lost is None:
                return protocol
            if self._closed:
                raise RedisConnectionError("this Redis connection is closed")
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(CALL_TIMEOUT_S):
                    protocol = await self._open(loop)
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"cannot reach Redis: {exc}") from exc
            return protocol

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        parts = self._url
        if parts.scheme == "unix":
            _, protocol = await loop.create_unix_connection(_Protocol, parts.path)
        else:
            _, protocol = await loop.create_connection(
                _Protocol,
                parts.hostname or "127.0.0.1",
                parts.port or 6379,
                ssl=ssl.create_default_context() if parts.scheme == "rediss" else None,
            )
        if self._password is not None:
            auth = (self._username, self._password) if self._username else (self._password,)
            await self._send(protocol, ("AUTH", *auth))
        if self._db:
            await self._send(protocol, ("SELECT", self._db))
        self._protocol = protocol
        return protocol

    @staticmethod
    def _send(protocol: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        if protocol.transport is None or protocol.lost is not None:
            raise RedisConnectionError("Redis connection lost")
        waiter = asyncio.get_running_loop().create_future()
        protocol.expect(waiter)
        protocol.write(_pack(args))
        return waiter

    def send_now(self, *args: Any) -> asyncio.Future[Any] | None:
        """Write one command in this turn of the loop, without awaiting: its reply's future,
        or ``None`` when not connected (``execute`` then connects). Commands on this connection
        run in the order they are written, so one written later sees this one's effect."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or protocol.transport is None:
            return None
        return self._send(protocol, args)

    async def execute(self, *args: Any) -> Any:
        """Send one command; its reply, or ``RedisReplyError`` / redis-py's ``ConnectionError``."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        # Within CALL_TIMEOUT_S, or the connection is dropped and this fails (see _Protocol).
        return await self._send(protocol, args)

    async def evalsha(self, script: str, sha: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by SHA, loading it first if the server has forgotten it."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.execute("SCRIPT", "LOAD", script)
        return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def listen(
        self,
        channel: str,
        on_message: Callable[[str], None],
        *,
        skip: str = "",
        subscribed: Callable[[], None] | None = None,
    ) -> None:
        """Subscribe to ``channel`` on a connection of its own and hand each message's payload
        to ``on_message`` (in order, as read; those starting with ``skip`` are dropped unread);
        ``subscribed`` is called once the subscription holds. Returns never: raises redis-py's
        ``ConnectionError`` when the connection fails or falls silent; cancel it to stop."""
        loop = asyncio.get_running_loop()
        parts = self._url
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                if parts.scheme == "unix":
                    transport, listener = await loop.create_unix_connection(
                        lambda: _Listener(on_message, skip), parts.path
                    )
                else:
                    transport, listener = await loop.create_connection(
                        lambda: _Listener(on_message, skip),
                        parts.hostname or "127.0.0.1",
                        parts.port or 6379,
                        ssl=ssl.create_default_context() if parts.scheme == "rediss" else None,
                    )
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot reach Redis: {exc}") from exc
        try:
            if self._password is not None:
                auth = (self._username, self._password) if self._username else (self._password,)
                transport.write(_pack(("AUTH", *auth)))
            # Named after its channel, so an operator's CLIENT LIST tells what it is.
            name = "".join(c if c.isalnum() or c in ":-_" else "_" for c in channel)
            transport.write(_pack(("CLIENT", "SETNAME", name)))
            transport.write(_pack(("SUBSCRIBE", channel)))
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await listener.subscribed
            if subscribed is not None:
                subscribed()
            while not listener.closed.done():
                await asyncio.wait([listener.closed], timeout=LISTEN_PING_S)
                if time.monotonic() - listener.heard > 2 * LISTEN_PING_S:
                    listener._fail("Redis fell silent")
                elif not listener.closed.done():
                    transport.write(_pack(("PING",)))
            raise RedisConnectionError(f"event channel lost: {listener.closed.result()}")
        except TimeoutError as exc:
            raise RedisConnectionError("Redis did not confirm the subscription") from exc
        finally:
            transport.abort()

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


HOT_REDIS = web.AppKey("hot_redis", PipelinedRedis)
