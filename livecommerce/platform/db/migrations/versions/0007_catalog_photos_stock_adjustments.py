"""product photos, stock adjustments (the audit trail) and low-stock thresholds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_photos_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_photos")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_product_photos_storage_key")),
    )
    op.create_index("ix_product_photos_product_id", "product_photos", ["product_id"])
    op.create_table(
        "stock_adjustments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("on_hand_after", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("delta <> 0", name=op.f("ck_stock_adjustments_delta_not_zero")),
        sa.CheckConstraint(
            "reason IN ('received', 'damaged', 'lost', 'count_correction', 'returned', 'other')",
            name=op.f("ck_stock_adjustments_reason_known"),
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"],
            ["skus.id"],
            name=op.f("fk_stock_adjustments_sku_id_skus"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_stock_adjustments_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_adjustments")),
    )
    op.create_index("ix_stock_adjustments_sku_id", "stock_adjustments", ["sku_id"])
    op.create_table(
        "stock_alerts",
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("threshold >= 0", name=op.f("ck_stock_alerts_threshold_not_negative")),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["skus.id"], name=op.f("fk_stock_alerts_sku_id_skus"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sku_id", name=op.f("pk_stock_alerts")),
    )


def downgrade() -> None:
    op.drop_table("stock_alerts")
    op.drop_index("ix_stock_adjustments_sku_id", table_name="stock_adjustments")
    op.drop_table("stock_adjustments")
    op.drop_index("ix_product_photos_product_id", table_name="product_photos")
    op.drop_table("product_photos")
