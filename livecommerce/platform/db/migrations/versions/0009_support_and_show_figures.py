"""customer service (cases and order conversations) and show figures (stream moments)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("problem", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "problem IN ('not_received', 'damaged', 'wrong_item')",
            name=op.f("ck_support_cases_problem_known"),
        ),
        sa.CheckConstraint(
            "state IN ('open', 'answered', 'resolved', 'closed')",
            name=op.f("ck_support_cases_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_support_cases_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_support_cases_seller_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_cases")),
    )
    op.create_index("ix_support_cases_order_id", "support_cases", ["order_id"])
    op.create_index("ix_support_cases_seller_state", "support_cases", ["seller_id", "state"])
    op.create_table(
        "support_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=6), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "side IN ('buyer', 'seller')", name=op.f("ck_support_messages_side_known")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_support_messages_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_support_messages_seller_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_support_messages_author_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["support_cases.id"],
            name=op.f("fk_support_messages_case_id_support_cases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_messages")),
    )
    op.create_index("ix_support_messages_order_id", "support_messages", ["order_id", "id"])
    op.create_index("ix_support_messages_seller_id", "support_messages", ["seller_id", "id"])
    op.create_table(
        "stream_moments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("viewers", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("sku_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "kind IN ('viewers', 'pin', 'unpin', 'sale', 'sale_end')",
            name=op.f("ck_stream_moments_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_stream_moments_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_moments")),
    )
    op.create_index("ix_stream_moments_stream_at", "stream_moments", ["stream_id", "at_ms"])


def downgrade() -> None:
    op.drop_index("ix_stream_moments_stream_at", table_name="stream_moments")
    op.drop_table("stream_moments")
    op.drop_index("ix_support_messages_seller_id", table_name="support_messages")
    op.drop_index("ix_support_messages_order_id", table_name="support_messages")
    op.drop_table("support_messages")
    op.drop_index("ix_support_cases_seller_state", table_name="support_cases")
    op.drop_index("ix_support_cases_order_id", table_name="support_cases")
    op.drop_table("support_cases")
