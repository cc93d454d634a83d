"""The async engine and the migrations that bring a database to the current schema."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).with_name("migrations")


def create_engine(database_url: str) -> AsyncEngine:
    """An engine for ``database_url``; SQLite gets WAL, foreign keys and a busy timeout.

    ``hide_parameters``: a failing statement's error (which may reach a log) never carries its
    values, e.g. a stream key, a token digest or a password hash.
    """
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            database_url, connect_args={"timeout": 30}, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        database_url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
    )


def sqlite_file_engine(engine: AsyncEngine) -> Engine | None:
    """A blocking engine on the same SQLite file as ``engine`` (same pragmas and busy timeout),
    for work that runs whole in a thread of its own (one hop from the event loop instead of
    one per call); ``None`` unless ``engine`` is on a SQLite file."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    sync = create_sync_engine(
        url.set(drivername="sqlite"), connect_args={"timeout": 30}, hide_parameters=True
    )
    event.listen(sync, "connect", _sqlite_pragmas)
    return sync


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (idempotent: at head, nothing happens)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), revision))


async def pending_migrations(engine: AsyncEngine) -> bool:
    """True when the database is not at the newest revision."""
    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()  # type: ignore[arg-type]
    async with engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
    return current != head


ENGINE = web.AppKey("engine", AsyncEngine)
