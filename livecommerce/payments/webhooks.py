"""Stripe webhooks: signature checked on the raw body, each event id processed once.

Handlers look the PaymentIntent up again rather than trusting the event's copy, so duplicated
and out-of-order deliveries land on Stripe's current state: harmless by construction.

An intent moves an order only if it is the one recorded for that order (or, before any was
recorded, carries the order's random hold id in its metadata), for the order's amount and
currency. Anything else, such as another deployment's intent on a shared Stripe account, is
refused: answered 200 (Stripe must not retry it) with ``result: refused`` and a stable ``code``,
and logged with that code.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.orders.orders import find_order
from livecommerce.payments.payments import Payments
from livecommerce.payments.stripe_gateway import IntentState, WebhookEvent
from livecommerce.platform.db.tables import utcnow, webhook_events

log = logging.getLogger(__name__)


class Webhooks:
    def __init__(self, engine: AsyncEngine, payments: Payments) -> None:
        self._engine = engine
        self._payments = payments
        self._handlers: dict[str, Callable[[IntentState], Awaitable[dict[str, str]]]] = {
            "payment_intent.succeeded": self._intent_changed,
            "payment_intent.payment_failed": self._intent_changed,
            "payment_intent.canceled": self._intent_changed,
            "payment_intent.requires_action": self._intent_changed,
        }

    async def handle(self, payload: bytes, signature: str | None) -> dict[str, str]:
        """Verify and process one delivery; returns what was done (for logs and tests).

        ``result`` is the order's status, ``duplicate``, ``ignored``, or ``refused`` with a
        ``code`` (``unknown_payment_intent``, ``payment_intent_mismatch``, ``amount_mismatch``,
        ``currency_mismatch``).
        """
        event = self._payments.gateway.parse_event(payload, signature)
        async with self._engine.connect() as conn:
            seen = (
                await conn.execute(
                    sa.select(webhook_events.c.id).where(webhook_events.c.id == event.event_id)
                )
            ).scalar_one_or_none()
        if seen is not None:
            return {"event": event.event_id, "result": "duplicate"}
        outcome = await self._dispatch(event)
        if outcome.get("result") == "refused":
            log.warning(
                "webhook refused: %s",
                outcome["code"],
                extra={"event_id": event.event_id, "code": outcome["code"]},
            )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    webhook_events.insert().values(
                        id=event.event_id, type=event.type, received_at=utcnow()
                    )
                )
        except IntegrityError:
            outcome = {"result": "duplicate"}  # a concurrent delivery finished first
        return {"event": event.event_id, **outcome}

    async def _dispatch(self, event: WebhookEvent) -> dict[str, str]:
        handler = self._handlers.get(event.type)
        if handler is None or event.intent is None:
            return {"result": "ignored"}
        return await handler(event.intent)

    async def _intent_changed(self, intent: IntentState) -> dict[str, str]:
        async with self._engine.connect() as conn:
            order = await find_order(conn, payment_intent_id=intent.intent_id)
            if order is None and intent.hold_id is not None:
                # Made by us but not recorded yet (the answer from Stripe was lost): the hold
                # id is random per order, so another deployment's intent cannot match it.
                order = await find_order(conn, hold_id=intent.hold_id)
                if order is not None and order.payment_intent_id is not None:
                    return _refused(ErrorCode.PAYMENT_INTENT_MISMATCH)
        if order is None:
            return _refused(ErrorCode.UNKNOWN_PAYMENT_INTENT)
        try:
            current = await self._payments.gateway.retrieve(intent.intent_id)
        except LiveCommerceError:
            current = intent
        if current.intent_id != intent.intent_id:
            return _refused(ErrorCode.PAYMENT_INTENT_MISMATCH)
        if current.status == "requires_payment_method" and not current.failure_code:
            current = intent  # the event carries the decline that the intent no longer shows
        try:
            updated = await self._payments.apply(order.id, current)
        except LiveCommerceError as exc:
            if exc.code in _MISMATCHES:
                return _refused(exc.code)
            raise
        return {"result": updated.status.value}


_MISMATCHES = frozenset(
    {ErrorCode.PAYMENT_INTENT_MISMATCH, ErrorCode.AMOUNT_MISMATCH, ErrorCode.CURRENCY_MISMATCH}
)


def _refused(code: ErrorCode) -> dict[str, str]:
    return {"result": "refused", "code": code.value}


WEBHOOKS = web.AppKey("webhooks", Webhooks)
