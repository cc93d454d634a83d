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
    text,
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
    # A physical good: its orders ship, so they need an address before they are paid.
    Column("ships", Boolean, nullable=False, default=False, server_default=text("false")),
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
    # Where it ships (a copy of the buyer's address when the order was placed), and what the
    # buyer pays on top of the goods. amount_minor is what is charged: goods + shipping + tax
    # added on top (tax included in prices is inside the goods).
    Column("shipping_address", JSON),
    Column("shipping_minor", BigInteger, nullable=False, default=0, server_default="0"),
    Column("tax_minor", BigInteger, nullable=False, default=0, server_default="0"),
    # Fulfillment: the parcel it travels in (see ``parcels``) and, once shipped, how.
    Column("parcel_id", Integer),
    Column("carrier", String(40)),
    Column("tracking_number", String(60)),
    Column("shipped_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
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
    Index("ix_orders_parcel_id", "parcel_id"),
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

# Shops: a seller's settings for what a buyer pays on top of the price and what happens after.
shop_settings = Table(
    "shop_settings",
    metadata,
    Column("seller_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("shipping_flat_minor", BigInteger, nullable=False, default=0),
    # Orders (per buyer and show) at or above this ship free; NULL: never free.
    Column("free_shipping_over_minor", BigInteger),
    # "included": prices include tax (shown, not added); "added": tax_rate_bp added on top.
    Column("tax_mode", String(10), nullable=False, default="included"),
    Column("tax_rate_bp", Integer, nullable=False, default=0),
    Column("ship_by_days", Integer, nullable=False, default=3),
    Column("return_window_days", Integer, nullable=False, default=30),
    Column("free_returns", Boolean, nullable=False, default=True),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("shipping_flat_minor >= 0", name="shipping_not_negative"),
    CheckConstraint("tax_mode IN ('included', 'added')", name="tax_mode_known"),
    CheckConstraint("tax_rate_bp >= 0 AND tax_rate_bp <= 10000", name="tax_rate_range"),
    CheckConstraint("ship_by_days >= 0 AND ship_by_days <= 365", name="ship_by_range"),
    CheckConstraint(
        "return_window_days >= 0 AND return_window_days <= 365", name="return_window_range"
    ),
)

# Addresses: a buyer's saved shipping addresses; an order keeps a copy of the one it ships to.
addresses = Table(
    "addresses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("line1", String(200), nullable=False),
    Column("line2", String(200), nullable=False, default=""),
    Column("city", String(100), nullable=False),
    Column("region", String(100), nullable=False, default=""),
    Column("postal_code", String(20), nullable=False),
    Column("country", String(2), nullable=False),
    Column("phone", String(30), nullable=False, default=""),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_addresses_user_id", "user_id"),
)

# Following: a user follows a creator, or asks to be reminded when one scheduled show goes live;
# each notice sent is claimed by one unique row, so several processes never send it twice.
follows = Table(
    "follows",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("creator_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("user_id <> creator_id", name="not_self"),
    Index("ix_follows_creator_id", "creator_id"),
)

show_reminders = Table(
    "show_reminders",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("stream_id", Integer, ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_show_reminders_stream_id", "stream_id"),
)

sent_notices = Table(
    "sent_notices",
    metadata,
    Column("id", Integer, primary_key=True),
    # "receipt" (subject: an order) or "live_now" (subject: a stream)
    Column("kind", String(20), nullable=False),
    Column("subject_id", Integer, nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    UniqueConstraint("kind", "subject_id", "user_id", name="uq_sent_notices_once"),
)

# Customer service: a conversation per order between its buyer and the seller's team, and the
# cases a buyer opens about a problem (not received, damaged, wrong item) that the seller answers.
support_cases = Table(
    "support_cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("seller_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("problem", String(20), nullable=False),
    Column("state", String(10), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("waiting_since", UTCDateTime),  # set while the buyer waits for the seller's answer
    Column("answered_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("problem IN ('not_received', 'damaged', 'wrong_item')", name="problem_known"),
    CheckConstraint("state IN ('open', 'answered', 'resolved', 'closed')", name="state_known"),
    Index("ix_support_cases_order_id", "order_id"),
    Index("ix_support_cases_seller_state", "seller_id", "state"),
)

support_messages = Table(
    "support_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("seller_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("author_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("side", String(6), nullable=False),  # buyer | seller (the seller or their team)
    Column("case_id", Integer, ForeignKey("support_cases.id", ondelete="SET NULL")),
    Column("text", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("side IN ('buyer', 'seller')", name="side_known"),
    Index("ix_support_messages_order_id", "order_id", "id"),
    Index("ix_support_messages_seller_id", "seller_id", "id"),
)

# Show figures: what a stream's timeline is drawn from. One row per viewer-count sample
# (kind 'viewers', every FIGURES_SAMPLE_SECONDS per stream) and per pin or flash-sale moment.
stream_moments = Table(
    "stream_moments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("stream_id", Integer, ForeignKey("streams.id", ondelete="CASCADE"), nullable=False),
    Column("at_ms", BigInteger, nullable=False),  # server epoch ms
    Column("kind", String(10), nullable=False),
    Column("viewers", Integer),
    Column("product_id", Integer),
    Column("sku_id", Integer),
    Column("label", String(200), nullable=False, default=""),
    CheckConstraint("kind IN ('viewers', 'pin', 'unpin', 'sale', 'sale_end')", name="kind_known"),
    Index("ix_stream_moments_stream_at", "stream_id", "at_ms"),
)

# Fulfillment and returns: a parcel carries one buyer's paid orders of one show to one address;
# a return takes some or all units of a delivered order back (RMA), then refunds them.
parcels = Table(
    "parcels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seller_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("buyer_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("stream_id", Integer, ForeignKey("streams.id")),
    Column("shipping_address", JSON),
    Column("status", String(20), nullable=False),
    Column("carrier", String(40)),
    Column("tracking_number", String(60)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("shipped_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    CheckConstraint("status IN ('packed', 'shipped', 'delivered')", name="status_known"),
    Index("ix_parcels_seller_id_status", "seller_id", "status"),
)

order_returns = Table(
    "order_returns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("buyer_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("seller_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("status", String(20), nullable=False),
    Column("rma", String(20), unique=True),
    Column("instructions", Text),
    Column("free_returns", Boolean),
    Column("refusal_reason", String(500)),
    Column("resellable_qty", Integer),
    Column("refund_minor", BigInteger),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("received_at", UTCDateTime),
    CheckConstraint("qty > 0", name="qty_positive"),
    CheckConstraint(
        "status IN ('requested', 'approved', 'refused', 'receiving', 'received')",
        name="status_known",
    ),
    CheckConstraint(
        "resellable_qty IS NULL OR (resellable_qty >= 0 AND resellable_qty <= qty)",
        name="resellable_within_qty",
    ),
    Index("ix_order_returns_order_id", "order_id"),
    Index("ix_order_returns_seller_id_status", "seller_id", "status"),
)

# Catalog back office: a product's photos (their thumbnails live in object storage under
# ``storage_key``), stock adjustments as an audit trail, and per-SKU low-stock thresholds.
product_photos = Table(
    "product_photos",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    # A random prefix per photo: object names are never reused, even after the row is gone.
    Column("storage_key", String(100), nullable=False, unique=True),
    Column("position", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_product_photos_product_id", "product_id"),
)

stock_adjustments = Table(
    "stock_adjustments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sku_id", Integer, ForeignKey("skus.id", ondelete="CASCADE"), nullable=False),
    Column("actor_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("reason", String(20), nullable=False),
    Column("note", String(200), nullable=False, default=""),
    Column("on_hand_after", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("delta <> 0", name="delta_not_zero"),
    CheckConstraint(
        "reason IN ('received', 'damaged', 'lost', 'count_correction', 'returned', 'other')",
        name="reason_known",
    ),
    Index("ix_stock_adjustments_sku_id", "sku_id"),
)

stock_alerts = Table(
    "stock_alerts",
    metadata,
    Column("sku_id", Integer, ForeignKey("skus.id", ondelete="CASCADE"), primary_key=True),
    Column("threshold", Integer, nullable=False),
    # When the seller was told the SKU ran low; cleared once it is above the threshold again.
    Column("alerted_at", UTCDateTime),
    CheckConstraint("threshold >= 0", name="threshold_not_negative"),
)
