"""What a buyer keeps with Stripe: their customer and their one-tap card, read and written in
the ``users`` row (``stripe_customer_id``, ``default_payment_method_id``, ``card_label``).

A card becomes the one-tap card when the buyer saves it (``save_card``) or once a card chosen
at checkout has paid (``remember_card``); a card declined at checkout is not kept
(``drop_unpaid_card``). A customer or card Stripe no longer knows is forgotten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.users import User
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.payments.stripe_gateway import StripeGateway
from livecommerce.platform.db.tables import users

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wallet:
    """What a buyer has on file with Stripe: the customer, and the saved card (if any)."""

    customer_id: str | None
    payment_method_id: str | None
    card_label: str | None


class Wallets:
    def __init__(self, engine: AsyncEngine, gateway: StripeGateway) -> None:
        self._engine = engine
        self.gateway = gateway

    async def saved_card(self, user_id: int) -> Wallet:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        users.c.stripe_customer_id,
                        users.c.default_payment_method_id,
                        users.c.card_label,
                    ).where(users.c.id == user_id)
                )
            ).one()
        return Wallet(row.stripe_customer_id, row.default_payment_method_id, row.card_label)

    async def customer(self, user: User, wallet: Wallet | None = None) -> str:
        """The buyer's Stripe customer, made now if they have none (``wallet``: as read)."""
        if wallet is None:
            wallet = await self.saved_card(user.id)
        if wallet.customer_id:
            return wallet.customer_id
        customer_id = await self.gateway.ensure_customer(None, user.email, user.id)
        async with self._engine.begin() as conn:
            await conn.execute(
                users.update().where(users.c.id == user.id).values(stripe_customer_id=customer_id)
            )
        return customer_id

    async def card_setup(self, user: User) -> str:
        """The client secret with which the buyer's browser sets up a card to save."""
        customer_id = await self.customer(user)
        try:
            return await self.gateway.card_setup(customer_id)
        except LiveCommerceError as exc:
            if not await self.customer_gone(exc, user.id, customer_id):
                raise
        return await self.gateway.card_setup(await self.customer(user))

    async def save_card(self, user: User, payment_method_id: str) -> str:
        """Keep a card for one-tap buys; returns its label (brand and last four digits)."""
        customer_id = await self.customer(user)
        try:
            card = await self.gateway.save_card(customer_id, payment_method_id)
        except LiveCommerceError as exc:
            if not await self.customer_gone(exc, user.id, customer_id):
                raise
            card = await self.gateway.save_card(await self.customer(user), payment_method_id)
        async with self._engine.begin() as conn:
            await conn.execute(
                users.update()
                .where(users.c.id == user.id)
                .values(default_payment_method_id=card.payment_method_id, card_label=card.label)
            )
        return card.label

    async def drop_unpaid_card(self, user_id: int, payment_method_id: str) -> None:
        """Detach a card that was declined, unless it is the buyer's one-tap card."""
        wallet = await self.saved_card(user_id)
        if wallet.payment_method_id == payment_method_id:
            return
        try:
            await self.gateway.forget_card(payment_method_id)
        except LiveCommerceError:
            log.warning("could not detach a declined card", extra={"user_id": user_id})

    async def remember_card(self, user_id: int, payment_method_id: str) -> None:
        """Make a card that has just paid the buyer's one-tap card. Never raises: the order is
        paid whatever happens to the card."""
        try:
            wallet = await self.saved_card(user_id)
            if wallet.customer_id is None or wallet.payment_method_id == payment_method_id:
                return
            card = await self.gateway.save_card(wallet.customer_id, payment_method_id)
            async with self._engine.begin() as conn:
                await conn.execute(
                    users.update()
                    .where(users.c.id == user_id)
                    .values(default_payment_method_id=card.payment_method_id, card_label=card.label)
                )
        except Exception:
            log.exception("could not keep the card that paid", extra={"user_id": user_id})

    async def customer_gone(self, exc: LiveCommerceError, user_id: int, customer_id: str) -> bool:
        """After a refusal: if Stripe no longer knows the customer, forget it (a new one is made
        next time) and say so."""
        if exc.code not in (ErrorCode.CARD_UNUSABLE, ErrorCode.INVALID_INPUT):
            return False
        if await self.gateway.customer_exists(customer_id):
            return False
        await self.forget_gone(user_id, customer_id, forget_card=True)
        return True

    async def forget_gone(self, user_id: int, customer_id: str, *, forget_card: bool) -> None:
        """Stripe no longer knows the saved card or the customer: stop offering them."""
        values: dict[str, Any] = {}
        if forget_card:
            values.update(default_payment_method_id=None, card_label=None)
        if not await self.gateway.customer_exists(customer_id):
            values.update(stripe_customer_id=None, default_payment_method_id=None, card_label=None)
        if values:
            log.warning("forgetting a card Stripe no longer knows", extra={"user_id": user_id})
            async with self._engine.begin() as conn:
                await conn.execute(users.update().where(users.c.id == user_id).values(**values))

    async def clear_one_tap(self, user_id: int, payment_method_id: str) -> None:
        """Stop offering ``payment_method_id`` for one tap, if it is still the buyer's."""
        async with self._engine.begin() as conn:
            await conn.execute(
                users.update()
                .where(
                    users.c.id == user_id,
                    users.c.default_payment_method_id == payment_method_id,
                )
                .values(default_payment_method_id=None, card_label=None)
            )
