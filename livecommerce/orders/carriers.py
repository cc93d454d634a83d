"""Carriers a seller ships with, and the public tracking page of each parcel number."""

from __future__ import annotations

import re
from urllib.parse import quote

# Known carriers by their key (what the API takes and the order JSON shows) and the tracking
# page a buyer opens. Any other carrier name is accepted as written and has no link.
TRACKING_PAGES: dict[str, tuple[str, str]] = {
    "ups": ("UPS", "https://www.ups.com/track?tracknum={n}"),
    "usps": ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={n}"),
    "fedex": ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={n}"),
    "dhl": ("DHL", "https://www.dhl.com/global-en/home/tracking.html?tracking-id={n}"),
    "royal_mail": ("Royal Mail", "https://www.royalmail.com/track-your-item#/tracking-results/{n}"),
    "dpd": ("DPD", "https://www.dpd.com/tracking/?parcelNumber={n}"),
    "colissimo": (
        "La Poste / Colissimo",
        "https://www.laposte.fr/outils/suivre-vos-envois?code={n}",
    ),
}

_ALIASES = {
    "royalmail": "royal_mail",
    "laposte": "colissimo",
    "la_poste": "colissimo",
    "la_poste_colissimo": "colissimo",
    "federal_express": "fedex",
}


def carrier_key(name: str) -> str:
    """The key of a known carrier ("Royal Mail" -> "royal_mail"), else the name as given."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    slug = _ALIASES.get(slug, slug)
    return slug if slug in TRACKING_PAGES else name.strip()


def tracking_url(carrier: str | None, number: str | None) -> str | None:
    """The carrier's tracking page for ``number``; None for an unknown carrier or no number."""
    if not carrier or not number:
        return None
    page = TRACKING_PAGES.get(carrier_key(carrier))
    return page[1].format(n=quote(number, safe="")) if page else None


def carrier_name(carrier: str | None) -> str | None:
    """How a person reads the carrier: "Royal Mail" for ``royal_mail``, else as written."""
    if not carrier:
        return None
    page = TRACKING_PAGES.get(carrier_key(carrier))
    return page[0] if page else carrier
