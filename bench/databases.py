"""The database a bench's server writes to: a SQLite file, or a private PostgreSQL database.

``--database postgres`` creates a database of its own on the server at ``PG_ADMIN_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``) and drops it afterwards, so a bench never
touches what other users of that server keep there. DATABASE_URL, when set, wins over both.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
KINDS = ("sqlite", "postgres")


@contextmanager
def bench_database(kind: str, work: Path) -> Iterator[str]:
    """A fresh, empty database of ``kind`` for the duration; yields its SQLAlchemy URL."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{work / 'bench.db'}"
        return
    if kind != "postgres":
        raise ValueError(f"--database is one of {', '.join(KINDS)}")
    name = f"lc_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(statement: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()
