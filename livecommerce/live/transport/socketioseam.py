"""Everything that leans on python-socketio / python-engineio beyond their documented API.

- ``LivePacket`` (given to the server as its ``serializer``) reads client packets with our strict
  JSON reader (``payload.parse_json``) and never lets a bad packet escape as an exception: an
  event too large, unreadable, binary or not shaped ``[name, payload]`` reaches the namespace as
  an ``Unreadable`` in place of the event name, so the client gets an error ack for it.
  It relies on ``Packet.decode`` setting the packet type, namespace and ack id before it calls
  ``json.loads`` on the rest.
- ``install`` puts the client manager (Redis messages among our own processes) back on the
  standard ``json``: ``BaseManager.set_server`` copies the packet class's reader.
- ``peer_address`` reads the aiohttp request that engineio's aiohttp driver puts in the environ
  (its ``REMOTE_ADDR`` is always 127.0.0.1).
- The fan-out (``LiveRedisManager``, ``LiveWebSocket``, ``SocketQueue``, ``Fanout``) replaces
  engine.io's aiohttp websocket driver (``server._async["websocket"]``: no permessage-deflate,
  frames written to the transport at once), its per-socket queue (``create_queue``) and the
  manager's ``_handle_emit`` / ``_publish`` (and ``basic_disconnect``, which finds a socket's
  rooms in an index kept by ``basic_enter_room`` / ``basic_leave_room``, and clears its
  ``callbacks`` and ``pending_connect`` / ``pending_disconnect`` as python-socketio's does); it
  reads engine.io sockets' ``upgraded``,
  ``upgrading``, ``closing``, ``closed``, ``queue`` and ``server.eio.sockets``.
- ``AsyncSocket.schedule_ping`` is replaced (the class's, once per process; other engine.io
  servers keep engine.io's own): a ping wheel in ``Fanout`` sends the PINGs, reading and
  writing the socket's ``last_ping`` as engine.io does, instead of a sleeping task per socket.
- A websocket's environ is slimmed once connected (``KEPT_ENVIRON``): python-socketio keeps it
  per socket, and nothing after a namespace's connect reads the rest.

``check()`` runs at start-up and refuses versions this was not checked against.
"""

from __future__ import annotations

import asyncio
import json
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

import engineio.async_socket
import socketio
from aiohttp import web
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from livecommerce.errors import ErrorCode
from livecommerce.platform.payload import UnreadableJson, parse_json

CHECKED_VERSIONS = {"python-socketio": "5.18.", "python-engineio": "4.15."}
MAX_EVENT_BYTES = 4096  # the JSON of one client packet; a larger one is answered payload_too_large

log = logging.getLogger(__name__)


class Unreadable:
    """Stands for the name of an event we could not read; carries the error to ack with."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"<unreadable: {self.code.value}>"

    def ack(self) -> dict[str, Any]:
        return {"error": {"code": self.code.value, "message": self.message}}


class _Refused(Exception):
    def __init__(self, unreadable: Unreadable) -> None:
        super().__init__(unreadable.message)
        self.unreadable = unreadable


class _ClientJson:
    """The ``json`` of ``LivePacket``: strict and bounded when reading, standard when writing."""

    @staticmethod
    def dumps(data: Any, **kwargs: Any) -> str:
        return json.dumps(data, **kwargs)

    @staticmethod
    def loads(text: str, **kwargs: Any) -> Any:
        if len(text) > MAX_EVENT_BYTES or len(text.encode()) > MAX_EVENT_BYTES:
            raise _Refused(
                Unreadable(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"an event's JSON is at most {MAX_EVENT_BYTES} bytes",
                )
            )
        try:
            return parse_json(text)
        except UnreadableJson as exc:
            raise _Refused(Unreadable(ErrorCode.INVALID_JSON, exc.message)) from None


class LivePacket(socketio.packet.Packet):  # type: ignore[misc]
    json = _ClientJson
    packet_type: Any
    namespace: Any
    id: Any
    data: Any

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            # A binary frame with no binary packet announced: nothing of ours sends one.
            self._ignore()
            return 0
        try:
            count = super().decode(encoded_packet)
        except _Refused as exc:
            self.data = [exc.unreadable]
            return 0
        except (ValueError, TypeError, IndexError):
            self._ignore()  # a malformed header: no ack id to answer to
            return 0
        if self.packet_type in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK):
            # Attachments would be buffered until their announced count (up to 10 digits).
            self.packet_type = sio_packet.EVENT
            self.data = [Unreadable(ErrorCode.INVALID_INPUT, "binary payloads are not accepted")]
            return 0
        if self.packet_type == sio_packet.EVENT and not (
            isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
        ):
            self.data = [Unreadable(ErrorCode.INVALID_INPUT, "an event is [name, payload]")]
        return int(count or 0)

    def _ignore(self) -> None:
        """Make this packet an ack nobody waits for: the server logs one warning and drops it
        (rather than a traceback per packet an attacker sends)."""
        self.packet_type = sio_packet.ACK
        self.namespace = None
        self.id = None
        self.data = []


def install(server: socketio.AsyncServer) -> None:
    """Wire the seam into a server built with ``serializer=LivePacket`` (and, for the single-frame
    fan-out, ``client_manager=LiveRedisManager``): engine.io's websockets become
    ``LiveWebSocket``s registered in the manager's ``Fanout``."""
    if server.packet_class is not LivePacket:
        raise RuntimeError("the Socket.IO server must be built with serializer=LivePacket")
    server.manager.json = json
    if isinstance(server.manager, LiveRedisManager):
        # a copy: the driver's table is shared by every engine.io server of the process
        server.eio._async = {**server.eio._async, "websocket": server.manager.fanout.websocket}
        server.eio.create_queue = SocketQueue
        _PINGERS[server.eio] = server.manager.fanout
        engineio.async_socket.AsyncSocket.schedule_ping = _schedule_ping


