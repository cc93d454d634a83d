"""Table definitions (SQLAlchemy Core). Migrations under ``migrations/`` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("display_name", String(80), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("stripe_customer_id", String(100)),
    Column("default_payment_method_id", String(100)),
    Column("card_label", String(60)),
    Column("created_at", UTCDateTime, nullable=False),
)

auth_tokens = Table(
    "auth_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_auth_tokens_user_id", "user_id"),
)

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("image_url", String(2000)),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_products_owner_id", "owner_id"),
)

skus = Table(
    "skus",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    Column("code", String(64), nullable=False, unique=True),
    Column("attributes", JSON, nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    # Written by livecommerce/inventory/ alone; a new SKU starts at 0 and inventory counts it in.
    Column("stock_on_hand", Integer, nullable=False, default=0),
    CheckConstraint("price_minor >= 0", name="price_not_negative"),
    CheckConstraint("stock_on_hand >= 0", name="stock_not_negative"),
    Index("ix_skus_product_id", "product_id"),
)

streams = Table(
    "streams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("creator_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("scheduled_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("stream_key", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    CheckConstraint("status IN ('scheduled', 'live', 'ended')", name="status_known"),
    Index("ix_streams_status", "status"),
)

stream_moderators = Table(
    "stream_moderators",
    metadata,
    Column("stream_id", Integer, ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# A creator's offer to moderate, to an account (by id) or to an email whether or not an account
# has it yet (so the answer to "invite" says nothing about who is signed up).
stream_invitations = Table(
    "stream_invitations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("stream_id", Integer, ForeignKey("streams.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("email", String(254)),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("(user_id IS NULL) <> (email IS NULL)", name="one_invitee"),
    UniqueConstraint("stream_id", "user_id", name="uq_stream_invitations_user"),
    UniqueConstraint("stream_id", "email", name="uq_stream_invitations_email"),
    Index("ix_stream_invitations_user_id", "user_id"),
    Index("ix_stream_invitations_email", "email"),
)

stream_lineup = Table(
    "stream_lineup",
    metadata,
    Column("stream_id", Integer, ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, nullable=False),
    UniqueConstraint("stream_id", "position", name="uq_stream_lineup_position"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("buyer_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("seller_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("sku_id", Integer, ForeignKey("skus.id"), nullable=False),
    Column("stream_id", Integer, ForeignKey("streams.id")),
    Column("qty", Integer, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("sale_id", String(40)),
    Column("status", String(20), nullable=False),
    Column("hold_id", String(40), nullable=False, unique=True),
    Column("idempotency_key", String(200), nullable=False),
    Column("payment_intent_id", String(100), unique=True),
    Column("payment_status", String(40)),
    Column("failure_code", String(60)),
    Column("failure_message", String(500)),
    Column("refunded_minor", BigInteger, nullable=False, default=0),
    # Units put back on the shelf by refunds so far (never more than were sold).
    Column("restocked_qty", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("paid_at", UTCDateTime),
    # What was bought, as the buyer saw it then: the product with its variant ("Hoodie (M)").
    Column("item_name", String(320)),
    CheckConstraint("qty > 0", name="qty_positive"),
    CheckConstraint(
        "refunded_minor >= 0 AND refunded_minor <= amount_minor", name="refund_within_amount"
    ),
    CheckConstraint("restocked_qty >= 0 AND restocked_qty <= qty", name="restock_within_qty"),
    UniqueConstraint("buyer_id", "idempotency_key", name="uq_orders_buyer_idempotency"),
    Index("ix_orders_status_expires_at", "status", "expires_at"),
    Index("ix_orders_buyer_id", "buyer_id"),
    Index("ix_orders_sku_id_status", "sku_id", "status"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("stripe_refund_id", String(100), unique=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("restocked_qty", Integer, nullable=False, default=0),
    Column("reason", String(200), nullable=False, default=""),
    Column("status", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_refunds_order_id", "order_id"),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
