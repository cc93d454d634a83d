"""fulfillment (parcels, carrier and tracking on orders) and returns

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parcels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=True),
        sa.Column("shipping_address", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("carrier", sa.String(length=40), nullable=True),
        sa.Column("tracking_number", sa.String(length=60), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('packed', 'shipped', 'delivered')", name=op.f("ck_parcels_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_parcels_seller_id_users")
        ),
        sa.ForeignKeyConstraint(["buyer_id"], ["users.id"], name=op.f("fk_parcels_buyer_id_users")),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name=op.f("fk_parcels_stream_id_streams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcels")),
    )
    op.create_index("ix_parcels_seller_id_status", "parcels", ["seller_id", "status"])
    op.create_table(
        "order_returns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("rma", sa.String(length=20), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("free_returns", sa.Boolean(), nullable=True),
        sa.Column("refusal_reason", sa.String(length=500), nullable=True),
        sa.Column("resellable_qty", sa.Integer(), nullable=True),
        sa.Column("refund_minor", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("qty > 0", name=op.f("ck_order_returns_qty_positive")),
        sa.CheckConstraint(
            "status IN ('requested', 'approved', 'refused', 'receiving', 'received')",
            name=op.f("ck_order_returns_status_known"),
        ),
        sa.CheckConstraint(
            "resellable_qty IS NULL OR (resellable_qty >= 0 AND resellable_qty <= qty)",
            name=op.f("ck_order_returns_resellable_within_qty"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_returns_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_order_returns_buyer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_order_returns_seller_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_returns")),
        sa.UniqueConstraint("rma", name=op.f("uq_order_returns_rma")),
    )
    op.create_index("ix_order_returns_order_id", "order_returns", ["order_id"])
    op.create_index("ix_order_returns_seller_id_status", "order_returns", ["seller_id", "status"])
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("parcel_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("carrier", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("tracking_number", sa.String(length=60), nullable=True))
        batch.add_column(sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_orders_parcel_id", "orders", ["parcel_id"])


def downgrade() -> None:
    op.drop_index("ix_orders_parcel_id", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("delivered_at")
        batch.drop_column("shipped_at")
        batch.drop_column("tracking_number")
        batch.drop_column("carrier")
        batch.drop_column("parcel_id")
    op.drop_index("ix_order_returns_seller_id_status", table_name="order_returns")
    op.drop_index("ix_order_returns_order_id", table_name="order_returns")
    op.drop_table("order_returns")
    op.drop_index("ix_parcels_seller_id_status", table_name="parcels")
    op.drop_table("parcels")
