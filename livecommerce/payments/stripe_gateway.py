"""The one module that speaks to Stripe, through the official ``stripe`` library (async calls).

Every call passes a token bucket first (Stripe allows on the order of 100 requests/s in live
mode), so a flash sale queues instead of failing on 429s; 429s, 5xx and connection errors that
still happen are retried with backoff under the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import stripe

from livecommerce.errors import ErrorCode, LiveCommerceError

log = logging.getLogger(__name__)

T = TypeVar("T")
STRIPE_JS_URL = "https://js.stripe.com/v3/"  # Stripe.js must be loaded from Stripe itself


def stripe_js_url(configured: str, api_base: str) -> str:
    """Where pages load Stripe.js: ``configured`` (STRIPE_JS_URL) if set, else Stripe's own,
    unless the API at ``api_base`` is an emulator (localstripe serves a stand-in under it)."""
    if configured:
        return configured
    return f"{api_base.rstrip('/')}/js.stripe.com/v3/" if api_base else STRIPE_JS_URL


@dataclass(frozen=True)
class IntentState:
    """What we keep of a PaymentIntent."""

    intent_id: str
    status: str
    client_secret: str | None
    amount: int
    currency: str
    failure_code: str | None = None
    failure_message: str | None = None
    order_id: int | None = None
    hold_id: str | None = None
    payment_method_id: str | None = None
    save_card: bool = False  # the buyer asked to keep this card for one tap, once it has paid
    one_tap: bool = False  # charged off-session on the saved card (a decline ends the order)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def needs_action(self) -> bool:
        return self.status == "requires_action"


@dataclass(frozen=True)
class SavedCard:
    payment_method_id: str
    label: str
    brand: str = "card"
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None


def _card(pm: Any) -> SavedCard:
    data = _plain(pm)
    card = _plain(data.get("card"))
    brand = str(card.get("brand") or "card")
    last4 = str(card.get("last4") or "????")
    month, year = card.get("exp_month"), card.get("exp_year")
    return SavedCard(
        payment_method_id=str(data["id"]),
        label=f"{brand.title()} •••• {last4}",
        brand=brand,
        last4=last4,
        exp_month=int(month) if month else None,
        exp_year=int(year) if year else None,
    )


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    type: str
    intent: IntentState | None


class TokenBucket:
    """Allow ``rate`` acquisitions per second on average, with bursts of ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(rate / 4, 1.0)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


