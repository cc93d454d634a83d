"""Everything that leans on python-engineio (and aiohttp's websocket) beyond their documented API.

- The websocket (``LiveWebSocket``, built by ``Fanout.websocket``) replaces engine.io's aiohttp
  websocket driver (``server._async["websocket"]``): no permessage-deflate, frames written to
  the transport at once, each socket's unsent bytes bounded (``Fanout``: slow sockets skip
  ephemeral events, keep the latest state, and are cut when stuck). Broadcasts are written by
  ``socketioseam.LiveRedisManager`` through ``deliver``; the rest goes through engine.io's
  per-socket queue, replaced by ``SocketQueue`` (``create_queue``), which a socket served by
  ``_serve`` binds to its websocket (no writer task). It reads engine.io sockets'
  ``upgraded``, ``upgrading``, ``closing``, ``closed``, ``queue`` and the server's ``sockets``.
- A socket that starts on websocket is served by ``LiveWebSocket._serve`` instead of engine.io's
  ``_websocket_handler`` (an upgrade from long-polling still gets engine.io's): it sets the
  socket's ``connected``/``upgraded``, hands each packet to its ``receive`` in line (the server's
  ``async_handlers`` off) and closes it with ``close(reason=TRANSPORT_CLOSE)`` as engine.io does.
- A closed websocket's ``exception()`` loses its traceback (a cycle through its frames). Its
  ``101`` goes out with engine.io's OPEN, in one write (``aiohttpseam.HeldHeadResponse``).
- ``AsyncSocket.schedule_ping`` is replaced (the class's, once per process; other engine.io
  servers keep engine.io's own): a ping wheel in ``Fanout`` sends the PINGs, reading and
  writing the socket's ``last_ping`` as engine.io does, instead of a sleeping task per socket.
- A websocket's environ is slimmed once connected (``KEPT_ENVIRON``): python-socketio keeps it
  per socket, and nothing after a namespace's connect reads the rest.
- ``peer_address`` reads the aiohttp request that engine.io's aiohttp driver puts in the
  environ (its ``REMOTE_ADDR`` is always 127.0.0.1).

``check()`` runs at start-up and refuses versions this was not checked against.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
import weakref
from collections.abc import Callable
from enum import Enum
from importlib.metadata import version
from socket import SO_SNDBUF, SOL_SOCKET
from typing import Any

import engineio
import engineio.async_socket
from aiohttp import WSMsgType, web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from livecommerce.platform import aiohttpseam

CHECKED_VERSION = "4.15."  # python-engineio

log = logging.getLogger(__name__)


def install(eio: Any, fanout: Fanout) -> None:
    """Make ``eio``'s websockets ``LiveWebSocket``s registered in ``fanout``, its queues
    ``SocketQueue``s, and its pings ``fanout``'s."""
    # a copy: the driver's table is shared by every engine.io server of the process
    eio._async = {**eio._async, "websocket": fanout.websocket}
    eio.create_queue = SocketQueue
    # A message is handled in the reader's own step (LiveWebSocket._serve): engine.io would
    # start a task per message, before python-socketio starts its own per event.
    eio.async_handlers = False
    _PINGERS[eio] = fanout
    engineio.async_socket.AsyncSocket.schedule_ping = _schedule_ping


def queue_messages(eio: Any, eio_sid: str, messages: list[Any]) -> None:
    """Put engine.io MESSAGE packets (``message_packets``) in a socket's queue, as engine.io's
    ``send`` would without an awaited ``put``; nothing if the socket is gone."""
    socket = eio.sockets.get(eio_sid)
    if socket is not None and not socket.closed:
        for packet in messages:
            socket.queue.put_nowait(packet)


def message_packets(encoded: list[str]) -> list[Any]:
    """engine.io MESSAGE packets carrying these encoded Socket.IO packets."""
    return [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]


def peer_address(environ: dict[str, Any]) -> str:
    """The TCP peer of a Socket.IO connection."""
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None)
    return str(remote) if remote else str(environ.get("REMOTE_ADDR", ""))


