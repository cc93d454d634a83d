"""refund and restock limits: orders.restocked_qty and checks that refunds stay within the sale

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("restocked_qty", sa.Integer(), nullable=False, server_default="0")
        )
    # Orders refunded before this revision restocked what their refund rows say.
    op.execute(
        "UPDATE orders SET restocked_qty = (SELECT COALESCE(SUM(refunds.restocked_qty), 0)"
        " FROM refunds WHERE refunds.order_id = orders.id)"
    )
    op.execute("UPDATE orders SET restocked_qty = qty WHERE restocked_qty > qty")
    op.execute(
        "UPDATE orders SET refunded_minor = amount_minor WHERE refunded_minor > amount_minor"
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_orders_refund_within_amount"),
            "refunded_minor >= 0 AND refunded_minor <= amount_minor",
        )
        batch_op.create_check_constraint(
            op.f("ck_orders_restock_within_qty"), "restocked_qty >= 0 AND restocked_qty <= qty"
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_orders_restock_within_qty"), type_="check")
        batch_op.drop_constraint(op.f("ck_orders_refund_within_amount"), type_="check")
        batch_op.drop_column("restocked_qty")
