"""This process's live media: one relay per stream, its publisher and viewer sessions.

A stream's media lives on the process its publisher reached. That process claims the stream in
Redis (``{ns}:media:{stream<id>}`` = its own URL, refreshed while it holds the stream), so a WHEP
request arriving at another process is redirected there. Whether a stream is on air (its
publisher sends frames) is told to ``on_air`` as it changes, for the live rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiortc import RTCIceServer
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livecommerce.media.iceconfig import IceConfig
from livecommerce.media.relay import StreamRelay
from livecommerce.media.sessions import (
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


class AlreadyPublishing(Exception):
    """The stream already has a connected publisher."""


@dataclass
class _Stream:
    relay: StreamRelay
    publisher: PublisherSession | None = None
    viewers: dict[str, ViewerSession] = field(default_factory=dict)
    on_air: bool = False
    watcher: asyncio.Task[None] | None = None


class MediaHub:
    def __init__(
        self,
        ice: IceConfig,
        redis: Redis,
        namespace: str,
        own_url: str,
        on_air: OnAir,
        announced_address: str = "",
    ) -> None:
        self._ice = ice
        self._announced = announced_address
        self._redis = redis
        self._ns = namespace
        self.own_url = own_url.rstrip("/")
        self._on_air = on_air
        self._streams: dict[int, _Stream] = {}
        self._resources: dict[str, tuple[int, PublisherSession | ViewerSession]] = {}
        self._closed = False

    def _claim_key(self, stream_id: int) -> str:
        return f"{self._ns}:media:{{stream{stream_id}}}"

    def _stream(self, stream_id: int) -> _Stream:
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

        Refused with :class:`AlreadyPublishing` while another publisher is connected.
        """
        stream = self._stream(stream_id)
        if stream.publisher is not None and not stream.publisher.closed:
            raise AlreadyPublishing(stream_id)
        answer, session = await accept_publisher(
            stream.relay, _loopback_only(offer_sdp, self._ice), self._ice.rtc_configuration()
        )
        if stream.publisher is not None and not stream.publisher.closed:
            await session.close()  # another publisher won the race while we negotiated
            raise AlreadyPublishing(stream_id)
        stream.publisher = session
        await self._claim(stream_id)
        return _announce(answer, self._announced), self._remember(stream_id, session)

    async def play(self, stream_id: int, offer_sdp: str) -> tuple[str, str]:
        """WHEP: answer a viewer's offer (``StreamNotLive`` if nothing was ever published)."""
        stream = self._stream(stream_id)
        answer, session = await accept_viewer(
            stream.relay, _loopback_only(offer_sdp, self._ice), self._ice.rtc_configuration()
        )
        resource = self._remember(stream_id, session)
        stream.viewers[resource] = session
        return _announce(answer, self._announced), resource

    def session(self, resource: str) -> tuple[int, PublisherSession | ViewerSession] | None:
        return self._resources.get(resource)

    async def end(self, resource: str) -> bool:
        """DELETE of a WHIP or WHEP resource; False if it is unknown (or already ended)."""
        found = self._resources.pop(resource, None)
        if found is None:
            return False
        stream_id, session = found
        await session.close()
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.viewers.pop(resource, None)
            if stream.publisher is session:
                stream.publisher = None
        return True

    def viewer_count(self, stream_id: int) -> int:
        stream = self._streams.get(stream_id)
        return len(stream.viewers) if stream else 0

    def _remember(self, stream_id: int, session: PublisherSession | ViewerSession) -> str:
        resource = secrets.token_urlsafe(16)
        self._resources[resource] = (stream_id, session)
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

    async def _watch(self, stream_id: int, stream: _Stream) -> None:
        """Tell on-air changes, keep the claim fresh, forget closed sessions."""
        beats = 0
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            for resource, viewer in list(stream.viewers.items()):
                if viewer.closed:
                    stream.viewers.pop(resource, None)
                    self._resources.pop(resource, None)
            publisher = stream.publisher
            if publisher is not None and publisher.closed:
                stream.publisher = publisher = None
                for resource, (_sid, session) in list(self._resources.items()):
                    if session.closed:
                        self._resources.pop(resource, None)
                await self._release(stream_id)
            on_air = publisher is not None and publisher.live
            if on_air != stream.on_air:
                stream.on_air = on_air
                try:
                    await self._on_air(stream_id, on_air)
                except Exception:
                    log.exception("telling the room that stream %s is on air failed", stream_id)
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
        streams, self._streams = self._streams, {}
        for stream_id, stream in streams.items():
            if stream.watcher is not None:
                stream.watcher.cancel()
            for _resource, (_sid, session) in list(self._resources.items()):
                if _sid == stream_id:
                    await session.close()
            stream.relay.close()
            await self._release(stream_id)
            if stream.on_air:
                with contextlib.suppress(Exception):
                    await self._on_air(stream_id, False)
        self._resources.clear()


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
