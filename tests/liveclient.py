"""A python-socketio client of the /live namespace, for tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import socketio


class Viewer:
    """A python-socketio AsyncClient on /live that records every event it hears."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self.sio.on("*", self._record, namespace="/live")
        self.sio.on("disconnect", self._disconnected, namespace="/live")

    async def _disconnected(self, reason: Any = None) -> None:
        self.disconnected.set()

    async def wait_disconnected(self, within_s: float = 5) -> None:
        """Until the server (or the transport) ends this socket; fails after ``within_s``."""
        await asyncio.wait_for(self.disconnected.wait(), within_s)

    async def _record(self, event: str, data: Any) -> None:
        self.events.append((event, data))

    async def connect(
        self, url: str, token: str | None = None, transports: tuple[str, ...] = ("websocket",)
    ) -> None:
        await self.sio.connect(
            url,
            namespaces=["/live"],
            auth={"token": token} if token else None,
            transports=list(transports),
            # the client's default (1 s) for the namespace's answer is short for a crowd of
            # test clients connecting at once on a loaded two-core CI machine
            wait_timeout=10,
        )

    async def call(self, event: str, data: Any) -> Any:
        return await self.sio.call(event, data, namespace="/live", timeout=10)

    async def wait_for(self, event: str, **match: Any) -> Any:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for name, data in self.events:
                if name == event and all(data.get(k) == v for k, v in match.items()):
                    return data
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {event} {match} in {[e for e, _ in self.events]}")

    def count(self, event: str) -> int:
        return sum(1 for name, _ in self.events if name == event)
