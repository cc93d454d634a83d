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

``check()`` runs at start-up and refuses versions this was not checked against.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

import socketio
from socketio import packet as sio_packet

from livecommerce.errors import ErrorCode
from livecommerce.platform.payload import UnreadableJson, parse_json

CHECKED_VERSIONS = {"python-socketio": "5.18.", "python-engineio": "4.15."}
MAX_EVENT_BYTES = 4096  # the JSON of one client packet; a larger one is answered payload_too_large


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
    """Wire the seam into a server built with ``serializer=LivePacket``."""
    if server.packet_class is not LivePacket:
        raise RuntimeError("the Socket.IO server must be built with serializer=LivePacket")
    server.manager.json = json


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
