"""This process's live media: one relay per stream, its publisher and viewer sessions.

A stream's media lives on the process its publisher reached. That process claims the stream in
Redis (``{ns}:media:{stream<id>}`` = its own URL, refreshed while it holds the stream), so a WHEP
request arriving at another process is redirected there. Whether a stream is on air (its
publisher sends frames) is told to ``on_air`` as it changes, for the live rooms.

Nothing is kept for a stream nobody publishes or watches: a stream's relay exists from a publish
(with the key) until its publisher and its last viewer have gone. Rotating the key cuts the
publisher off, ending the show cuts everyone off; both are heard from the event bus, so the
process holding the stream acts wherever the change was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiortc import RTCIceServer
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce.events.bus import EventBus
from livecommerce.events.streams import StreamEnded, StreamKeyRotated
from livecommerce.media.addressquota import AddressQuota
from livecommerce.media.iceconfig import IceConfig
from livecommerce.media.relay import KINDS, StreamNotLive, StreamRelay
from livecommerce.media.sessions import (
    CONNECT_TIMEOUT_S,
    PublisherSession,
    ViewerSession,
    accept_publisher,
    accept_viewer,
)

log = logging.getLogger(__name__)

# Told each change, and again every few seconds while on air (the record of it expires).
OnAir = Callable[[int, bool], Awaitable[None]]
CLAIM_TTL_S = 15
WATCH_EVERY_S = 0.25
VIEWERS_PER_ADDRESS = 20
REPLACE_WAIT_S = 2.0
"""How long a new publish waits for a current publisher that is still connecting to connect."""


class AlreadyPublishing(Exception):
    """The stream already has a connected publisher."""


@dataclass
class _Stream:
    relay: StreamRelay
    publisher: PublisherSession | None = None
    viewers: dict[str, ViewerSession] = field(default_factory=dict)
    on_air: bool = False
    negotiating: int = 0
    """Offers being answered for this stream: it is not idle while one is."""
    dropped: bool = False
    """Forgotten (the show ended, or the process stops): it takes no new session."""
    watcher: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return self.publisher is None and not self.viewers and self.negotiating == 0


@dataclass(frozen=True)
class _Resource:
    stream_id: int
    session: PublisherSession | ViewerSession
    address: str | None = None
    """The viewer's client address, whose quota slot the session holds."""


