"""shop settings, saved addresses, and what an order ships to and adds for shipping and tax

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shop_settings",
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("shipping_flat_minor", sa.BigInteger(), nullable=False),
        sa.Column("free_shipping_over_minor", sa.BigInteger(), nullable=True),
        sa.Column("tax_mode", sa.String(length=10), nullable=False),
        sa.Column("tax_rate_bp", sa.Integer(), nullable=False),
        sa.Column("ship_by_days", sa.Integer(), nullable=False),
        sa.Column("return_window_days", sa.Integer(), nullable=False),
        sa.Column("free_returns", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "shipping_flat_minor >= 0", name=op.f("ck_shop_settings_shipping_not_negative")
        ),
        sa.CheckConstraint(
            "tax_mode IN ('included', 'added')", name=op.f("ck_shop_settings_tax_mode_known")
        ),
        sa.CheckConstraint(
            "tax_rate_bp >= 0 AND tax_rate_bp <= 10000",
            name=op.f("ck_shop_settings_tax_rate_range"),
        ),
        sa.CheckConstraint(
            "ship_by_days >= 0 AND ship_by_days <= 365", name=op.f("ck_shop_settings_ship_by_range")
        ),
        sa.CheckConstraint(
            "return_window_days >= 0 AND return_window_days <= 365",
            name=op.f("ck_shop_settings_return_window_range"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"],
            ["users.id"],
            name=op.f("fk_shop_settings_seller_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seller_id", name=op.f("pk_shop_settings")),
    )
    op.create_table(
        "addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("line1", sa.String(length=200), nullable=False),
        sa.Column("line2", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("postal_code", sa.String(length=20), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("phone", sa.String(length=30), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_addresses_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_addresses")),
    )
    op.create_index("ix_addresses_user_id", "addresses", ["user_id"])
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("shipping_address", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("shipping_minor", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("tax_minor", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("tax_minor")
        batch.drop_column("shipping_minor")
        batch.drop_column("shipping_address")
    op.drop_index("ix_addresses_user_id", table_name="addresses")
    op.drop_table("addresses")
    op.drop_table("shop_settings")