def check() -> None:
    """Refuse a python-engineio this was not checked against, and test what it leans on."""
    found = version("python-engineio")
    if not found.startswith(CHECKED_VERSION):
        raise RuntimeError(
            "livecommerce/live/transport/engineioseam.py was checked with python-engineio "
            f"{CHECKED_VERSION}x, not {found}"
        )
    aiohttpseam.check()  # the websocket's held 101 head
    fanout = Fanout(lambda event, args: (Delivery.ALWAYS, None), 1024, 1.0)
    eio = engineio.AsyncServer(async_mode="aiohttp")
    install(eio, fanout)
    if eio._async.get("websocket") != fanout.websocket:
        raise RuntimeError("engine.io no longer builds its websockets from _async['websocket']")
    socket = engineio.async_socket.AsyncSocket(eio, "check")
    if not isinstance(socket.queue, SocketQueue):
        raise RuntimeError("engine.io no longer builds a socket's queue with create_queue")
    handler = socket._websocket_handler
    if (
        handler.__self__ is not socket
        or not all(
            hasattr(socket, name)
            for name in ("upgraded", "upgrading", "closing", "closed", "queue", "sid")
        )
        or not isinstance(getattr(eio, "sockets", None), dict)
    ):
        raise RuntimeError("engine.io's socket no longer has the fields LiveWebSocket reads")
    socket.last_ping = time.time()
    socket.schedule_ping()
    if socket.last_ping is not None or not any(socket in due for due in fanout._pings.values()):
        raise RuntimeError("engine.io's socket no longer schedules its pings through last_ping")
    if not isinstance(getattr(eio, "ping_interval", None), int | float):
        raise RuntimeError("engine.io's server no longer keeps its ping_interval")
    if (
        eio.async_handlers is not False
        or not isinstance(getattr(eio, "ping_timeout", None), int | float)
        or not isinstance(getattr(eio, "max_http_buffer_size", None), int)
        or not hasattr(eio.reason, "TRANSPORT_CLOSE")
        or not hasattr(socket, "connected")
        or not all(
            hasattr(eio_exceptions, name) for name in ("UnknownPacketError", "SocketIsClosedError")
        )
    ):
        raise RuntimeError("engine.io no longer has what LiveWebSocket._serve leans on")
    if text_frame("42")[:2] != bytes((0x81, 2)):
        raise RuntimeError("websocket frame header")


_PINGERS: weakref.WeakKeyDictionary[Any, Fanout] = weakref.WeakKeyDictionary()
_ENGINEIO_SCHEDULE_PING = engineio.async_socket.AsyncSocket.schedule_ping
PING_TICKS = 10  # the ping wheel's ticks per second


def _schedule_ping(socket: Any) -> None:
    """engine.io's ``AsyncSocket.schedule_ping`` (after the handshake and after each PONG):
    engine.io starts a task per socket that sleeps ``ping_interval`` and sends a PING; ours puts
    the socket on its ``Fanout``'s ping wheel (one timer for every socket, no task each)."""
    fanout = _PINGERS.get(socket.server)
    if fanout is None:
        _ENGINEIO_SCHEDULE_PING(socket)
    elif socket.last_ping:  # engine.io's rule: only once the previous ping was answered
        socket.last_ping = None
        fanout.ping_later(socket)


# -- the websockets: frames written at once, unsent bytes bounded --------------------------------


class Delivery(Enum):
    """What a socket that fell behind gets of an event."""

    EPHEMERAL = "ephemeral"  # dropped for that socket (reactions, counts, chat)
    STATE = "state"  # only the latest of its group is kept until the socket catches up
    ALWAYS = "always"  # written anyway (answers, private events); a stuck socket is dropped


Classify = Callable[[str, list[Any]], tuple[Delivery, str | None]]
"""An event's name and arguments → how a slow socket gets it, and its state group (if any)."""


