"""The one place that reads aiohttp's private per-connection state (the fast lane's needs).

``fastlane`` answers a few requests itself, before aiohttp parses them, and may do so only
when aiohttp has nothing of that connection's under way: no message queued, none being
handled, its last response written, no body being read and no protocol switch. After
answering, it tells aiohttp the connection was just used, so the keep-alive timeout does not
close a connection that the fast lane keeps busy. While the lane awaits an answer (a winner's
order), the connection counts as handling a request, as aiohttp counts its own: a graceful
shutdown waits for the answer before it closes the connection. These read or write
``RequestHandler`` slots that aiohttp does not document; ``check()`` runs when the lane is
built (at start-up) and refuses versions this was not checked against.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

from aiohttp.web_protocol import RequestHandler

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
