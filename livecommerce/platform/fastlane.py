"""A fast lane for the one request a crowd sends thousands of times a second.

After a flash sale's last unit, nearly every request the server gets is the same tap on Buy,
and its answer, "sold out", is known in memory. Through aiohttp that answer costs about twice
a ``GET /healthz`` (request and payload objects, four middlewares, a response object, the
response signal); a crowd at half the ``/healthz`` rate then keeps one core busy and winners
wait behind the refusals. Here the listener's protocol (``headertimeout``) offers each chunk
of bytes to the lane before aiohttp sees it. The lane answers only a chunk that is exactly one
complete request, ``POST`` to its path over HTTP/1.1, on a connection where aiohttp has
nothing under way (``aiohttpseam.idle``) and every earlier chunk was whole requests too, and
only when its ``answer`` takes it; anything else goes to aiohttp unchanged, which answers it
as always. An answer sure from memory (a refusal) is written at once. An answer that must wait
(a winner's order: Redis, then SQL) is awaited in a task of its own with the connection's
reading paused, so its next request waits for this answer, and the connection counts as busy
for aiohttp (``aiohttpseam.begin``/``end``: a graceful shutdown waits for it). Each response
carries the headers aiohttp's would (``Content-Type``, ``Content-Length``, ``Date``,
``Server``, the app's own and the answer's), is counted in the same metrics and logged in the
same access-log format.

Strict by design: a header line with a control byte, a folded line, a repeated header the
answer reads, ``Transfer-Encoding``, ``Expect``, ``Upgrade``, ``Connection`` other than
``keep-alive``, a query string or a body that does not match ``Content-Length`` all go to
aiohttp. A connection that once sent a chunk that was not whole requests never uses the lane
again (its bytes could be the end of a request aiohttp is still reading).

Fair to the rest of the loop: the lane answers inside the protocol's ``data_received``, and a
closed-loop crowd of thousands would fill every pass of the event loop with refusals while a
winner's task waits a pass per step. Past ``PASS_BUDGET`` chunks in one pass, a chunk waits for
a later pass with its connection's reading paused, oldest first.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import re
import time
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, NamedTuple, cast

from aiohttp.http import SERVER_SOFTWARE

from livecommerce.platform import aiohttpseam
from livecommerce.platform.logs import log_access

log = logging.getLogger(__name__)

MAX_HEAD = 8190  # aiohttp's own limit on a request line or header


class FastRequest(NamedTuple):
    """What an answer may read of a request: the headers it names (``None`` when absent)."""

    authorization: str | None
    idempotency_key: str | None
    content_type: str | None
    body: bytes


class Reply(NamedTuple):
    """An answer the lane awaited: status, JSON body, and headers of its own."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


# (status, JSON body) to send now; a coroutine for the ``Reply`` to send when it is ready; or
# None: aiohttp answers the request instead.
Answer = Callable[[FastRequest], tuple[int, bytes] | Coroutine[Any, Any, Reply] | None]
# method, route, status, seconds: the app's HTTP metrics.
Observe = Callable[[str, str, int, float], None]


# Chunks the lane takes on in one pass of the event loop before it defers the rest (their
# connections paused) to later passes: a crowd of refusals answered inline would otherwise fill
# each pass, and a winner's order, a step of its task each pass, would wait behind them all.
PASS_BUDGET = 128

# Delivers a deferred chunk again (``due``: without the budget's check).
Deliver = Callable[[bytes, bool], None]


class Offer(enum.Enum):
    ANSWERED = "answered"  # the lane wrote the response; aiohttp must not see the bytes
    DEFERRED = "deferred"  # kept for a later pass; aiohttp must not see the bytes yet
    WHOLE = "whole"  # one or more whole requests, for aiohttp
    PARTIAL = "partial"  # anything else: the connection leaves the lane for good


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB is allowed in values
_READ = {
    b"authorization": 0,
    b"idempotency-key": 1,
    b"content-type": 2,
}
_REFUSED = frozenset({b"transfer-encoding", b"expect", b"upgrade"})
_HEAD_END = b"\r\n\r\n"


