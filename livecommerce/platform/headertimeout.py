"""A header-read timeout for aiohttp's server: a connection that opens and never finishes its
first request head (slowloris, half-open sockets) is closed after ``timeout_s``.

aiohttp has no such setting: before 3.14.4 a connection that sent part of a request line was held
until the keep-alive timeout, which ``AppRunner`` leaves at 3,630 s. This wraps the protocol
aiohttp makes for each connection (public API only: ``runner.server`` is the protocol factory,
and ``asyncio`` calls the usual ``Protocol`` methods, forwarded unchanged), watches the bytes of
the first head, and closes the transport if the blank line that ends it has not come in time.
Later requests on a kept-alive connection are covered by aiohttp's own keep-alive timeout (its
clock restarts after each response and it closes a connection still waiting for a head), which
``serve`` sets to the same value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from livecommerce.platform import aiohttpseam
from livecommerce.platform.fastlane import FastLane, Offer

_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


class HeadTimeoutProtocol(asyncio.Protocol):
    """Forwards everything to ``inner``; closes the connection if no head completes in time."""

    def __init__(
        self, inner: asyncio.Protocol, timeout_s: float, lane: FastLane | None = None
    ) -> None:
        self._inner = inner
        # Offered each chunk first while every chunk so far was whole requests (see fastlane).
        self._lane = lane if lane is not None and aiohttpseam.is_request_handler(inner) else None
        self._timeout_s = timeout_s
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._started = False  # a byte other than CR/LF came: the request line has begun
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self._timeout_s, self._expire)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            self._watch(data)
        self._deliver(data, False)

    def _deliver(self, data: bytes, due: bool) -> None:
        if self._lane is not None:
            offer = self._lane.offer(
                self._inner, self._transport, data, None if due else self._deliver
            )
            if offer is Offer.ANSWERED or offer is Offer.DEFERRED:
                return
            if offer is Offer.PARTIAL:
                self._lane = None
        self._inner.data_received(data)

    def _watch(self, data: bytes) -> None:
        if not self._started:
            # Blank lines before a request line are allowed and must not count as a head.
            data = data.lstrip(b"\r\n")
            if not data:
                return
            self._started = True
        seen = self._tail + data
        if any(end in seen for end in _HEAD_ENDS):
            self._disarm()
        else:
            self._tail = seen[-3:]

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._tail = b""

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def with_head_timeout(
    factory: Callable[[], asyncio.Protocol], timeout_s: float, lane: FastLane | None = None
) -> Callable[[], asyncio.Protocol]:
    """A protocol factory for ``loop.create_server`` that puts ``factory``'s protocols under
    the header-read timeout (and offers their bytes to ``lane`` first)."""

    def make() -> asyncio.Protocol:
        return HeadTimeoutProtocol(factory(), timeout_s, lane)

    return make
