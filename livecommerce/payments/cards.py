"""A buyer's saved cards: the list kept on their Stripe customer, the one-tap card among them,
replacing and removing one.

The one-tap card is the buyer's ``default_payment_method_id`` (``Payments.saved_card``). A card
becomes it when the buyer saves one (``POST /api/cards``, the account page) or when a card
chosen at checkout has paid (``Wallets.remember_card``); a card declined at checkout is never
kept. Every card here belongs to the caller's own customer: any other id is simply not found.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from livecommerce.accounts.users import User
from livecommerce.errors import NotFound
from livecommerce.payments.payments import Payments
from livecommerce.payments.stripe_gateway import SavedCard
from livecommerce.payments.wallets import Wallet

CARD_ID = re.compile(r"^pm_[A-Za-z0-9]{1,100}$")  # a card in a path: a PaymentMethod id


def card_view(card: SavedCard, one_tap: bool) -> dict[str, Any]:
    return {
        "id": card.payment_method_id,
        "label": card.label,
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "one_tap": one_tap,
    }


class Cards:
    def __init__(self, payments: Payments) -> None:
        self._payments = payments

    async def list(self, user: User) -> list[dict[str, Any]]:
        """The buyer's cards, the one-tap card first."""
        wallet = await self._payments.saved_card(user.id)
        if wallet.customer_id is None:
            return []
        kept = await self._payments.gateway.cards(wallet.customer_id)
        views = [card_view(c, c.payment_method_id == wallet.payment_method_id) for c in kept]
        if wallet.payment_method_id and not any(v["one_tap"] for v in views):
            # Saved before it was kept on the customer (or Stripe lists lag): still shown.
            found = await self._payments.gateway.card_of(wallet.payment_method_id)
            if found is not None:
                views.append(card_view(found[0], True))
        views.sort(key=lambda v: not v["one_tap"])
        return views

    async def _own(self, user: User, card_id: str) -> tuple[SavedCard, Wallet]:
        """The caller's card ``card_id``, or ``not_found`` (someone else's, or no such card)."""
        if not CARD_ID.match(card_id):
            raise NotFound("card")
        wallet = await self._payments.saved_card(user.id)
        if wallet.customer_id is None:
            raise NotFound("card")
        found = await self._payments.gateway.card_of(card_id)
        if found is None:
            raise NotFound("card")
        card, customer = found
        if customer != wallet.customer_id and card_id != wallet.payment_method_id:
            raise NotFound("card")
        return card, wallet

    async def remove(self, user: User, card_id: str) -> None:
        """Forget a card; if it was the one-tap card, the next Buy asks for a card."""
        card, wallet = await self._own(user, card_id)
        if wallet.payment_method_id == card.payment_method_id:
            await self._payments.wallets.clear_one_tap(user.id, card.payment_method_id)
        await self._payments.gateway.forget_card(card.payment_method_id)

    async def replace(self, user: User, card_id: str, payment_method_id: str) -> str:
        """Put a new card in the place of ``card_id``: the new one becomes the one-tap card and
        the old one is forgotten. Returns the new card's label."""
        old, _wallet = await self._own(user, card_id)
        label = await self._payments.save_card(user, payment_method_id)
        if old.payment_method_id != payment_method_id:
            await self._payments.gateway.forget_card(old.payment_method_id)
        return label


CARDS = web.AppKey("cards", Cards)
