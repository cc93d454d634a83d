"""Stripe webhooks: signature checked on the raw body, each event id processed once.

Handlers look the PaymentIntent up again rather than trusting the event's copy, so duplicated
and out-of-order deliveries land on Stripe's current state: harmless by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.checkout.orders import find_order
from livecommerce.checkout.payments import Payments
from livecommerce.checkout.stripe_gateway import IntentState, WebhookEvent
from livecommerce.db.tables import utcnow, webhook_events
from livecommerce.errors import LiveCommerceError

log = logging.getLogger(__name__)


class Webhooks:
    def __init__(self, engine: AsyncEngine, payments: Payments) -> None:
        self._engine = engine
        self._payments = payments
        self._handlers: dict[str, Callable[[IntentState], Awaitable[str]]] = {
            "payment_intent.succeeded": self._intent_changed,
            "payment_intent.payment_failed": self._intent_changed,
            "payment_intent.canceled": self._intent_changed,
            "payment_intent.requires_action": self._intent_changed,
        }

    async def handle(self, payload: bytes, signature: str | None) -> dict[str, str]:
        """Verify and process one delivery; returns what was done (for logs and tests)."""
        event = self._payments.gateway.parse_event(payload, signature)
        async with self._engine.connect() as conn:
            seen = (
                await conn.execute(
                    sa.select(webhook_events.c.id).where(webhook_events.c.id == event.event_id)
                )
            ).scalar_one_or_none()
        if seen is not None:
            return {"event": event.event_id, "result": "duplicate"}
        result = await self._dispatch(event)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    webhook_events.insert().values(
                        id=event.event_id, type=event.type, received_at=utcnow()
                    )
                )
        except IntegrityError:
            result = "duplicate"  # a concurrent delivery of the same event finished first
        return {"event": event.event_id, "result": result}

    async def _dispatch(self, event: WebhookEvent) -> str:
        handler = self._handlers.get(event.type)
        if handler is None or event.intent is None:
            return "ignored"
        return await handler(event.intent)

    async def _intent_changed(self, intent: IntentState) -> str:
        async with self._engine.connect() as conn:
            order = await find_order(conn, payment_intent_id=intent.intent_id)
            if order is None and intent.order_id is not None:
                order = await find_order(conn, id=intent.order_id)
        if order is None:
            return "unknown_order"
        try:
            current = await self._payments.gateway.retrieve(intent.intent_id)
        except LiveCommerceError:
            current = intent
        if current.status == "requires_payment_method" and not current.failure_code:
            current = intent  # the event carries the decline that the intent no longer shows
        updated = await self._payments.apply(order.id, current)
        return updated.status.value
