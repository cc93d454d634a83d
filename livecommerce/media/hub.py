"""This process's live media: one relay per stream, its publisher and viewer sessions.

A stream's media lives on the process its publisher reached, the holder. That process claims the
stream through :class:`~livecommerce.media.routing.StreamRouting` (refreshed while it holds the
stream). A WHEP viewer arriving at another process is served there: that process pulls one copy
of the stream from the holder (an internal WHEP session, through an :class:`Upstream`) into its
own relay, for all its viewers of the stream; the pull ends :data:`PULL_GRACE_S` after its last
viewer left, and follows the stream when another process becomes its holder. Only the holder
publishes on the event bus whether a stream is on air (its publisher sends frames) as it changes
(:class:`StreamOnAir`, :class:`StreamOffAir`), for the live rooms; a pull never does.

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
from typing import Protocol

from aiohttp import web
from aiortc import RTCIceServer

from livecommerce.events.bus import EventBus
from livecommerce.events.streams import StreamEnded, StreamKeyRotated, StreamOffAir, StreamOnAir
from livecommerce.media.addressquota import AddressQuota
from livecommerce.media.routing import REFRESH_EVERY_S, StreamRouting
from livecommerce.media.rtc.iceconfig import IceConfig
from livecommerce.media.rtc.relay import KINDS, StreamNotLive, StreamRelay
from livecommerce.media.rtc.sendload import SendLoad
from livecommerce.media.rtc.sessions import (
    CONNECT_TIMEOUT_S,
    PublisherSession,
    ViewerSession,
    accept_publisher,
    accept_viewer,
    pull_stream,
)

log = logging.getLogger(__name__)

VIEWERS_PER_ADDRESS = 20
AT_CAPACITY_RETRY_S = 5.0
"""The Retry-After of a viewer refused because the process is at capacity."""
REPLACE_WAIT_S = 2.0
"""How long a new publish waits for a current publisher that is still connecting to connect."""
PULL_GRACE_S = 2.0
"""How long a pull from the holder outlives this process's last viewer of the stream."""


class Upstream(Protocol):
    """How this process reaches the process holding a stream (internal WHEP, over HTTP)."""

    async def offer(self, holder: str, stream_id: int, offer_sdp: str) -> tuple[str, str]:
        """WHEP to ``holder``'s internal address: the answer, and the session's URL."""
        ...

    async def hang_up(self, session_url: str) -> None:
        """End a session :meth:`offer` made (best effort: never raises)."""
        ...

    async def end_publisher(self, holder: str, stream_id: int, resource: str) -> bool:
        """End the WHIP session ``resource`` on ``holder``; False if it has no such session."""
        ...

    async def end_viewer(self, holder: str, stream_id: int, resource: str) -> bool:
        """End the WHEP session ``resource`` on ``holder``; False if it has no such session."""
        ...


@dataclass
class _Pull:
    """This process's one internal WHEP session to the stream's holder."""

    holder: str
    connecting: asyncio.Task[PublisherSession | None] | None = None
    session: PublisherSession | None = None
    url: str | None = None
    """The holder's URL for the session, to end it."""

    @property
    def over(self) -> bool:
        connecting = self.connecting
        done = connecting is None or connecting.done()
        return done and (self.session is None or self.session.closed)


