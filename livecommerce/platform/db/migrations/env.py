"""Alembic environment: runs on the connection that `platform.db.engine.migrate` passes."""

from __future__ import annotations

from alembic import context

from livecommerce.platform.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `livecommerce migrate`")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
