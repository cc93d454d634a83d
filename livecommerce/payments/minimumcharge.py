"""Stripe's smallest chargeable amount per currency, in minor units.

Stripe refuses a PaymentIntent below these (``amount_too_small``): a flash sale at 0 or a few
cents could be bought but never paid. The figures are Stripe's published minimums for the
currencies it settles most; a currency missing here is only required to be positive, and if
Stripe still refuses the amount, the charge fails with the same ``amount_too_small`` code.
"""

from __future__ import annotations

from livecommerce.errors import ErrorCode, LiveCommerceError

MINIMUM_CHARGE: dict[str, int] = {
    "USD": 50,
    "AED": 200,
    "AUD": 50,
    "BGN": 100,
    "BRL": 50,
    "CAD": 50,
    "CHF": 50,
    "CZK": 1500,
    "DKK": 250,
    "EUR": 50,
    "GBP": 30,
    "HKD": 400,
    "HUF": 17500,
    "INR": 50,
    "JPY": 50,
    "MXN": 1000,
    "MYR": 200,
    "NOK": 300,
    "NZD": 50,
    "PLN": 200,
    "RON": 200,
    "SEK": 300,
    "SGD": 50,
    "THB": 1000,
}


def minimum_charge(currency: str) -> int:
    """The smallest amount Stripe charges in ``currency`` (1 for a currency not in the table)."""
    return MINIMUM_CHARGE.get(currency.upper(), 1)


def check_chargeable(amount: int, currency: str) -> None:
    """Refuse an amount Stripe would refuse to charge, with ``amount_too_small``."""
    least = minimum_charge(currency)
    if amount < least:
        raise LiveCommerceError(
            ErrorCode.AMOUNT_TOO_SMALL,
            f"{currency.upper()} charges start at {least} minor units",
            minimum={"amount": least, "currency": currency.upper()},
        )