class AtCapacity(Exception):
    """This process cannot take another viewer without slowing down those it has."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


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
    fed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a publisher (here, or the pull's) has sent a frame: the relay has codecs."""
    pull: _Pull | None = None
    """This process pulls the stream from its holder (and has no publisher of its own)."""
    idle_since: float | None = None
    idle_timer: asyncio.TimerHandle | None = None

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
        upstream: Upstream | None = None,
        redirect: bool = False,
        pull_grace: float = PULL_GRACE_S,
        max_viewers: int = 0,
    ) -> None:
        self._ice = ice
        self.routing = routing
        self._events = events
        self._upstream = upstream
        self._pulling = upstream is not None and not redirect
        """Whether viewers of a stream held elsewhere are served here, from a pull; if not,
        they are redirected to the holder (WHEP_REDIRECT)."""
        self.pull_grace = pull_grace
        self.connect_timeout = connect_timeout
        self.viewer_quota = AddressQuota(viewers_per_address)
        self.load = SendLoad(max_viewers)
        """What sending to viewers costs this process: a WHEP viewer it cannot take is refused
        (:class:`AtCapacity`); ``max_viewers`` (0: none) is a hard cap."""
        self._streams: dict[int, _Stream] = {}
        self._resources: dict[str, _Resource] = {}
        self._closed = False
        events.subscribe(StreamKeyRotated, self._key_rotated)
        events.subscribe(StreamEnded, self._ended)

    def _stream(self, stream_id: int) -> _Stream:
        """The stream's relay, made for a publisher (who proved the key) if there is none."""
        stream = self._streams.get(stream_id)
        if stream is None:
            changed, fed = asyncio.Event(), asyncio.Event()

            def on_live(live: bool) -> None:
                changed.set()
                if live:
                    fed.set()

            relay = StreamRelay(on_live=on_live, load=self.load)
            stream = _Stream(changed, relay, fed=fed)
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

    def pull_count(self) -> int:
        """Streams this process pulls from their holders (one pull each, however many viewers)."""
        return sum(1 for stream in self._streams.values() if stream.pull is not None)

    async def elsewhere(self, stream_id: int, path_qs: str) -> str | None:
        """Where a viewer asking this process for ``path_qs`` must go: the URL of the process
        holding the stream, unless this one relays it (or none holds it), or pulls the streams
        it does not hold."""
        if stream_id in self._streams or self._pulling:
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
        if stream.pull is not None:
            # This process holds the stream now: its viewers see this publisher, not a pull.
            await self._end_pull(stream)
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

    async def play(self, stream_id: int, offer_sdp: str, address: str | None) -> tuple[str, str]:
        """WHEP: answer a viewer's offer from ``address``.

        A stream another process holds is pulled from it first (one pull per stream, shared by
        this process's viewers). Raises ``StreamNotLive`` unless this process then relays the
        stream (its publisher, or its pull, is here, or gone with viewers still waiting for it):
        nothing is kept for a stream that is not, ``TooManySessions`` if ``address`` holds
        its quota of sessions already, and ``AtCapacity`` if this process cannot take another
        viewer without its viewers falling below full frame rate.

        ``address`` None is another process's pull (internal WHEP, authenticated by the caller):
        it takes no quota, is never pulled in turn, and is answered with local addresses.
        """
        if address is not None and self._pulling:
            await self._pull_if_held_elsewhere(stream_id)
        stream = self._streams.get(stream_id)
        if stream is None or stream.dropped or not any(map(stream.relay.codec, KINDS)):
            raise StreamNotLive("this stream is not on air")
        if address is None and stream.pull is not None:
            raise StreamNotLive("this process does not hold the stream")  # no chains of pulls
        if address is not None:
            # Another process's pull is let in regardless: its viewers were admitted there.
            refusal = self.load.refusal(self.session_count(), self._live_viewers())
            if refusal is not None:
                log.warning("refusing a WHEP viewer: %s", refusal)
                raise AtCapacity(refusal, AT_CAPACITY_RETRY_S)
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
            if address is not None:
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
        if address is not None and self._upstream is not None:
            # Its DELETE may reach another process: that one finds this one here.
            await self.routing.record_viewer(resource)
        return (answer if address is None else self._ice.announce(answer)), resource

    async def end_elsewhere(self, stream_id: int, resource: str) -> bool | None:
        """End a WHIP session this process does not have on the process holding the stream:
        whether it had it, or None if no other process holds the stream (or none is reached
        through internal requests here)."""
        if self._upstream is None:
            return None
        holder = await self.routing.internal_holder(stream_id)
        if holder is None:
            return None
        return await self._upstream.end_publisher(holder, stream_id, resource)

    async def end_viewer_elsewhere(self, stream_id: int, resource: str) -> bool | None:
        """End a WHEP session this process does not have on the process serving it: whether
        that process had it, or None if no other process is recorded as serving it."""
        if self._upstream is None:
            return None
        holder = await self.routing.viewer_holder(resource)
        if holder is None:
            return None
        return await self._upstream.end_viewer(holder, stream_id, resource)

    # -- pulling a stream another process holds --------------------------------------------------

    async def _pull_if_held_elsewhere(self, stream_id: int) -> None:
        """Have the stream's relay fed by a pull from its holder, if another process holds it
        and this one has no publisher of it; returns once frames came (or could not)."""
        stream = self._streams.get(stream_id)
        if stream is not None and (stream.dropped or stream.publisher is not None):
            return
        if stream is None or stream.pull is None:
            holder = await self.routing.internal_holder(stream_id)
            if holder is None or self._closed:
                return
            stream = self._stream(stream_id)
            if stream.dropped or stream.publisher is not None:
                return
            if stream.pull is None:
                self._start_pull(stream_id, stream, holder)
        pull = stream.pull
        if pull is None or pull.connecting is None:
            return
        stream.negotiating += 1  # not idle while a viewer waits for the pull
        try:
            done, _ = await asyncio.wait({pull.connecting}, timeout=self.connect_timeout)
            if done and pull.session is not None:
                try:
                    async with asyncio.timeout(self.connect_timeout):
                        await stream.fed.wait()
                except TimeoutError:
                    log.info("stream %s: nothing came from %s in time", stream_id, pull.holder)
        finally:
            stream.negotiating -= 1
            stream.changed.set()

    def _start_pull(self, stream_id: int, stream: _Stream, holder: str) -> None:
        pull = _Pull(holder)
        stream.pull = pull
        pull.connecting = asyncio.create_task(
            self._connect_pull(stream_id, stream, pull), name=f"media-{stream_id}-pull"
        )

    async def _connect_pull(
        self, stream_id: int, stream: _Stream, pull: _Pull
    ) -> PublisherSession | None:
        upstream = self._upstream
        assert upstream is not None

        async def answer(offer_sdp: str) -> str:
            answer_sdp, pull.url = await upstream.offer(pull.holder, stream_id, offer_sdp)
            return self._ice.reachable(answer_sdp)

        try:
            session = await pull_stream(
                stream.relay,
                self._ice.rtc_configuration(),
                answer,
                self.connect_timeout,
                name=f"pull of stream {stream_id} from {pull.holder}",
                on_close=stream.changed.set,
            )
        except Exception as exc:
            log.warning("stream %s: pulling it from %s failed: %s", stream_id, pull.holder, exc)
            return None
        finally:
            stream.changed.set()
        pull.session = session
        log.info("stream %s: pulling it from %s", stream_id, pull.holder)
        return session

    async def _end_pull(self, stream: _Stream) -> None:
        """Stop pulling the stream (close this side, then the holder's session)."""
        pull, stream.pull = stream.pull, None
        if pull is None:
            return
        if pull.connecting is not None and not pull.connecting.done():
            pull.connecting.cancel()
            await asyncio.wait({pull.connecting})
        if pull.session is not None:
            await pull.session.close()
        if pull.url is not None and self._upstream is not None:
            await self._upstream.hang_up(pull.url)

    async def _follow_holder(self, stream_id: int, stream: _Stream) -> None:
        """Viewers here with no publisher here: pull from the holder, a new one if it changed
        (a publisher reconnected to another process)."""
        if not self._pulling or stream.publisher is not None:
            return
        if not any(
            found.address is not None
            for found in map(self._resources.get, stream.viewers)
            if found is not None
        ):
            return  # no viewer of its own: another process's pull moves by itself
        holder = await self.routing.internal_holder(stream_id)
        if holder is None or (stream.pull is not None and stream.pull.holder == holder):
            return
        if stream.dropped:
            return
        log.info("stream %s: its holder is now %s", stream_id, holder)
        await self._end_pull(stream)
        self._start_pull(stream_id, stream, holder)

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
            if self._upstream is not None:
                await self.routing.forget_viewer(resource)
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

    def session_count(self) -> int:
        """Viewers this process serves or is answering, of every stream."""
        return sum(len(s.viewers) + s.negotiating for s in self._streams.values())

    def _live_viewers(self) -> int:
        return sum(
            any(viewer.live for viewer in session.viewers)
            for stream in self._streams.values()
            for session in stream.viewers.values()
        )

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
                    if stream.idle and self._grace_over(stream):
                        await self._drop(stream_id, stream)
            except Exception:
                log.exception("keeping stream %s's media up to date failed", stream_id)

    def _grace_over(self, stream: _Stream) -> bool:
        """Whether an idle stream may go: at once, unless it is pulled, which waits a grace
        in case a viewer comes back (the keeper is woken when it is over)."""
        if stream.pull is None:
            return True
        loop = asyncio.get_running_loop()
        if stream.idle_since is None:
            stream.idle_since = loop.time()
        left = stream.idle_since + self.pull_grace - loop.time()
        if left <= 0:
            return True
        if stream.idle_timer is not None:
            stream.idle_timer.cancel()
        stream.idle_timer = loop.call_later(left, stream.changed.set)
        return False

    async def _settle(self, stream_id: int, stream: _Stream) -> None:
        """Forget the sessions that closed by themselves, and tell an on-air change."""
        async with stream.telling:
            if not stream.idle:
                stream.idle_since = None
            for resource, viewer in list(stream.viewers.items()):
                if viewer.closed:
                    await self.end(resource)
            if stream.pull is not None and stream.pull.over:
                # The holder ended it, or went away, or a publisher here replaced it. Viewers
                # wait, as for a publisher that left; the keeper looks for a holder again.
                await self._end_pull(stream)
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
            await self._follow_holder(stream_id, stream)

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
            if stream.idle_timer is not None:
                stream.idle_timer.cancel()
            await self._end_pull(stream)
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
