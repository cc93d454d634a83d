"""What a crowd reads on every tap stays warm while the crowd keeps tapping: a token in use and
a seller's terms are read again in the background before they run out, a cold entry is read
once for everyone asking, and a purchase the stock script refuses reads neither."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from livecommerce.accounts.users import TokenCache, revoke_token
from livecommerce.checkout.purchases import PURCHASES
from livecommerce.orders.shops import ShopTerms, ShopTermsCache
from livecommerce.platform.db.engine import ENGINE
from tests.conftest import sign_up
from tests.mediapeers import until
from tests.shopping import buy, open_shop


async def test_a_token_in_use_is_renewed_before_its_end_and_a_revoked_one_is_dropped(
    client: TestClient[Any, Any],
) -> None:
    account = await sign_up(client, "Crowd")
    other = await sign_up(client, "Other")
    tokens = TokenCache(client.app[ENGINE], ttl_s=1.0)
    try:
        assert (await tokens.user(account.token)) is not None
        assert (await tokens.user(other.token)) is not None
        first_read = time.monotonic()
        await asyncio.sleep(0.8)  # within the last 30 % of the entries' second
        assert tokens.known(account.token) is not None  # answers at once, and renews
        assert tokens.known(other.token) is not None
        await until(lambda: tokens.renewed == 2, 5.0)
        # Past the first read's end, both are still known without a lookup.
        await asyncio.sleep(max(0.0, first_read + 1.1 - time.monotonic()))
        assert tokens.known(account.token) is not None
        assert tokens.known(other.token) is not None

        # Revoked in SQL behind the cache's back (no event): dropped by its renewal at the
        # latest, while the token still in use stays known across two more lifetimes.
        await revoke_token(client.app[ENGINE], other.token)
        stop_at = time.monotonic() + 2.5
        while time.monotonic() < stop_at:
            assert tokens.known(account.token) is not None
            tokens.known(other.token)
            await asyncio.sleep(0.02)
        assert tokens.known(other.token) is None
    finally:
        await tokens.close()


async def test_shop_terms_are_read_once_for_a_crowd_and_renewed_ahead(
    client: TestClient[Any, Any],
) -> None:
    seller = await sign_up(client, "Seller")
    terms = ShopTermsCache(client.app[ENGINE], ttl_s=1.0)
    try:
        await terms.save(seller.id, ShopTerms(shipping_flat_minor=500))
        crowd = await asyncio.gather(*(terms.get(seller.id) for _ in range(200)))
        assert {t.shipping_flat_minor for t in crowd} == {500}
        assert terms.reads == 1

        await asyncio.sleep(0.8)
        assert (await terms.get(seller.id)).shipping_flat_minor == 500  # at once, and renewed
        await until(lambda: terms.reads == 2, 5.0)
        await asyncio.sleep(0.4)  # past the first read's end: still cached
        assert (await terms.get(seller.id)).shipping_flat_minor == 500
        assert terms.reads == 2
    finally:
        await terms.close()


async def test_a_purchase_refused_by_the_stock_script_reads_no_terms(
    client: TestClient[Any, Any],
) -> None:
    _seller, buyer, sku = await open_shop(client, stock=0)
    terms = client.app[PURCHASES].terms
    reads = terms.reads
    status, body = await buy(buyer, sku)
    assert (status, body["error"]["code"]) == (409, "sold_out")
    assert terms.reads == reads

    _seller, buyer, sku = await open_shop(client, stock=1)
    status, body = await buy(buyer, sku)
    assert status == 201, body
    assert terms.reads == reads + 1  # a winner's order is priced with them
