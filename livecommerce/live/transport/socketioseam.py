"""Everything that leans on python-socketio beyond its documented API (python-engineio's part
is in ``engineioseam``).

- ``LivePacket`` (given to the server as its ``serializer``) reads client packets with our strict
  JSON reader (``payload.parse_json``) and never lets a bad packet escape as an exception: an
  event too large, unreadable, binary or not shaped ``[name, payload]`` reaches the namespace as
  an ``Unreadable`` in place of the event name, so the client gets an error ack for it.
  It relies on ``Packet.decode`` setting the packet type, namespace and ack id before it calls
  ``json.loads`` on the rest.
- ``install`` puts the client manager (Redis messages among our own processes) back on the
  standard ``json``: ``BaseManager.set_server`` copies the packet class's reader.
- The fan-out (``LiveRedisManager``) replaces the manager's ``_handle_emit`` / ``_publish``: a
  broadcast is encoded once and one frame is written to each local websocket
  (``engineioseam.LiveWebSocket``), in order. Its ``basic_disconnect`` finds a socket's rooms
  in an index kept by ``basic_enter_room`` / ``basic_leave_room`` (python-socketio's scans every
  room of the namespace) and clears ``callbacks`` and ``pending_connect`` /
  ``pending_disconnect`` as python-socketio's does.

``check()`` runs at start-up and refuses versions this was not checked against.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib.metadata import version
from typing import Any

import socketio
from socketio import packet as sio_packet

from livecommerce.errors import ErrorCode
from livecommerce.live.transport import engineioseam
from livecommerce.live.transport.engineioseam import Delivery, Fanout, text_frame
from livecommerce.platform.payload import UnreadableJson, parse_json

CHECKED_VERSION = "5.18."  # python-socketio
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
    # Nothing of ours sends bytes: no walk of every outgoing payload looking for them (a bytes
    # value would fail loudly in json.dumps instead), and clients' binary packets are refused
    # in ``decode``.
    uses_binary_events = False
    packet_type: Any
    namespace: Any
    id: Any
    data: Any

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)
        if encoded_packet is not None and not encoded_packet:
            # An empty engine.io message: python-socketio reads nothing and takes it for an
            # event without data (a traceback in its handler).
            self._ignore()

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
        engineioseam.install(server.eio, server.manager.fanout)


def check() -> None:
    """Refuse library versions this seam was not checked against, and test its assumptions."""
    found = version("python-socketio")
    if not found.startswith(CHECKED_VERSION):
        raise RuntimeError(
            "livecommerce/live/transport/socketioseam.py was checked with python-socketio "
            f"{CHECKED_VERSION}x, not {found}"
        )
    engineioseam.check()
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
    live.pre_disconnect("s1", "/check")
    if not isinstance(live.pending_disconnect.get("/check"), _Sids) or live.is_connected(
        "s1", "/check"
    ):
        raise RuntimeError("python-socketio no longer keeps pending_disconnect as a list it makes")
    live.basic_disconnect("s1", "/check")
    if live.rooms or live._rooms_of or live.pending_disconnect:
        raise RuntimeError("python-socketio's manager no longer keeps rooms as LiveRedisManager")
    if not hasattr(socketio.AsyncServer, "_send_eio_packet"):
        raise RuntimeError("python-socketio's server has no _send_eio_packet")
    encoded = LivePacket(sio_packet.EVENT, namespace="/live", data=["e", {"a": 1}]).encode()
    if encoded != '2/live,["e",{"a":1}]':
        raise RuntimeError(f"python-socketio encodes an event as {encoded!r}")
    if LivePacket(sio_packet.EVENT, data=["e", b"x"]).packet_type != sio_packet.EVENT:
        raise RuntimeError("python-socketio's Packet no longer honours uses_binary_events")


# -- fan-out: one encoding per broadcast, one frame written to every local websocket ------------


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


class _Sids(dict[str, None]):
    """The sids python-socketio keeps as a list while they connect or disconnect, as a dict:
    ``sid in`` (asked for every event a socket sends), ``append`` and ``remove`` in O(1)."""

    def __init__(self, sids: Any = ()) -> None:
        super().__init__(dict.fromkeys(sids))

    def append(self, sid: str) -> None:
        self[sid] = None

    def remove(self, sid: str) -> None:
        del self[sid]


class _Pending(dict[str, _Sids]):
    """python-socketio's ``pending_connect`` / ``pending_disconnect`` (namespace -> sids): the
    list it puts in becomes ``_Sids``. With lists, a crowd leaving together (a show's end) made
    each leaver's events scan all the others: O(n^2)."""

    def __setitem__(self, namespace: str, sids: Any) -> None:
        super().__setitem__(namespace, sids if isinstance(sids, _Sids) else _Sids(sids))


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
        self.pending_connect = _Pending()
        self.pending_disconnect = _Pending()
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
            if queued is None:
                queued = engineioseam.message_packets(packets)
            engineioseam.queue_messages(self.server.eio, eio_sid, queued)
