"""The one place that reads aiohttp's private per-connection state (the fast lane's needs), and
the one that holds a websocket's ``101`` head back so that it goes out with the first frames.

``fastlane`` answers a few requests itself, before aiohttp parses them, and may do so only
when aiohttp has nothing of that connection's under way: no message queued, none being
handled, its last response written, no body being read and no protocol switch. After
answering, it tells aiohttp the connection was just used, so the keep-alive timeout does not
close a connection that the fast lane keeps busy. While the lane awaits an answer (a winner's
order), the connection counts as handling a request, as aiohttp counts its own: a graceful
shutdown waits for the answer before it closes the connection. These read or write
``RequestHandler`` slots that aiohttp does not document; ``check()`` runs when the lane is
built (at start-up) and refuses versions this was not checked against.

A websocket's handshake answer is written by aiohttp as soon as the response is prepared, and
engine.io's first packet (its OPEN) follows in a write of its own: two system calls, two
segments on the wire, for every viewer who arrives. ``HeldHeadResponse`` keeps aiohttp's
serialized head (``_send_headers_immediately`` off, as aiohttp's own ``Response`` does) and
``take_head`` hands it to the caller, which writes it with the first frames.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

from aiohttp import web
from aiohttp.http_writer import StreamWriter
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

CHECKED_VERSION = "3.14."  # aiohttp

_SLOTS = (
    "_request_in_progress",
    "_messages",
    "_current_request",
    "_payload_parser",
    "_force_close",
    "_close",
    "_keepalive",
    "_keepalive_timeout",
    "_next_keepalive_close_time",
    "_handler_waiter",
)


def is_request_handler(protocol: asyncio.Protocol) -> bool:
    return isinstance(protocol, RequestHandler)


def idle(handler: Any) -> bool:
    """Whether aiohttp has nothing of this connection's under way: no request queued or being
    handled, its last response handed to the transport whole (``_request_in_progress`` ends
    after ``finish_response``), no body being read, no protocol switch, not closing."""
    return (
        not handler._request_in_progress
        and not handler._messages
        and handler._current_request is None
        and handler._payload_parser is None
        and not handler._upgraded
        and not handler._force_close
        and not handler._close
        and handler._keepalive
    )


def used_now(handler: Any) -> None:
    """Restart the connection's keep-alive clock (as aiohttp does after each response)."""
    timeout = handler._keepalive_timeout
    if timeout:
        handler._next_keepalive_close_time = handler._loop.time() + timeout


def begin(handler: Any) -> None:
    """A request of this connection is under way outside aiohttp (the lane awaits its answer):
    ``idle`` is false, and aiohttp's shutdown waits for ``end`` as it waits for its own
    handler (``RequestHandler._handle_request`` sets and clears the same slot)."""
    handler._request_in_progress = True
    used_now(handler)


def end(handler: Any) -> None:
    """The request ``begin`` marked is answered: a shutdown waiting for it goes on."""
    handler._request_in_progress = False
    waiter = handler._handler_waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
    used_now(handler)


class HeldHeadResponse(web.WebSocketResponse):
    """A websocket response whose ``101`` head waits, once prepared, for ``take_head``."""

    _send_headers_immediately = False


def take_head(response: web.StreamResponse) -> bytes:
    """The head a prepared ``HeldHeadResponse`` holds, now the caller's to write (before any
    frame: nothing else writes it); aiohttp counts it written."""
    writer: Any = response._payload_writer
    if writer is None or writer._headers_written or not writer._headers_buf:
        return b""
    head: bytes = writer._headers_buf
    writer._headers_buf = None
    writer._headers_written = True
    return head


def check() -> None:
    """Refuse an aiohttp this was not checked against, and the slots it reads missing."""
    found = version("aiohttp")
    if not found.startswith(CHECKED_VERSION):
        raise RuntimeError(
            f"livecommerce/platform/aiohttpseam.py was checked with aiohttp {CHECKED_VERSION}x, "
            f"not {found}"
        )
    slots: set[str] = set()
    for cls in RequestHandler.__mro__:
        slots.update(getattr(cls, "__slots__", ()))
    missing = [name for name in (*_SLOTS, "_upgraded", "_loop") if name not in slots]
    if missing:
        raise RuntimeError(f"aiohttp's RequestHandler no longer has {', '.join(missing)}")
    _check_held_head()


def _check_held_head() -> None:
    """aiohttp's response still asks ``_send_headers_immediately`` before it writes its head,
    and its writer keeps a head it was told to hold in ``_headers_buf`` until sent."""
    if web.StreamResponse._send_headers_immediately is not True or not hasattr(
        web.WebSocketResponse(), "_payload_writer"
    ):
        raise RuntimeError("aiohttp's response no longer holds its head on request")
    writer: Any = StreamWriter(None, None)  # type: ignore[arg-type]
    step = writer.write_headers("HTTP/1.1 101 Switching Protocols", CIMultiDict())
    try:
        step.send(None)
    except StopIteration:
        pass
    else:
        step.close()
    if writer._headers_written is not False or not bytes(writer._headers_buf or b"").startswith(
        b"HTTP/1.1 101 "
    ):
        raise RuntimeError("aiohttp's writer no longer keeps a held head in _headers_buf")
    response = HeldHeadResponse()
    response._payload_writer = writer
    if not take_head(response).startswith(b"HTTP/1.1 101 ") or writer._headers_buf is not None:
        raise RuntimeError("take_head")