def peer_address(environ: dict[str, Any]) -> str:
    """The TCP peer of a Socket.IO connection."""
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None)
    return str(remote) if remote else str(environ.get("REMOTE_ADDR", ""))


def check() -> None:
    """Refuse library versions this seam was not checked against, and test its assumptions."""
    for name, prefix in CHECKED_VERSIONS.items():
        found = version(name)
        if not found.startswith(prefix):
            raise RuntimeError(
                f"livecommerce/live/transport/socketioseam.py was checked with {name} {prefix}x, "
                f"not {found}"
            )
    big = LivePacket(encoded_packet='2/live,7["chat:send","' + "x" * MAX_EVENT_BYTES + '"]')
    if not (big.packet_type == sio_packet.EVENT and big.id == 7 and big.namespace == "/live"):
        raise RuntimeError("python-socketio's Packet.decode no longer reads the header first")
    if not isinstance(big.data[0], Unreadable):
        raise RuntimeError("python-socketio's Packet.decode no longer reads JSON through .json")
    server = socketio.AsyncServer(async_mode="aiohttp", serializer=LivePacket)
    install(server)
    if server.manager.json is not json:
        raise RuntimeError("python-socketio's manager no longer keeps its JSON in .json")
    _check_fanout()


def _check_fanout() -> None:
    """What ``LiveWebSocket`` and ``LiveRedisManager`` lean on."""
    fanout = Fanout(lambda event, args: (Delivery.ALWAYS, None), 1024, 1.0)
    server = socketio.AsyncServer(
        async_mode="aiohttp",
        serializer=LivePacket,
        client_manager=LiveRedisManager("redis://127.0.0.1:1/0", "check", fanout),
    )
    install(server)
    if server.eio._async.get("websocket") != fanout.websocket:
        raise RuntimeError("engine.io no longer builds its websockets from _async['websocket']")
    socket = engineio.async_socket.AsyncSocket(server.eio, "check")
    handler = socket._websocket_handler
    if (
        handler.__self__ is not socket
        or not all(
            hasattr(socket, name)
            for name in ("upgraded", "upgrading", "closing", "closed", "queue", "sid")
        )
        or not isinstance(getattr(server.eio, "sockets", None), dict)
    ):
        raise RuntimeError("engine.io's socket no longer has the fields LiveWebSocket reads")
    socket.last_ping = time.time()
    socket.schedule_ping()
    if socket.last_ping is not None or not any(socket in due for due in fanout._pings.values()):
        raise RuntimeError("engine.io's socket no longer schedules its pings through last_ping")
    if not isinstance(getattr(server.eio, "ping_interval", None), int | float):
        raise RuntimeError("engine.io's server no longer keeps its ping_interval")
    manager = socketio.AsyncRedisManager
    for name in (
        "_handle_emit",
        "_publish",
        "get_participants",
        "basic_enter_room",
        "basic_leave_room",
        "basic_disconnect",
    ):
        if not hasattr(manager, name):
            raise RuntimeError(f"python-socketio's Redis manager has no {name}")
    live = server.manager
    assert isinstance(live, LiveRedisManager)
    for room in (None, "s1", "r"):
        live.basic_enter_room("s1", "/check", room, eio_sid="e1")
    live.pending_disconnect["/check"] = ["s1"]
    live.basic_disconnect("s1", "/check")
    if live.rooms or live._rooms_of or live.pending_disconnect:
        raise RuntimeError("python-socketio's manager no longer keeps rooms as LiveRedisManager")
    if not hasattr(socketio.AsyncServer, "_send_eio_packet"):
        raise RuntimeError("python-socketio's server has no _send_eio_packet")
    encoded = LivePacket(sio_packet.EVENT, namespace="/live", data=["e", {"a": 1}]).encode()
    if encoded != '2/live,["e",{"a":1}]':
        raise RuntimeError(f"python-socketio encodes an event as {encoded!r}")
    if text_frame("4" + encoded)[:2] != bytes((0x81, len(encoded) + 1)):
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