def text_frame(message: str | bytes) -> bytes:
    """One unmasked, uncompressed websocket frame (RFC 6455 §5.2): text, or binary for bytes."""
    if isinstance(message, str):
        opcode, payload = 0x81, message.encode()
    else:
        opcode, payload = 0x82, message
    size = len(payload)
    if size < 126:
        return bytes((opcode, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", opcode, 126, size) + payload
    return struct.pack("!BBQ", opcode, 127, size) + payload


class SocketQueue:
    """The part of ``asyncio.Queue`` engine.io uses for a socket's outgoing packets, light when
    idle (asyncio's holds four deques, about 3 KB, and its ``get`` coroutine becomes a task in
    ``wait_for``; this ``get`` is a future).

    ``empty()`` stays False from the moment a waiting ``get`` is handed a packet until its
    consumer calls ``get``/``get_nowait`` again: engine.io's writer does so in the same step in
    which it writes what it got, so a broadcast written directly never overtakes it. A queue
    ``bind``-ed to its websocket (one that started on websocket) has no writer: each packet is
    written as it is put, so it is always empty.
    """

    __slots__ = ("_getters", "_handed", "_items", "_joined", "_unfinished", "sink")

    def __init__(self) -> None:
        # lists, not deques (about 600 bytes each): a socket's queue holds a packet or two
        self._items: list[Any] | None = None
        self._getters: list[asyncio.Future[Any]] | None = None
        self._handed = False
        self._unfinished = 0
        self._joined: asyncio.Future[None] | None = None
        # the websocket that writes each packet as it is put (``bind``), instead of a writer
        self.sink: LiveWebSocket | None = None

    def bind(self, sink: LiveWebSocket, head: bytes = b"") -> None:
        """From now on, write each packet put to ``sink`` at once (no writer task reads this
        queue); ``head`` (the handshake's ``101``) and what was queued before go first, in one
        write. The end-of-writer ``None`` that engine.io puts for its own writer means nothing
        to a bound queue."""
        items, self._items = self._items or [], None
        frames = [text_frame(item.encode()) for item in items if item is not None]
        self.sink = sink
        if head or frames:
            sink.deliver(b"".join((head, *frames)), Delivery.ALWAYS, None)

    def empty(self) -> bool:
        return not self._items and not self._handed

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: Any) -> None:
        sink = self.sink
        if sink is not None:
            if item is not None:
                sink.deliver(text_frame(item.encode()), Delivery.ALWAYS, None)
            return
        self._unfinished += 1
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                self._handed = True
                getter.set_result(item)
                return
        self._getters = None
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def _pop(self) -> Any:
        assert self._items
        item = self._items.pop(0)
        if not self._items:
            self._items = None
        return item

    def get_nowait(self) -> Any:
        self._handed = False
        if not self._items:
            raise asyncio.QueueEmpty
        return self._pop()

    def get(self) -> asyncio.Future[Any]:
        self._handed = False
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._items:
            got.set_result(self._pop())
        elif self._getters is None:
            self._getters = [got]
        else:
            self._getters.append(got)
        return got

    def task_done(self) -> None:
        self._unfinished = max(0, self._unfinished - 1)
        if self._unfinished == 0 and self._joined is not None and not self._joined.done():
            self._joined.set_result(None)

    async def join(self) -> None:
        if self._unfinished:
            if self._joined is None or self._joined.done():
                self._joined = asyncio.get_running_loop().create_future()
            await self._joined


KEPT_ENVIRON = ("aiohttp.request", "REMOTE_ADDR", "HTTP_COOKIE", "HTTP_X_FORWARDED_FOR")


def _slim(environ: dict[str, Any]) -> None:
    """Forget what a connected socket's WSGI-style environ will not be asked again (a copy of
    every request header, kept per socket by python-socketio and by the frames of engine.io's
    handler for the whole connection): a namespace's connect reads only these."""
    kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
    environ.clear()
    environ.update(kept)


def _forget_traceback(exc: BaseException | None) -> None:
    """Let the exception a closed websocket keeps (``exception()``: the reset met sending the
    close frame to a peer that vanished, chained to the end of stream) go without its frames.
    They hold the response, which holds the exception: a cycle per peer that left without
    closing (the request, transport, handler and buffers, about 50 objects each), left to the
    collector's oldest generation until a full collection, then walked all at once; after a
    crowd of 10,000 went, joins cost twice as much while it lasted."""
    for _ in range(8):  # a chain is a few long
        if exc is None:
            return
        exc.__traceback__ = None
        exc = exc.__context__


class LiveWebSocket:
    """engine.io's aiohttp websocket driver (``engineio.async_drivers.aiohttp.WebSocket``), with
    permessage-deflate refused and frames written to the transport at once.

    engine.io builds it as ``factory(handler, server)`` and awaits it with the environ. A socket
    that started on websocket writes what engine.io sends at once (its queue is bound to it);
    after an upgrade from long-polling, engine.io's writer task calls ``send``. Broadcasts call
    ``deliver``.
    No write waits for the peer to read: what a socket has not taken stays in its transport's
    buffer, which ``Fanout`` bounds (see ``deliver``).
    """

    __slots__ = ("_fanout", "_sock", "_transport", "behind_since", "handler", "pending", "socket")

    def __init__(self, handler: Any, server: Any, fanout: Fanout) -> None:
        self.handler = handler
        self.socket = handler.__self__  # the engine.io socket whose _websocket_handler this is
        self._fanout = fanout
        self._sock: web.WebSocketResponse | None = None
        self._transport: asyncio.Transport | None = None
        self.pending: dict[str, bytes] | None = None  # the latest state frame of each group
        self.behind_since = 0.0

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        # compress=False: the permessage-deflate offer is declined (no zlib state per socket).
        sock = aiohttpseam.HeldHeadResponse(
            max_msg_size=self.socket.server.max_http_buffer_size, compress=False
        )
        await sock.prepare(request)
        head = aiohttpseam.take_head(sock)  # the 101: written with engine.io's first packets
        self._sock, self._transport = sock, request.transport
        _slim(environ)
        if self._transport is not None:
            # The kernel's share of the unsent bytes is bounded too (else it grows to tcp_wmem's
            # maximum, megabytes per stalled client).
            raw = self._transport.get_extra_info("socket")
            if raw is not None:
                raw.setsockopt(SOL_SOCKET, SO_SNDBUF, self._fanout.buffer_bytes)
        sid = self.socket.sid
        self._fanout.sockets[sid] = self
        try:
            if self.socket.connected:
                self.deliver(head, Delivery.ALWAYS, None)
                await self.handler(self)  # an upgrade from long-polling: engine.io's handshake
            else:
                await self._serve(head)
        finally:
            if self._fanout.sockets.get(sid) is self:
                del self._fanout.sockets[sid]
            self._fanout.watched.discard(self)
            _forget_traceback(sock.exception())
            # engine.io's socket may outlive its connection (the ping wheel holds it until its
            # tick): let it hold neither this websocket nor, through it, the response
            if self.socket.queue.sink is self:
                self.socket.queue.sink = None
            self._sock = self._transport = None
        return sock

    async def _serve(self, head: bytes) -> None:
        """engine.io's ``_websocket_handler`` for a socket that starts on websocket, lean: the
        reader awaits each frame under one timeout (engine.io starts a task and a ``wait_for``
        per message received) and hands it to engine.io's ``receive`` in line (``install`` turns
        engine.io's ``async_handlers`` off; python-socketio still runs each event's handler in a
        task of its own, so a slow handler does not hold the reader). There is no writer task:
        the socket's queue is bound to this websocket, so what engine.io sends (handshake
        answers, acks, pings, its CLOSE) is written as it is sent, in the order it is sent, one
        task per connection instead of two. The reader stops once engine.io has closed the
        socket (after its CLOSE), or when the peer stays quiet for a ping's round (a live client
        answers every PING). A frame engine.io cannot read, or one over
        ``max_http_buffer_size``, ends the connection with a close frame (engine.io's own handler
        raised, and aiohttp wrote a 500 into the upgraded stream)."""
        socket, sock = self.socket, self._sock
        assert sock is not None
        server = socket.server
        socket.connected = True
        socket.upgraded = True
        # the 101 and engine.io's OPEN in one write, then each packet as it is sent (no writer)
        socket.queue.bind(self, head)
        idle_s = server.ping_interval + server.ping_timeout
        while not socket.closed:  # engine.io closed it (its CLOSE packet is written)
            try:
                msg = await sock.receive(idle_s)
            except asyncio.CancelledError:
                break  # engine.io's rule: the clean-up below still runs
            except Exception:
                break  # the peer went quiet for longer than a ping's round, or the socket broke
            if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                break  # closed by the peer
            data = msg.data
            if len(data) > server.max_http_buffer_size:
                break
            try:
                pkt = eio_packet.Packet(encoded_packet=data)
            except (ValueError, TypeError, IndexError):
                break  # not an engine.io packet
            if not 0 <= pkt.packet_type < len(eio_packet.packet_names):
                break  # engine.io would fail naming it, with a traceback per packet
            try:
                await socket.receive(pkt)
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                break
            except Exception:
                log.exception("engine.io could not take a packet")
        await self.close()
        await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)

    async def close(self) -> None:
        if self._sock is not None:
            await self._sock.close()

    async def send(self, message: str | bytes) -> None:
        self.deliver(text_frame(message), Delivery.ALWAYS, None)

    async def wait(self) -> str | bytes:
        assert self._sock is not None
        msg = await self._sock.receive()
        if not isinstance(msg.data, bytes | str):
            raise OSError()
        return msg.data

    def direct(self) -> bool:
        """Whether a broadcast may be written now, ahead of nothing: on websocket, not closing,
        with no packet waiting in engine.io's queue (those go first, through it)."""
        socket = self.socket
        return bool(
            socket.upgraded
            and not socket.upgrading
            and not socket.closing
            and socket.queue.empty()
            and self._transport is not None
        )

    def deliver(self, frame: bytes, delivery: Delivery, group: str | None) -> None:
        """Write ``frame``, unless the socket is behind (more than ``Fanout.buffer_bytes``
        unsent): then an ephemeral frame is dropped and a state frame replaces the previous
        one of its group, written when the socket catches up."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > self._fanout.buffer_bytes:
            self._fanout.behind(self)
            if delivery is Delivery.EPHEMERAL:
                return
            if delivery is Delivery.STATE and group is not None:
                pending = self.pending if self.pending is not None else {}
                pending.pop(group, None)  # the newest goes last: groups keep their order
                pending[group] = frame
                self.pending = pending
                return
        elif self.pending:
            self.flush()
        transport.write(frame)

    def deliver_all(
        self, joined: bytes, frames: list[bytes], kinds: list[tuple[Delivery, str | None]]
    ) -> None:
        """``deliver`` for several frames: ``joined`` in one write unless the socket is behind."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self.pending or transport.get_write_buffer_size() > self._fanout.buffer_bytes:
            for frame, (delivery, group) in zip(frames, kinds, strict=True):
                self.deliver(frame, delivery, group)
            return
        transport.write(joined)

    def buffered(self) -> int:
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def flush(self) -> None:
        pending, self.pending = self.pending, None
        if pending and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(pending.values()))

    def abort(self) -> None:
        """Cut a socket that stays stuck: engine.io sees the connection end and disconnects it."""
        self.pending = None
        if self._transport is not None:
            self._transport.abort()


