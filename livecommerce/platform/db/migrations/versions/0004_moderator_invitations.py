"""moderator invitations

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_invitations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (email IS NULL)",
            name=op.f("ck_stream_invitations_one_invitee"),
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_stream_invitations_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stream_invitations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_invitations")),
        sa.UniqueConstraint("stream_id", "user_id", name="uq_stream_invitations_user"),
        sa.UniqueConstraint("stream_id", "email", name="uq_stream_invitations_email"),
    )
    op.create_index("ix_stream_invitations_user_id", "stream_invitations", ["user_id"])
    op.create_index("ix_stream_invitations_email", "stream_invitations", ["email"])


def downgrade() -> None:
    op.drop_index("ix_stream_invitations_email", table_name="stream_invitations")
    op.drop_index("ix_stream_invitations_user_id", table_name="stream_invitations")
    op.drop_table("stream_invitations")
