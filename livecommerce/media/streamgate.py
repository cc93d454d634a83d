"""What the WHIP/WHEP handlers must know of a shopstream, asked through a gate.

Shopstreams are the live domain's (``live/streams.py``); media does not import it. The
composition root puts an implementation under ``STREAM_GATE``.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class StreamGate(Protocol):
    async def key_matches(self, stream_id: int, presented: str) -> bool:
        """Whether ``presented`` is the stream's current key (compared in constant time).

        Raises ``NotFound`` for no such stream."""
        ...

    async def has_ended(self, stream_id: int) -> bool:
        """Whether the show is over (no publishing, nothing to watch any more).

        Raises ``NotFound`` for no such stream."""
        ...


STREAM_GATE: web.AppKey[StreamGate] = web.AppKey("stream_gate")