# -- fan-out: one encoding per broadcast, one frame written to every local websocket ------------


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
    which it writes what it got, so a broadcast written directly never overtakes it.
    """

    __slots__ = ("_getters", "_handed", "_items", "_joined", "_unfinished")

    def __init__(self) -> None:
        # lists, not deques (about 600 bytes each): a socket's queue holds a packet or two
        self._items: list[Any] | None = None
        self._getters: list[asyncio.Future[Any]] | None = None
        self._handed = False
        self._unfinished = 0
        self._joined: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items and not self._handed

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: Any) -> None:
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


class LiveWebSocket:
    """engine.io's aiohttp websocket driver (``engineio.async_drivers.aiohttp.WebSocket``), with
    permessage-deflate refused and frames written to the transport at once.

    engine.io builds it as ``factory(handler, server)``, awaits it with the environ, and its
    per-socket writer task calls ``send``; broadcasts skip that task and call ``deliver``.
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
        sock = web.WebSocketResponse(
            max_msg_size=self.socket.server.max_http_buffer_size, compress=False
        )
        await sock.prepare(request)
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
            await self.handler(self)
        finally:
            if self._fanout.sockets.get(sid) is self:
                del self._fanout.sockets[sid]
            self._fanout.watched.discard(self)
        return sock

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
                # through the socket's queue: engine.io's writer ends a connection whose queue
                # stays empty for ping_interval + ping_timeout (broadcasts do not go through it)
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


GAP_S = 0.5  # how long a state version waits for the ones before it (a handler may be slow)


def _target(message: dict[str, Any]) -> tuple[Any, ...]:
    """Who a message goes to: consecutive messages with the same target are written together."""
    room, skip = message.get("room"), message.get("skip_sid")
    return (
        message.get("namespace") or "/",
        tuple(room) if isinstance(room, list) else room,
        tuple(skip) if isinstance(skip, list) else skip,
    )


class _Sequence:
    """The versions of one room's state group on this process."""

    __slots__ = ("last", "timer", "waiting")

    def __init__(self, last: int) -> None:
        self.last = last  # the last version delivered
        self.waiting: dict[int, dict[str, Any]] = {}
        self.timer: asyncio.TimerHandle | None = None


class LiveRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, delivering each emit to the local sockets with ONE
    encoded packet and ONE websocket frame written to each (``AsyncManager.emit`` makes a task
    per recipient and engine.io a queue and writer task per socket); the emits of one loop turn
    to one room go to each socket in one write (``_deliver``).

    Order: ``broadcast(..., version=)`` carries the version a state change got in Redis; each
    process delivers a room's state group in version order (see ``_in_order``), so neither
    concurrent handlers nor local (at once) and remote (through Redis) deliveries can reorder a
    room's state. Publishing is one at a time, in the order the emits were made.
    """

    def __init__(self, url: str, channel: str, fanout: Fanout) -> None:
        super().__init__(url, channel=channel)
        self.fanout = fanout
        self._sequences: dict[tuple[str, str], _Sequence] = {}
        self._corked: list[dict[str, Any]] = []
        self._publishing = asyncio.Lock()
        # (namespace, sid) -> the rooms it is in, its own and None included
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}

    # The rooms a socket is in, kept beside python-socketio's table: its ``basic_disconnect``
    # finds them by scanning (and copying) every room of the namespace, each socket's own room
    # among them, so a crowd leaving at the end of a show cost O(n^2).

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """python-socketio's, with the socket's rooms looked up rather than searched for."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    async def broadcast(
        self, event: str, data: Any, room: str, namespace: str, version: int | None = None
    ) -> None:
        """Emit to ``room`` on every process (``version``: see the class)."""
        message = {
            "method": "emit",
            "event": event,
            "data": [data],
            "binary": False,
            "namespace": namespace,
            "room": room,
            "skip_sid": None,
            "callback": None,
            "host_id": self.host_id,
        }
        if version is not None:
            message["version"] = version
        await self._handle_emit(message)
        await self._publish(message)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if kwargs.get("ignore_queue") and callback is None:
            # this process only (e.g. to one of its sockets): the same single-frame path
            await self._handle_emit(
                {
                    "event": event,
                    "data": list(data) if isinstance(data, tuple) else [data],
                    "namespace": namespace or "/",
                    "room": room,
                    "skip_sid": skip_sid,
                    # e.g. session:ended right before a disconnect, room:state before its ack
                    "now": True,
                }
            )
            return
        await super().emit(
            event,
            data,
            namespace=namespace,
            room=room,
            skip_sid=skip_sid,
            callback=callback,
            **kwargs,
        )

    async def _publish(self, data: Any) -> Any:
        async with self._publishing:
            return await super()._publish(data)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if (
            message.get("callback") is not None
            or message.get("binary")
            or not isinstance(data, list)
            or (message.get("namespace") or "/") not in self.rooms
        ):
            await super()._handle_emit(message)
            return
        version = message.get("version")
        room = message.get("room")
        _, group = self.fanout.classify(message["event"], data)
        if isinstance(version, int) and group is not None and isinstance(room, str):
            self._in_order((room, group), version, message)
        else:
            self._deliver(message)

    def _in_order(self, key: tuple[str, str], version: int, message: dict[str, Any]) -> None:
        """Deliver the versions of a room's state group in order: one that comes early waits
        for those before it, at most ``GAP_S``; one older than a delivered one is dropped."""
        sequence = self._sequences.get(key)
        if sequence is None:
            sequence = self._sequences[key] = _Sequence(version - 1)
        if version <= sequence.last:
            return
        sequence.waiting[version] = message
        self._release(key, sequence, gap=False)

    def _release(self, key: tuple[str, str], sequence: _Sequence, gap: bool) -> None:
        waiting = sequence.waiting
        while waiting:
            first = min(waiting)
            if first != sequence.last + 1 and not gap:
                break
            sequence.last = first
            self._deliver(waiting.pop(first))
        if sequence.timer is not None:
            sequence.timer.cancel()
            sequence.timer = None
        if waiting:
            sequence.timer = asyncio.get_running_loop().call_later(
                GAP_S, self._release, key, sequence, True
            )

    def _deliver(self, message: dict[str, Any]) -> None:
        """Deliver at the loop's next turn, with whatever else was delivered meanwhile: the
        messages of one room that come together reach each socket in one write (one system
        call), as a burst of pins does while the loop is busy writing the previous one."""
        if message.get("event") not in self.fanout.unseen:
            self.fanout.heard(message.get("room"))
        if not self._corked:
            asyncio.get_running_loop().call_soon(self._uncork)
        self._corked.append(message)
        if message.get("now"):  # this process's emit to its own socket: written before we return
            self._uncork()

    def _uncork(self) -> None:
        corked, self._corked = self._corked, []
        start = 0
        while start < len(corked):
            target = _target(corked[start])
            end = start + 1
            while end < len(corked) and _target(corked[end]) == target:
                end += 1
            try:
                self._write(corked[start:end])
            except Exception:
                log.exception("broadcast of %s failed", corked[start].get("event"))
            start = end

    def _write(self, messages: list[dict[str, Any]]) -> None:
        """Encode each message once; write the frames to each local websocket of their room in
        one write; queue the engine.io packets for the others (long-polling, upgrading, or
        with packets already queued)."""
        first = messages[0]
        namespace, room = first.get("namespace") or "/", first.get("room")
        frames: list[bytes] = []
        kinds: list[tuple[Delivery, str | None]] = []
        packets: list[str] = []
        for message in messages:
            event, data = message["event"], message["data"]
            encoded = self.server.packet_class(
                sio_packet.EVENT, namespace=namespace, data=[event, *data]
            ).encode()
            if not isinstance(encoded, str):  # binary: never emitted here, flagged by others
                raise TypeError(f"{event} carries binary data")
            packets.append(encoded)
            frames.append(text_frame("4" + encoded))  # engine.io MESSAGE + the Socket.IO packet
            kinds.append(self.fanout.classify(event, data))
        single = len(frames) == 1
        frame = frames[0] if single else b"".join(frames)
        delivery, group = kinds[0]
        skip = first.get("skip_sid")
        skipped = set(skip) if isinstance(skip, list) else {skip}
        sockets = self.fanout.sockets
        queued: list[Any] | None = None
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skipped:
                continue
            ws = sockets.get(eio_sid)
            if ws is not None and ws.direct():
                if single:
                    ws.deliver(frame, delivery, group)
                else:
                    ws.deliver_all(frame, frames, kinds)
                continue
            socket = self.server.eio.sockets.get(eio_sid)
            if socket is not None and not socket.closed:
                if queued is None:
                    queued = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in packets]
                for pkt in queued:
                    socket.queue.put_nowait(pkt)  # engine.io's send, without an awaited put
