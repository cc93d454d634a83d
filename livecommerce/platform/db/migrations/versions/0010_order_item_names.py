"""order item names

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Orders placed before this have none: their pages fall back on the SKU.
    op.add_column("orders", sa.Column("item_name", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("item_name")