def _plain(obj: Any) -> dict[str, Any]:
    """Stripe objects are not dicts (since stripe 13); read them as plain data."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return dict(obj.to_dict())


def _intent(obj: Any) -> IntentState:
    pi = _plain(obj)
    error = pi.get("last_payment_error") or None
    metadata = pi.get("metadata") or {}
    order_id = metadata.get("order_id")
    hold_id = metadata.get("hold_id")
    method = pi.get("payment_method")
    if isinstance(method, dict):
        method = method.get("id")
    return IntentState(
        intent_id=pi["id"],
        status=pi["status"],
        client_secret=pi.get("client_secret"),
        amount=int(pi.get("amount") or 0),
        currency=str(pi.get("currency") or "").upper(),
        failure_code=(error.get("decline_code") or error.get("code")) if error else None,
        failure_message=error.get("message") if error else None,
        order_id=int(order_id) if order_id and str(order_id).isdigit() else None,
        hold_id=str(hold_id) if hold_id else None,
        payment_method_id=str(method) if method else None,
        save_card=metadata.get("save_card") == "1",
        one_tap=metadata.get("one_tap") == "1",
    )


def _paying_already() -> LiveCommerceError:
    # The same key with other parameters (or while its first use is still running): a second
    # PaymentIntent for the same order and card would be a second charge, so none is made.
    return LiveCommerceError(
        ErrorCode.CONFLICT, "this order is already being paid with that card; refresh it"
    )


def _refused(exc: stripe.InvalidRequestError) -> LiveCommerceError:
    """What an invalid request during a charge means for the buyer (a 4xx, never a 500)."""
    message = exc.user_message or str(exc.error.message if exc.error else exc)
    if exc.code == "amount_too_small":
        return LiveCommerceError(ErrorCode.AMOUNT_TOO_SMALL, f"the amount is too small: {message}")
    if exc.http_status == 404 or exc.code == "resource_missing":
        # A card detached or deleted, or a customer deleted, since it was saved.
        return LiveCommerceError(
            ErrorCode.CARD_UNUSABLE, "that card can no longer be used; pay with another card"
        )
    if exc.code in ("payment_method_not_available", "payment_method_unexpected_state"):
        return LiveCommerceError(
            ErrorCode.CARD_UNUSABLE, "that card can no longer be used; pay with another card"
        )
    return LiveCommerceError(ErrorCode.PAYMENT_FAILED, f"the payment was refused: {message}")


class StripeGateway:
    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        *,
        api_base: str = "",
        max_rps: float = 80.0,
        retries: int = 4,
    ) -> None:
        base = {"api": api_base} if api_base else None
        self._http = stripe.HTTPXClient()  # kept: ``close`` closes it (the client has no close)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses=base,  # type: ignore[arg-type]
            http_client=self._http,
            max_network_retries=0,
        )
        self._webhook_secret = webhook_secret
        self._bucket = TokenBucket(max_rps)
        self._retries = retries
        self.calls = 0
        self.retried = 0

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one Stripe call through the bucket, retrying what Stripe says is retryable."""
        attempt = 0
        while True:
            await self._bucket.acquire()
            self.calls += 1
            try:
                return await fn()
            except (stripe.RateLimitError, stripe.APIConnectionError) as exc:
                error: stripe.StripeError = exc
            except stripe.APIError as exc:
                if (exc.http_status or 500) < 500:
                    raise
                error = exc
            attempt += 1
            if attempt > self._retries:
                log.warning("Stripe call failed after retries", extra={"error": str(error)})
                raise LiveCommerceError(
                    ErrorCode.PAYMENT_UNAVAILABLE, "the payment provider is not answering; retry"
                ) from error
            self.retried += 1
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0) * (0.5 + random.random()))

    async def ensure_customer(self, customer_id: str | None, email: str, user_id: int) -> str:
        if customer_id:
            return customer_id
        # Unique per call, kept across its retries: a key made of the user id alone would hand
        # another deployment sharing the Stripe account (or this one after a reset) a customer
        # that is not this user's.
        key = f"customer-{user_id}-{uuid.uuid4().hex}"
        customer = await self._call(
            lambda: self._client.v1.customers.create_async(
                params={"email": email, "metadata": {"user_id": str(user_id)}},
                options={"idempotency_key": key},
            )
        )
        return str(customer["id"])

    async def customer_exists(self, customer_id: str) -> bool:
        """False if Stripe no longer knows the customer (deleted, or another account's)."""
        try:
            customer = await self._call(
                lambda: self._client.v1.customers.retrieve_async(customer_id)
            )
        except stripe.InvalidRequestError:
            return False
        return not _plain(customer).get("deleted", False)

    async def card_setup(self, customer_id: str) -> str:
        """A SetupIntent for saving a card in the browser (Payment Element, or the emulator's
        card element); returns its client secret. The card is then kept with ``save_card``."""
        try:
            intent = await self._call(
                lambda: self._client.v1.setup_intents.create_async(
                    params=stripe.params.SetupIntentCreateParams(
                        customer=customer_id, usage="off_session"
                    )
                )
            )
        except stripe.InvalidRequestError as exc:
            raise _refused(exc) from None
        return str(intent["client_secret"])

    async def save_card(self, customer_id: str, payment_method_id: str) -> SavedCard:
        """Attach a card to the customer and make it the default for one-tap buys."""
        try:
            pm = await self._call(
                lambda: self._client.v1.payment_methods.attach_async(
                    payment_method_id, params={"customer": customer_id}
                )
            )
        except stripe.InvalidRequestError as exc:
            raise LiveCommerceError(
                ErrorCode.INVALID_INPUT, f"that card cannot be saved: {exc.user_message or exc}"
            ) from None
        except stripe.CardError as exc:
            raise LiveCommerceError(
                ErrorCode.PAYMENT_FAILED, exc.user_message or "the card was declined"
            ) from None
        try:
            await self._call(
                lambda: self._client.v1.customers.update_async(
                    customer_id,
                    params={"invoice_settings": {"default_payment_method": payment_method_id}},
                )
            )
        except stripe.InvalidRequestError as exc:
            raise _refused(exc) from None
        return _card(pm)

    async def charge(
        self,
        *,
        order_id: int,
        hold_id: str,
        amount: int,
        currency: str,
        customer_id: str | None,
        payment_method_id: str | None,
        off_session: bool,
        save_card: bool = False,
    ) -> IntentState:
        """Create (and, given a card, confirm) the order's PaymentIntent.

        The idempotency key is derived from the order's hold id (random, unique across
        deployments sharing a Stripe account, unlike the order id): however often this is
        retried, one order makes at most one PaymentIntent per card. The hold id also goes in the
        metadata, so a webhook can tell this deployment's intents from another's. A decline comes
        back as a ``requires_payment_method`` state with the failure, not as an exception; a
        request Stripe refuses (a card or customer that no longer exists, an amount below the
        minimum) raises ``card_unusable``, ``amount_too_small`` or ``payment_failed``.
        """
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "payment_method_types": ["card"],
            "metadata": {"order_id": str(order_id), "hold_id": hold_id},
        }
        if customer_id:
            params["customer"] = customer_id
        if payment_method_id:
            params["payment_method"] = payment_method_id
            params["confirm"] = True
            if off_session:
                params["off_session"] = True
                params["metadata"]["one_tap"] = "1"
        if save_card and customer_id and not off_session:
            # Kept once it has paid (``Payments.mark_paid``), never before: a card that is
            # declined must not become the one-tap card. The browser set it up off-session.
            params["metadata"]["save_card"] = "1"
        key = f"order-{hold_id}-{payment_method_id or 'element'}"
        try:
            pi = await self._call(
                lambda: self._client.v1.payment_intents.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": key},
                )
            )
        except stripe.CardError as exc:
            return self._declined(exc, amount, currency)
        except stripe.InvalidRequestError as exc:
            raise _refused(exc) from None
        except stripe.IdempotencyError:
            raise _paying_already() from None
        return _intent(pi)

    @staticmethod
    def _declined(exc: stripe.CardError, amount: int, currency: str) -> IntentState:
        error = exc.error
        intent = getattr(error, "payment_intent", None) if error is not None else None
        code = (
            (getattr(error, "decline_code", None) or exc.code or "card_declined")
            if error
            else (exc.code or "card_declined")
        )
        if intent is not None:
            return replace(
                _intent(intent), failure_code=code, failure_message=exc.user_message or str(exc)
            )
        return IntentState(
            intent_id="",
            status="requires_payment_method",
            client_secret=None,
            amount=amount,
            currency=currency,
            failure_code=code,
            failure_message=exc.user_message or "the card was declined",
        )

    async def confirm(
        self, intent_id: str, payment_method_id: str, *, save_card: bool = False
    ) -> IntentState:
        # Set the card first, then confirm: the two-step form works on Stripe and its emulators.
        params: dict[str, Any] = {
            "payment_method": payment_method_id,
            "metadata": {"save_card": "1" if save_card else ""},
        }
        try:
            await self._call(
                lambda: self._client.v1.payment_intents.update_async(
                    intent_id,
                    params=params,  # type: ignore[arg-type]
                )
            )
            pi = await self._call(lambda: self._client.v1.payment_intents.confirm_async(intent_id))
        except stripe.CardError as exc:
            return self._declined(exc, 0, "")
        except stripe.InvalidRequestError as exc:
            raise _refused(exc) from None
        except stripe.IdempotencyError:
            raise _paying_already() from None
        return _intent(pi)

    async def cards(self, customer_id: str) -> list[SavedCard]:
        """The cards kept on the customer, newest first."""
        try:
            found = await self._call(
                lambda: self._client.v1.payment_methods.list_async(
                    params={"customer": customer_id, "type": "card", "limit": 20}
                )
            )
        except stripe.InvalidRequestError as exc:
            raise _refused(exc) from None
        return [_card(pm) for pm in _plain(found).get("data") or []]

    async def card_of(self, payment_method_id: str) -> tuple[SavedCard, str | None] | None:
        """A card and the customer it is kept on (None: not kept); None if Stripe has none."""
        try:
            pm = await self._call(
                lambda: self._client.v1.payment_methods.retrieve_async(payment_method_id)
            )
        except stripe.InvalidRequestError:
            return None
        customer = _plain(pm).get("customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        return _card(pm), str(customer) if customer else None

    async def forget_card(self, payment_method_id: str) -> None:
        """Detach a card from its customer: it can no longer be charged off-session."""
        try:
            await self._call(
                lambda: self._client.v1.payment_methods.detach_async(payment_method_id)
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise _refused(exc) from None

    async def retrieve(self, intent_id: str) -> IntentState:
        try:
            pi = await self._call(lambda: self._client.v1.payment_intents.retrieve_async(intent_id))
        except stripe.InvalidRequestError:
            raise LiveCommerceError(
                ErrorCode.UNKNOWN_PAYMENT_INTENT, "the payment provider does not know this payment"
            ) from None
        return _intent(pi)

    async def cancel(self, intent_id: str) -> IntentState:
        """Cancel an intent; one that already succeeded (or was cancelled) is returned as is."""
        try:
            pi = await self._call(lambda: self._client.v1.payment_intents.cancel_async(intent_id))
        except stripe.InvalidRequestError:
            return await self.retrieve(intent_id)
        return _intent(pi)

    async def refund(self, intent_id: str, amount: int, idempotency_key: str) -> tuple[str, str]:
        """Refund ``amount`` of a succeeded intent; returns (refund id, status)."""
        try:
            refund = await self._call(
                lambda: self._client.v1.refunds.create_async(
                    params={"payment_intent": intent_id, "amount": amount},
                    options={"idempotency_key": idempotency_key},
                )
            )
        except stripe.InvalidRequestError as exc:
            raise LiveCommerceError(
                ErrorCode.CONFLICT, f"the refund was refused: {exc.user_message or exc}"
            ) from None
        return str(refund["id"]), str(refund["status"])

    def parse_event(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """Verify the signature on the raw body and pull out the PaymentIntent, if any."""
        if not self._webhook_secret:
            raise LiveCommerceError(ErrorCode.BAD_SIGNATURE, "webhooks are not configured")
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._webhook_secret)
        except (stripe.SignatureVerificationError, ValueError, RecursionError) as exc:
            # ValueError covers bad UTF-8 and numbers past int's digit limit; RecursionError a
            # signed body nested absurdly deep: neither is a 500.
            raise LiveCommerceError(
                ErrorCode.BAD_SIGNATURE, f"webhook signature rejected: {exc}"
            ) from None
        obj = _plain(event)["data"]["object"]
        intent = _intent(obj) if obj.get("object") == "payment_intent" else None
        return WebhookEvent(event_id=str(event["id"]), type=str(event["type"]), intent=intent)
