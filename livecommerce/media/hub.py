"""This process's live media: one relay per stream, its publisher and viewer sessions.

A stream's media lives on the process its publisher reached. That process claims the stream
through :class:`~livecommerce.media.routing.StreamRouting` (refreshed while it holds the stream),
so a WHEP request arriving at another process is sent there. Whether a stream is on air (its
publisher sends frames) is published on the event bus as it changes (:class:`StreamOnAir`,
:class:`StreamOffAir`), for the live rooms.

Nothing here polls. Each stream has one task, its keeper: woken when something changed (the
relay's publisher came or went, a session closed, an offer was answered), it brings the
bookkeeping up to date and tells the on-air changes, in order; every few seconds it refreshes the
stream's claim and on-air record, which expire so that a dead process cannot hold them.

Nothing is kept for a stream nobody publishes or watches: a stream's relay exists from a publish
(with the key) until its publisher and its last viewer have gone. Rotating the key cuts the
publisher off, ending the show cuts everyone off; both are heard from the event bus, so the
process holding the stream acts wherever the change was made.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

from aiohttp import web
from aiortc import RTCIceServer

from livecommerce.events.bus import EventBus
from livecommerce.events.streams import StreamEnded, StreamKeyRotated, StreamOffAir, StreamOnAir
from livecommerce.media.addressquota import AddressQuota
from livecommerce.media.routing import REFRESH_EVERY_S, StreamRouting
from livecommerce.media.rtc.iceconfig import IceConfig
from livecommerce.media.rtc.relay import KINDS, StreamNotLive, StreamRelay
from livecommerce.media.rtc.sessions import (
    CONNECT_TIMEOUT_S,
    PublisherSession,
    ViewerSession,
    accept_publisher,
    accept_viewer,
)

log = logging.getLogger(__name__)

VIEWERS_PER_ADDRESS = 20
REPLACE_WAIT_S = 2.0
"""How long a new publish waits for a current publisher that is still connecting to connect."""


class AlreadyPublishing(Exception):
    """The stream already has a connected publisher."""


@dataclass
class _Stream:
    changed: asyncio.Event
    """Set when the keeper has something to bring up to date."""
    relay: StreamRelay
    publisher: PublisherSession | None = None
    viewers: dict[str, ViewerSession] = field(default_factory=dict)
    on_air: bool = False
    """What was last told: changes are told under ``telling``, one at a time, in order."""
    telling: asyncio.Lock = field(default_factory=asyncio.Lock)
    negotiating: int = 0
    """Offers being answered for this stream: it is not idle while one is."""
    dropped: bool = False
    """Forgotten (the show ended, or the process stops): it takes no new session."""
    keeper: asyncio.Task[None] | None = None

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
        routing: StreamRouting,
        events: EventBus,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        viewers_per_address: int = VIEWERS_PER_ADDRESS,
    ) -> None:
        self._ice = ice
        self.routing = routing
        self._events = events
        self.connect_timeout = connect_timeout
        self.viewer_quota = AddressQuota(viewers_per_address)
        self._streams: dict[int, _Stream] = {}
        self._resources: dict[str, _Resource] = {}
        self._closed = False
        events.subscribe(StreamKeyRotated, self._key_rotated)
        events.subscribe(StreamEnded, self._ended)

    def _stream(self, stream_id: int) -> _Stream:
        """The stream's relay, made for a publisher (who proved the key) if there is none."""
        stream = self._streams.get(stream_id)
        if stream is None:
            changed = asyncio.Event()
            stream = _Stream(changed, StreamRelay(on_live=lambda _live: changed.set()))
            stream.keeper = asyncio.create_task(
                self._keep(stream_id, stream), name=f"media-{stream_id}"
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

    async def elsewhere(self, stream_id: int, path_qs: str) -> str | None:
        """Where a viewer asking this process for ``path_qs`` must go: the URL of the process
        holding the stream, unless this one relays it (or none holds it)."""
        if stream_id in self._streams:
            return None
        return await self.routing.elsewhere(stream_id, path_qs)

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
                self._ice.reachable(offer_sdp),
                self._ice.rtc_configuration(),
                self.connect_timeout,
                on_close=stream.changed.set,
            )
        finally:
            stream.negotiating -= 1
            stream.changed.set()  # alone, a failed offer leaves the stream idle
        if stream.dropped or (stream.publisher is not None and not stream.publisher.closed):
            await session.close()  # the show ended, or another publisher won the race
            if stream.dropped:
                raise StreamNotLive("this show has ended")
            raise AlreadyPublishing("this stream already has a connected publisher")
        stream.publisher = session
        await self.routing.claim(stream_id)
        return self._ice.announce(answer), self._remember(_Resource(stream_id, session))

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
                self._ice.reachable(offer_sdp),
                self._ice.rtc_configuration(),
                self.connect_timeout,
                on_close=stream.changed.set,
            )
        except BaseException:
            self.viewer_quota.give_back(address)
            raise
        finally:
            stream.negotiating -= 1
            stream.changed.set()
        resource = self._remember(_Resource(stream_id, session, address))
        if stream.dropped:
            await self.end(resource)
            raise StreamNotLive("this show has ended")
        stream.viewers[resource] = session
        return self._ice.announce(answer), resource

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
            stream.changed.set()  # it may be idle now
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

    # -- the stream key rotated, the show ended (on whichever process) ----------------------------

    async def _key_rotated(self, event: StreamKeyRotated) -> None:
        await self.cut(event.stream_id, ended=False)

    async def _ended(self, event: StreamEnded) -> None:
        await self.cut(event.stream_id, ended=True)

    async def cut(self, stream_id: int, *, ended: bool) -> None:
        """End the stream's publisher session now (its key changed, or the show ended); when the
        show ended, its viewers too, and forget the stream. The room has heard that it went off
        air when this returns."""
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
            await self.routing.release(stream_id)
        await self._settle(stream_id, stream)

    # -- the keeper: one task per stream ---------------------------------------------------------

    async def _keep(self, stream_id: int, stream: _Stream) -> None:
        """Settle the stream whenever something changed, refresh its claim and on-air record
        every REFRESH_EVERY_S, and once nobody publishes, watches or negotiates, drop it."""
        loop = asyncio.get_running_loop()
        refresh_at = loop.time() + REFRESH_EVERY_S
        while not stream.dropped:
            try:
                async with asyncio.timeout_at(refresh_at):
                    await stream.changed.wait()
            except TimeoutError:
                refresh_at = loop.time() + REFRESH_EVERY_S
                refreshing = True
            else:
                stream.changed.clear()
                refreshing = False
            try:
                if refreshing:
                    await self._refresh(stream_id, stream)
                else:
                    await self._settle(stream_id, stream)
                    if stream.idle:
                        await self._drop(stream_id, stream)
            except Exception:
                log.exception("keeping stream %s's media up to date failed", stream_id)

    async def _settle(self, stream_id: int, stream: _Stream) -> None:
        """Forget the sessions that closed by themselves, and tell an on-air change."""
        async with stream.telling:
            for resource, viewer in list(stream.viewers.items()):
                if viewer.closed:
                    await self.end(resource)
            publisher = stream.publisher
            if publisher is not None and publisher.closed:
                await self._forget_session(publisher)
                if stream.publisher is None:
                    await self.routing.release(stream_id)
            publisher = stream.publisher
            await self._tell(stream_id, stream, publisher is not None and publisher.live)

    async def _refresh(self, stream_id: int, stream: _Stream) -> None:
        """Renew what expires: the claim while a publisher is here, the on-air record while it
        is on air."""
        async with stream.telling:
            if stream.dropped:
                return
            if stream.publisher is not None:
                await self.routing.claim(stream_id)
            if stream.on_air:
                await self._publish(StreamOnAir(stream_id=stream_id))

    async def _tell(self, stream_id: int, stream: _Stream, on_air: bool) -> None:
        """Publish a change of on air (hold ``stream.telling``: changes go out in order)."""
        if on_air == stream.on_air:
            return
        stream.on_air = on_air
        await self._publish(StreamOnAir(stream_id) if on_air else StreamOffAir(stream_id))

    async def _publish(self, event: StreamOnAir | StreamOffAir) -> None:
        try:
            await self._events.publish(event)
        except Exception as exc:
            # Subscribers here have heard it; Redis did not take it for the other processes.
            log.warning(
                "stream %s: %s not sent to other processes: %s", event.stream_id, event.name, exc
            )

    async def _drop(self, stream_id: int, stream: _Stream) -> None:
        """Forget the stream: close its sessions and relay, release the claim, stop its keeper;
        the room hears it went off air."""
        if not stream.dropped:
            stream.dropped = True
            if self._streams.get(stream_id) is stream:
                del self._streams[stream_id]
            held = [
                r for r, found in self._resources.items() if found.session.relay is stream.relay
            ]
            for resource in held:
                await self.end(resource)
            stream.relay.close()
            await stream.relay.wait_closed()
            await self.routing.release(stream_id)
        async with stream.telling:
            keeper = stream.keeper
            if keeper is not None and keeper is not asyncio.current_task():
                # Not in the middle of telling (we hold ``telling``): waiting for a change.
                keeper.cancel()
                await asyncio.wait({keeper})
            await self._tell(stream_id, stream, False)

    async def close(self) -> None:
        """Close every session and relay; the streams go off air. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for stream_id, stream in list(self._streams.items()):
            await self._drop(stream_id, stream)
        for resource in list(self._resources):
            await self.end(resource)


MEDIA = web.AppKey("media", MediaHub)