_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,9})[ \t]*\r")
_CHUNKED = b"\r\ntransfer-encoding:"


def _whole(data: bytes) -> bool:
    """Whether ``data`` is exactly one whole request (a head, and the body its
    ``Content-Length`` names): after it, aiohttp waits for the next request's first byte."""
    end = data.find(_HEAD_END)
    if end == -1:
        return False
    head = data[: end + 2].lower()
    if _CHUNKED in head:
        return False
    lengths = _LENGTH.findall(head)
    if head.count(b"\r\ncontent-length:") != len(lengths) or len(lengths) > 1:
        return False
    return end + 4 + (int(lengths[0]) if lengths else 0) == len(data)


class FastLane:
    """Answers ``method path`` requests that ``answer`` is sure of, before aiohttp parses them."""

    def __init__(
        self,
        method: str,
        path: str,
        answer: Answer,
        headers: list[tuple[str, str]],
        observe: Observe,
    ) -> None:
        """``headers``: what the app adds to every response (security headers)."""
        self._method = method
        self._path = path
        self._line = f"{method} {path} HTTP/1.1\r\n".encode()
        self._answer = answer
        self._observe = observe
        self._extra = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
        self._server = f"Server: {SERVER_SOFTWARE}\r\n".encode()
        self._responses: dict[tuple[int, bytes], tuple[bytes, bytes]] = {}
        self._date_at = 0
        self._date = b""
        self.answered = 0  # requests this lane answered from memory (for tests and metrics)
        self.awaited = 0  # requests this lane answered once their answer was ready
        self._answering: set[asyncio.Task[None]] = set()
        self.deferred = 0  # chunks put off to a later pass of the loop (for tests)
        self._spent = 0  # chunks taken on in this pass of the loop
        self._waiting: collections.deque[tuple[asyncio.Transport, bytes, Deliver]] = (
            collections.deque()
        )
        aiohttpseam.check()

    @property
    def answering(self) -> int:
        """Requests whose answer the lane awaits now."""
        return len(self._answering)

    def offer(
        self,
        handler: asyncio.Protocol,
        transport: asyncio.BaseTransport | None,
        data: bytes,
        deliver: Deliver | None = None,
    ) -> Offer:
        """Answer ``data`` if it is one request the lane takes, on an idle connection; past
        this pass's budget, keep it for ``deliver`` in a later pass (``None``: it is due)."""
        if not data.startswith(self._line):
            return Offer.WHOLE if _whole(data) else Offer.PARTIAL
        if deliver is not None and transport is not None:
            if self._spent >= PASS_BUDGET or self._waiting:
                # uvloop's transports are asyncio.Transport without subclassing it
                self._defer(cast(asyncio.Transport, transport), data, deliver)
                return Offer.DEFERRED
            if self._spent == 0:
                asyncio.get_running_loop().call_soon(self._next_pass)
            self._spent += 1
        started = time.perf_counter()
        head_end = data.find(_HEAD_END)
        if head_end == -1 or head_end > MAX_HEAD:
            return Offer.PARTIAL
        request = self._parse(data, head_end)
        if request is None:
            return Offer.PARTIAL  # not sure where this request ends: aiohttp decides
        if not isinstance(request, FastRequest):
            return Offer.WHOLE
        if transport is None or transport.is_closing() or not aiohttpseam.idle(handler):
            return Offer.WHOLE
        answer = self._answer(request)
        if answer is None:
            return Offer.WHOLE
        if not isinstance(answer, tuple):
            self._await(handler, cast(asyncio.Transport, transport), answer, started)
            return Offer.ANSWERED
        status, body = answer
        transport.write(self._response(status, body))  # type: ignore[attr-defined]
        aiohttpseam.used_now(handler)
        self.answered += 1
        self._record(transport, status, len(body), started)
        return Offer.ANSWERED

    def _await(
        self,
        handler: asyncio.Protocol,
        transport: asyncio.Transport,
        reply: Coroutine[Any, Any, Reply],
        started: float,
    ) -> None:
        transport.pause_reading()  # the connection's next request waits for this answer
        aiohttpseam.begin(handler)
        task = asyncio.get_running_loop().create_task(
            self._send_when_ready(handler, transport, reply, started), name="fast lane"
        )
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _send_when_ready(
        self,
        handler: asyncio.Protocol,
        transport: asyncio.Transport,
        reply: Coroutine[Any, Any, Reply],
        started: float,
    ) -> None:
        try:
            try:
                status, body, headers = await reply
            except Exception:
                # The answer renders its own failures; one that escapes is a bug: the client
                # hears the connection close rather than an answer nobody can vouch for.
                log.exception("the fast lane's answer failed")
                transport.close()
                return
            if not transport.is_closing():
                transport.write(self._response(status, body, headers))
                transport.resume_reading()
            self.awaited += 1
            self._record(transport, status, len(body), started)
        finally:
            aiohttpseam.end(handler)

    def _record(
        self, transport: asyncio.BaseTransport, status: int, size: int, started: float
    ) -> None:
        """Count the answer in the app's metrics and write its access-log line."""
        seconds = time.perf_counter() - started
        self._observe(self._method, self._path, status, seconds)
        log_access(_peer(transport), self._method, self._path, "1.1", status, size, seconds)

    def _next_pass(self) -> None:
        self._spent = 0

    def _defer(self, transport: asyncio.Transport, data: bytes, deliver: Deliver) -> None:
        transport.pause_reading()  # its next bytes stay in the kernel until this one is read
        self.deferred += 1
        if not self._waiting:
            asyncio.get_running_loop().call_soon(self._drain)
        self._waiting.append((transport, data, deliver))

    def _drain(self) -> None:
        """Deliver a pass's budget of the chunks put off, oldest first."""
        for _ in range(min(PASS_BUDGET, len(self._waiting))):
            transport, data, deliver = self._waiting.popleft()
            if transport.is_closing():
                continue
            transport.resume_reading()
            deliver(data, True)
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._drain)

    def _parse(self, data: bytes, head_end: int) -> FastRequest | bool | None:
        """The request if the lane may answer it; ``True`` if it is whole but not for the
        lane; ``None`` if where it ends is not sure."""
        lines = (
            data[len(self._line) : head_end].split(b"\r\n") if head_end > len(self._line) else []
        )
        found: list[bytes | None] = [None, None, None]
        length: int | None = None
        lane = True
        for line in lines:
            colon = line.find(b":")
            if colon <= 0 or _TOKEN.fullmatch(line, 0, colon) is None:
                return None  # a folded or malformed line: aiohttp's parser decides
            if _CTL.search(line) is not None:
                return None
            name = line[:colon].lower()
            value = line[colon + 1 :].strip(b" \t")
            if name == b"content-length":
                if length is not None or not value.isdigit() or len(value) > 9:
                    return None
                length = int(value)
            elif name in _REFUSED:
                return None
            elif name == b"connection":
                lane = lane and value.lower() == b"keep-alive"
            else:
                slot = _READ.get(name)
                if slot is not None:
                    if found[slot] is not None:
                        lane = False  # a repeated header: aiohttp's reading decides
                    found[slot] = value
        body = data[head_end + 4 :]
        if length is None or len(body) != length:
            return None
        if not lane:
            return True
        try:
            authorization, key, content_type = (
                None if v is None else v.decode("ascii") for v in found
            )
        except UnicodeDecodeError:
            return True
        return FastRequest(authorization, key, content_type, body)

    def _response(
        self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] | None = None
    ) -> bytes:
        """The response's bytes; those of a sure answer (``headers`` None) are kept for the
        next time, the crowd's refusals being few distinct answers."""
        now = int(time.time())
        if now != self._date_at:
            self._date_at = now
            self._date = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        if headers is not None:
            own = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
            head, rest = self._parts(status, body)
            return head + self._date + own + rest
        parts = self._responses.get((status, body))
        if parts is None:
            parts = self._parts(status, body)
            if len(self._responses) < 64:
                self._responses[(status, body)] = parts
        return parts[0] + self._date + parts[1]

    def _parts(self, status: int, body: bytes) -> tuple[bytes, bytes]:
        reason = HTTPStatus(status).phrase
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        return head, self._server + self._extra + b"\r\n" + body


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "-"
