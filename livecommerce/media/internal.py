"""How one process reaches another for a stream's media: the client of the internal endpoints.

A process serving viewers of a stream another process holds pulls it with WHEP against the
holder's internal address (``INTERNAL_URL``, recorded by :mod:`~livecommerce.media.routing`),
and sends on a WHIP ``DELETE`` for a publisher, or a WHEP ``DELETE`` for a viewer, it does not
have. Every request carries the
processes' shared secret as a Bearer token; signal.py checks it on the other side.
"""

from __future__ import annotations

import logging

import aiohttp

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.media.routing import StreamRouting

log = logging.getLogger(__name__)

SDP = "application/sdp"
HANG_UP_TIMEOUT = aiohttp.ClientTimeout(total=2)
"""Ending a pull never holds up this process (at shutdown, say) for long: the holder's side
ends by itself anyway once the connection is gone."""


class PullRefused(Exception):
    """The holder did not answer the internal WHEP offer (the stream is not on air there, ...)."""


class InternalMedia:
    """The :class:`~livecommerce.media.hub.Upstream` of a process: HTTP to the others."""

    def __init__(self, routing: StreamRouting, timeout_s: float = 10.0) -> None:
        self._routing = routing
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _headers(self, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self._routing.secret()}", **more}

    async def offer(self, holder: str, stream_id: int, offer_sdp: str) -> tuple[str, str]:
        url = f"{holder}/internal/media/whep/{stream_id}"
        headers = await self._headers(**{"Content-Type": SDP})
        async with self._client().post(url, data=offer_sdp, headers=headers) as response:
            text = await response.text()
            if response.status != 201:
                raise PullRefused(f"{url} answered {response.status}: {text[:300]}")
            return text, f"{holder}{response.headers['Location']}"

    async def hang_up(self, session_url: str) -> None:
        try:
            headers = await self._headers()
            async with self._client().delete(
                session_url, headers=headers, timeout=HANG_UP_TIMEOUT
            ) as response:
                if response.status not in (200, 404):
                    log.warning("ending %s: %s", session_url, response.status)
        except Exception as exc:  # the holder may be gone: its session then ends by itself
            log.info("ending %s failed: %s", session_url, exc)

    async def end_publisher(self, holder: str, stream_id: int, resource: str) -> bool:
        return await self._end(f"{holder}/internal/media/whip/{stream_id}/{resource}", "WHIP")

    async def end_viewer(self, holder: str, stream_id: int, resource: str) -> bool:
        return await self._end(f"{holder}/internal/media/whep/{stream_id}/{resource}", "WHEP")

    async def _end(self, url: str, kind: str) -> bool:
        """DELETE ``url``: True if the session was there, False if not (404)."""
        try:
            async with self._client().delete(url, headers=await self._headers()) as response:
                if response.status in (200, 404):
                    return response.status == 200
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            text = str(exc) or type(exc).__name__
        log.warning("sending on the end of a %s session to %s failed: %s", kind, url, text[:300])
        raise LiveCommerceError(
            ErrorCode.STORE_UNAVAILABLE, "the process holding this session cannot be reached"
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