class Fanout:
    """The local websockets by engine.io id, and the ones behind, swept by ``keep_sweeping``."""

    def __init__(
        self,
        classify: Classify,
        buffer_bytes: int,
        stuck_s: float,
        unseen: frozenset[str] = frozenset(),
    ) -> None:
        """``unseen``: events no snapshot of a room shows (they start no new ``generation``)."""
        self.classify = classify
        self.unseen = unseen
        self.buffer_bytes = buffer_bytes
        self.stuck_s = stuck_s
        self.sockets: dict[str, LiveWebSocket] = {}
        self.watched: set[LiveWebSocket] = set()
        self.cut = 0  # sockets aborted for being stuck, since start-up
        self._generations: dict[str, int] = {}
        # engine.io sockets due a PING, by the tick (1 / PING_TICKS s) they are due
        self._pings: dict[int, list[Any]] = {}

    def generation(self, room: str) -> int:
        """How many broadcasts ``room`` heard here since someone first asked (then 0)."""
        return self._generations.setdefault(room, 0)

    def heard(self, room: Any) -> None:
        if room in self._generations:
            self._generations[room] += 1

    def behind(self, ws: LiveWebSocket) -> None:
        if ws not in self.watched:
            ws.behind_since = time.monotonic()
            self.watched.add(ws)

    def websocket(self, handler: Any, server: Any) -> LiveWebSocket:
        """engine.io's websocket factory (``server._async["websocket"]``)."""
        return LiveWebSocket(handler, server, self)

    def ping_later(self, socket: Any) -> None:
        """Send ``socket`` a PING once its server's ``ping_interval`` has passed."""
        due = math.ceil((time.monotonic() + socket.server.ping_interval) * PING_TICKS)
        self._pings.setdefault(due, []).append(socket)

    def ping_due(self, now: float) -> None:
        """PING the sockets that are due (engine.io's ``_send_ping``, for many at once)."""
        tick = now * PING_TICKS
        for due in [due for due in self._pings if due <= tick]:
            for socket in self._pings.pop(due):
                if socket.closing or socket.closed:
                    continue
                socket.last_ping = time.time()
                # through the socket's queue, in order with what engine.io sends (an upgraded
                # socket's writer also ends a connection whose queue stays empty for a round)
                socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))

    def sweep(self) -> None:
        """Write what waited for the sockets that caught up; abort those behind for longer
        than ``stuck_s`` or with more than 16 times ``buffer_bytes`` unsent; send the PINGs
        that are due."""
        now = time.monotonic()
        self.ping_due(now)
        for ws in list(self.watched):
            buffered = ws.buffered()
            if buffered <= self.buffer_bytes:
                self.watched.discard(ws)
                ws.flush()
            elif now - ws.behind_since > self.stuck_s or buffered > 16 * self.buffer_bytes:
                self.watched.discard(ws)
                self.cut += 1
                log.warning(
                    "socket cut: %d bytes unsent for %.1f s", buffered, now - ws.behind_since
                )
                ws.abort()

    async def keep_sweeping(self, every_s: float = 0.1) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.sweep()
