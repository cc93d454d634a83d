"""Migrations bring an empty database to the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from livecommerce.platform.db.engine import create_engine, downgrade, migrate, pending_migrations
from livecommerce.platform.db.tables import metadata
from tests.conftest import PG_ADMIN_URL, _drop_database, _pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_template: str | None
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    if postgres_template is None:
        pytest.skip("PostgreSQL not reachable")
    name = f"lc_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield _pg_url(name)
    await _drop_database(name)


async def test_up_from_empty_matches_the_tables_and_down_again(empty_database: str) -> None:
    engine = create_engine(empty_database)
    try:
        assert await pending_migrations(engine)
        await migrate(engine)
        assert not await pending_migrations(engine)
        await migrate(engine)  # at head, a second run changes nothing
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            names = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        assert diff == []
        assert set(metadata.tables) <= names
        await downgrade(engine, "base")
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
        assert not set(metadata.tables) & names
        await migrate(engine)
        assert not await pending_migrations(engine)
    finally:
        await engine.dispose()