class MediaHub:
    def __init__(
        self,
        ice: IceConfig,
        redis: Redis,
        namespace: str,
        own_url: str,
        on_air: OnAir,
        events: EventBus,
        announced_address: str = "",
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        viewers_per_address: int = VIEWERS_PER_ADDRESS,
    ) -> None:
        self._ice = ice
        self._announced = announced_address
        self._redis = redis
        self._ns = namespace
        self.own_url = own_url.rstrip("/")
        self._on_air = on_air
        self.connect_timeout = connect_timeout
        self.viewer_quota = AddressQuota(viewers_per_address)
        self._streams: dict[int, _Stream] = {}
        self._resources: dict[str, _Resource] = {}
        self._closed = False
        events.subscribe(StreamKeyRotated, self._key_rotated)
        events.subscribe(StreamEnded, self._ended)

    def _claim_key(self, stream_id: int) -> str:
        return f"{self._ns}:media:{{stream{stream_id}}}"

    def _stream(self, stream_id: int) -> _Stream:
        """The stream's relay, made for a publisher (who proved the key) if there is none."""
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = _Stream(StreamRelay())
            stream.watcher = asyncio.create_task(
                self._watch(stream_id, stream), name=f"media-{stream_id}"
            )
            self._streams[stream_id] = stream
        return stream

    def ice_servers(self) -> list[RTCIceServer]:
        return list(self._ice.rtc_configuration().iceServers or [])

    def relay(self, stream_id: int) -> StreamRelay | None:
        stream = self._streams.get(stream_id)
        return stream.relay if stream else None

    def is_on_air(self, stream_id: int) -> bool:
        stream = self._streams.get(stream_id)
        return bool(stream and stream.on_air)

    def stream_count(self) -> int:
        """Streams this process keeps a relay for (publishing or watched)."""
        return len(self._streams)

    async def owner(self, stream_id: int) -> str | None:
        """The URL of the process holding the stream's media, if any process does."""
        if stream_id in self._streams and self._streams[stream_id].publisher:
            return self.own_url
        try:
            found = await self._redis.get(self._claim_key(stream_id))
        except RedisError:
            return None
        return found.decode() if isinstance(found, bytes) else found

    async def publish(self, stream_id: int, offer_sdp: str) -> tuple[str, str]:
        """WHIP: answer the publisher's offer; returns the answer and the session's resource id.

        Refused with :class:`AlreadyPublishing` while another publisher holds the stream
        (connected and sending); one that never connected, or fell silent, is replaced.
        Call it only once the stream key was checked.
        """
        if self._closed:
            raise StreamNotLive("the media relay is shutting down")
        stream = self._stream(stream_id)
        stream.negotiating += 1
        try:
            await self._replace_stale_publisher(stream)
            answer, session = await accept_publisher(
                stream.relay,
                _loopback_only(offer_sdp, self._ice),
                self._ice.rtc_configuration(),
                self.connect_timeout,
            )
        finally:
            stream.negotiating -= 1
        if stream.dropped or (stream.publisher is not None and not stream.publisher.closed):
            await session.close()  # the show ended, or another publisher won the race
            if stream.dropped:
                raise StreamNotLive("this show has ended")
            raise AlreadyPublishing("this stream already has a connected publisher")
        stream.publisher = session
        await self._claim(stream_id)
        return _announce(answer, self._announced), self._remember(_Resource(stream_id, session))

    async def _replace_stale_publisher(self, stream: _Stream) -> None:
        current = stream.publisher
        if current is None or current.closed:
            return
        if await current.holds_stream(REPLACE_WAIT_S):
            raise AlreadyPublishing("this stream already has a connected publisher")
        if stream.publisher is current:
            log.info("a new publisher replaces one that is not connected")
            await self._forget_session(current)

    async def play(self, stream_id: int, offer_sdp: str, address: str) -> tuple[str, str]:
        """WHEP: answer a viewer's offer from ``address``.

        Raises ``StreamNotLive`` unless this process relays the stream (its publisher is here,
        or gone with viewers still waiting for it): nothing is kept for a stream that is not,
        and ``TooManySessions`` if ``address`` holds its quota of sessions already.
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.dropped or not any(map(stream.relay.codec, KINDS)):
            raise StreamNotLive("this stream is not on air")
        self.viewer_quota.take(address)
        stream.negotiating += 1
        try:
            answer, session = await accept_viewer(
                stream.relay,
                _loopback_only(offer_sdp, self._ice),
                self._ice.rtc_configuration(),
                self.connect_timeout,
            )
        except BaseException:
            self.viewer_quota.give_back(address)
            raise
        finally:
            stream.negotiating -= 1
        resource = self._remember(_Resource(stream_id, session, address))
        if stream.dropped:
            await self.end(resource)
            raise StreamNotLive("this show has ended")
        stream.viewers[resource] = session
        return _announce(answer, self._announced), resource

    def session(self, resource: str) -> tuple[int, PublisherSession | ViewerSession] | None:
        found = self._resources.get(resource)
        return (found.stream_id, found.session) if found else None

    async def end(self, resource: str) -> bool:
        """DELETE of a WHIP or WHEP resource; False if it is unknown (or already ended)."""
        found = self._resources.pop(resource, None)
        if found is None:
            return False
        await self._let_go(resource, found)
        return True

    async def _let_go(self, resource: str, found: _Resource) -> None:
        """Close a forgotten session and give back what it held (exactly once per resource)."""
        if found.address is not None:
            self.viewer_quota.give_back(found.address)
        stream = self._streams.get(found.stream_id)
        if stream is not None:
            stream.viewers.pop(resource, None)
            if stream.publisher is found.session:
                stream.publisher = None
        await found.session.close()

    async def _forget_session(self, session: PublisherSession | ViewerSession) -> None:
        for resource, found in list(self._resources.items()):
            if found.session is session:
                await self.end(resource)
                return
        await session.close()

    def viewer_count(self, stream_id: int) -> int:
        stream = self._streams.get(stream_id)
        return len(stream.viewers) if stream else 0

    def _remember(self, found: _Resource) -> str:
        resource = secrets.token_urlsafe(16)
        self._resources[resource] = found
        return resource

    async def _claim(self, stream_id: int) -> None:
        try:
            await self._redis.set(self._claim_key(stream_id), self.own_url, ex=CLAIM_TTL_S)
        except RedisError as exc:
            log.warning("media claim of stream %s not recorded: %s", stream_id, exc)

    async def _release(self, stream_id: int) -> None:
        key = self._claim_key(stream_id)
        with contextlib.suppress(RedisError):
            if await self._redis.get(key) in (self.own_url, self.own_url.encode()):
                await self._redis.delete(key)

    async def _tell(self, stream_id: int, on_air: bool) -> None:
        try:
            await self._on_air(stream_id, on_air)
        except Exception:
            log.exception("telling the room that stream %s is on air failed", stream_id)

    # -- the stream key rotated, the show ended (on whichever process) ----------------------------

    async def _key_rotated(self, event: StreamKeyRotated) -> None:
        await self.cut(event.stream_id, ended=False)

    async def _ended(self, event: StreamEnded) -> None:
        await self.cut(event.stream_id, ended=True)

    async def cut(self, stream_id: int, *, ended: bool) -> None:
        """End the stream's publisher session now (its key changed, or the show ended); when the
        show ended, its viewers too, and forget the stream. The room hears it went off air."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if ended:
            await self._drop(stream_id, stream)
            return
        publisher = stream.publisher
        if publisher is not None:
            log.info("cutting off the publisher of stream %s: its key was rotated", stream_id)
            await self._forget_session(publisher)
            await self._release(stream_id)
        if stream.on_air:
            stream.on_air = False
            await self._tell(stream_id, False)

    async def _drop(self, stream_id: int, stream: _Stream) -> None:
        """Forget the stream: close its sessions and relay, release the claim, stop watching."""
        stream.dropped = True
        if self._streams.get(stream_id) is stream:
            del self._streams[stream_id]
        held = [r for r, found in self._resources.items() if found.session.relay is stream.relay]
        for resource in held:
            await self.end(resource)
        stream.relay.close()
        await self._release(stream_id)
        if stream.on_air:
            stream.on_air = False
            await self._tell(stream_id, False)
        watcher = stream.watcher
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
            await asyncio.wait({watcher})

    async def _watch(self, stream_id: int, stream: _Stream) -> None:
        """Tell on-air changes, keep the claim fresh, forget closed sessions and, once nobody
        publishes or watches, the stream itself."""
        beats = 0
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            for resource, viewer in list(stream.viewers.items()):
                if viewer.closed:
                    await self.end(resource)
            publisher = stream.publisher
            if publisher is not None and publisher.closed:
                await self._forget_session(publisher)
                publisher = stream.publisher
                if publisher is None:
                    await self._release(stream_id)
            on_air = publisher is not None and publisher.live
            if on_air != stream.on_air:
                stream.on_air = on_air
                await self._tell(stream_id, on_air)
            if stream.idle:
                await self._drop(stream_id, stream)
                return
            beats += 1
            if publisher is not None and beats % int(CLAIM_TTL_S / 3 / WATCH_EVERY_S) == 0:
                await self._claim(stream_id)
                if on_air:
                    with contextlib.suppress(Exception):
                        await self._on_air(stream_id, True)  # a refresh: its record expires

    async def close(self) -> None:
        """Close every session and relay; the streams go off air. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for stream_id, stream in list(self._streams.items()):
            await self._drop(stream_id, stream)
        for resource in list(self._resources):
            await self.end(resource)


def _loopback_only(offer_sdp: str, ice: IceConfig) -> str:
    """When every ICE host is a loopback address, drop the offer's other candidates.

    They cannot be reached from loopback anyway, and trying would send traffic off the machine
    (an mDNS ``.local`` name would even be looked up by multicast). Tests and benches run so.
    """
    if not ice.hosts or not all(ipaddress.ip_address(h).is_loopback for h in ice.hosts):
        return offer_sdp
    kept = []
    for line in offer_sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            try:
                if not ipaddress.ip_address(parts[4]).is_loopback:
                    continue
            except (IndexError, ValueError):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


def _announce(answer_sdp: str, address: str) -> str:
    """Behind 1:1 NAT (a cloud VM), announce the public address in place of the local one.

    The relay listens on its local address; peers send to the public one, which the NAT maps
    back, and our replies go out through the same mapping.
    """
    if not address:
        return answer_sdp
    lines = []
    for line in answer_sdp.splitlines():
        parts = line.split()
        if line.startswith("a=candidate:") and len(parts) > 7 and parts[7] == "host":
            parts[4] = address
            line = " ".join(parts)
        elif line.startswith("c=IN IP"):
            line = f"c=IN IP{6 if ':' in address else 4} {address}"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


MEDIA = web.AppKey("media", MediaHub)
