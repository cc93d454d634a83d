"""Sold out, known on every process: the crowd is refused without a call to Redis or SQL, with
the answer the reserve script gives, and buys again as soon as units come back. Two apps share
SQL and Redis, as two processes do; the burst runs on two real server processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bench.crowd import make_buyers
from bench.processes import ServerProcess
from livecommerce.accounts.users import TOKENS
from livecommerce.app import create_app
from livecommerce.checkout.purchases import PURCHASES
from livecommerce.checkout.routes import NewPurchase, _plain_purchase
from livecommerce.config import Settings
from livecommerce.errors import LiveCommerceError
from livecommerce.events.bus import EVENTS
from livecommerce.inventory.reservations import RESERVATIONS
from livecommerce.inventory.soldout import SoldOutBoard
from livecommerce.orders.expiry import Reaper
from livecommerce.payments.payments import PAYMENTS
from livecommerce.platform.db.engine import ENGINE, create_engine
from livecommerce.platform.db.tables import orders
from livecommerce.platform.payload import validate_json
from tests.conftest import Account, hoodie, sign_up
from tests.liveclient import Viewer
from tests.shopping import buy, open_shop

SOLD_OUT = {"error": {"code": "sold_out", "message": "sold out", "available": 0}}


@pytest.fixture
async def other(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    """A second process: same database, same Redis namespace."""
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


def _board(client: TestClient[Any, Any]) -> SoldOutBoard:
    return client.app[PURCHASES].sold_out


def _on(client: TestClient[Any, Any], account: Account) -> Account:
    return Account(client, {"id": account.id, "email": account.email}, account.token)


async def _until(condition: Callable[[], bool], seconds: float = 2.0) -> float:
    """Wait until ``condition`` holds; returns how long it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "not within the time"
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def _two_processes(
    client: TestClient[Any, Any], other: TestClient[Any, Any], stock: int
) -> tuple[Account, Account, Account, int]:
    """A shop on ``client``; returns (seller, winner, crowd member on ``other``, SKU id)."""
    async with asyncio.timeout(10):
        for app in (client, other):
            await app.app[EVENTS].wait_listening()
    seller, winner, sku = await open_shop(client, stock=stock)
    crowd = _on(other, await sign_up(client, "crowd"))
    return seller, winner, crowd, sku


async def _sell_out(
    client: TestClient[Any, Any], other: TestClient[Any, Any], winner: Account, sku: int, qty: int
) -> dict[str, Any]:
    status, body = await buy(winner, sku, qty=qty)
    assert status == 201, body
    for app in (client, other):
        await _until(lambda app=app: _board(app).is_out(sku))  # type: ignore[misc]
    return body


async def test_sold_out_is_heard_on_the_other_process_and_cleared_by_a_cancel(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    _seller, winner, crowd, sku = await _two_processes(client, other, stock=2)
    bought = await _sell_out(client, other, winner, sku, qty=2)

    # The other process refuses by itself, with the script's very answer: the winner's own
    # second tap goes to the script (they hold units), and is refused the same way.
    refused_before = _board(other).refused
    status, body = await buy(crowd, sku)
    assert (status, body) == (409, SOLD_OUT)
    assert _board(other).refused == refused_before + 1
    assert await buy(winner, sku) == (409, SOLD_OUT)

    await winner.call("POST", f"/api/orders/{bought['order']['id']}/cancel", status=200)
    for app in (client, other):
        await _until(lambda app=app: not _board(app).is_out(sku))  # type: ignore[misc]
    refused_before = _board(other).refused
    status, body = await buy(crowd, sku, qty=2)
    assert status == 201, body
    assert _board(other).refused == refused_before


async def test_an_expired_hold_clears_sold_out_everywhere(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    _seller, winner, crowd, sku = await _two_processes(client, other, stock=1)
    bought = await _sell_out(client, other, winner, sku, qty=1)
    assert (await buy(crowd, sku))[0] == 409

    app = client.app
    reaper = Reaper(app[ENGINE], app[RESERVATIONS], app[PAYMENTS], f"lock-{uuid.uuid4().hex}")
    assert await reaper.sweep(time.time_ns() // 1_000_000 + 3_600_000) == 1
    order = await winner.call("GET", f"/api/orders/{bought['order']['id']}", status=200)
    assert order["order"]["status"] == "expired"
    took = await _until(lambda: not _board(other).is_out(sku) and not _board(client).is_out(sku))
    assert took < 1.0
    status, body = await buy(crowd, sku)
    assert status == 201, body


async def test_a_restock_by_the_seller_clears_sold_out_everywhere(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    seller, winner, crowd, sku = await _two_processes(client, other, stock=1)
    await _sell_out(client, other, winner, sku, qty=1)
    product = (await seller.call("GET", "/api/products", status=200))["products"][0]
    code = product["variants"][0]["sku"]
    change = {"variants": [{"sku": code, "stock_on_hand": 4}]}
    await seller.call("PATCH", f"/api/products/{product['id']}", change, status=200)
    await _until(lambda: not _board(other).is_out(sku))
    status, body = await buy(crowd, sku, qty=3)
    assert status == 201, body


async def _raw_buy(
    account: Account, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    """POST a body as sent, with the account's token and a fresh key unless ``headers`` say."""
    sent = {
        **account.headers,
        "Idempotency-Key": uuid.uuid4().hex,
        "Content-Type": "application/json",
        **(headers or {}),
    }
    response = await account.client.post("/api/purchases", data=body, headers=sent)
    return response.status, await response.json(), response.headers["Content-Type"]


async def test_the_short_path_answers_exactly_what_the_full_path_would(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    seller, winner, crowd, sku = await _two_processes(client, other, stock=1)
    key = uuid.uuid4().hex
    status, first = await buy(winner, sku, key=key)
    assert status == 201, first
    await _until(lambda: _board(other).is_out(sku) and _board(other).knows_buyer(sku, winner.id))
    # The full path's refusal (its first tap here: this process learns the crowd's token).
    status, full, full_type = await _raw_buy(crowd, b'{"sku_id": %d}' % sku)
    assert (status, full) == (409, SOLD_OUT)
    assert other.app[TOKENS].known(crowd.token) is not None

    refused_before = _board(other).refused
    for body in (
        b'{"sku_id": %d}' % sku,
        b' {\n "qty" : 1, "sku_id":%d,"pay_with_saved_card":false, "stream_id": null }\r\n' % sku,
    ):
        assert await _raw_buy(crowd, body) == (409, SOLD_OUT, full_type)
    assert _board(other).refused == refused_before + 2

    # Whatever the full path answers otherwise, it still answers.
    for body, code in (
        (b'{"sku_id": %d, "qty": 0}' % sku, "invalid_input"),
        (b'{"sku_id": %d, "qty": 1000}' % sku, "invalid_input"),
        (b'{"sku_id": %d, "sku_id": %d}' % (sku, sku), "invalid_json"),
        (b'{"sku_id": %d, "extra": 1}' % sku, "invalid_input"),
        (b'{"sku_id": %d, "pay_with_saved_card": 1}' % sku, "invalid_input"),
        (b'{"sku_id": %d, "stream_id": 999999}' % sku, "not_found"),
        (b'{"sku_id": "%d"}' % sku, "invalid_input"),
        (b'{"sku_id": %d' % sku, "invalid_json"),
    ):
        status, answer, _type = await _raw_buy(crowd, body)
        assert answer["error"]["code"] == code, (body, answer)
    plain = b'{"sku_id": %d}' % sku
    for headers, code in (
        ({"Idempotency-Key": ""}, "invalid_input"),
        ({"Content-Type": "text/plain"}, "unsupported_media_type"),
        ({"Authorization": "Bearer nobody"}, "not_authenticated"),
    ):
        status, answer, _type = await _raw_buy(crowd, plain, headers)
        assert answer["error"]["code"] == code, (headers, answer)
    # The seller may not buy their own product, sold out or not; the winner's retry is answered
    # with their order, and their new tap by the script.
    status, answer, _type = await _raw_buy(_on(other, seller), plain)
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    status, again, _type = await _raw_buy(_on(other, winner), plain, {"Idempotency-Key": key})
    assert status == 200 and again["order"]["id"] == first["order"]["id"], again
    refused_before = _board(other).refused
    assert (await _raw_buy(_on(other, winner), plain))[:2] == (409, SOLD_OUT)
    assert _board(other).refused == refused_before, "the winner's tap went to the script"


async def test_a_socket_buy_is_refused_on_the_same_fast_path(
    client: TestClient[Any, Any], other: TestClient[Any, Any], viewers: list[Viewer]
) -> None:
    _seller, winner, crowd, sku = await _two_processes(client, other, stock=1)
    await _sell_out(client, other, winner, sku, qty=1)
    socket = Viewer()
    viewers.append(socket)
    await socket.connect(str(other.make_url("/")).rstrip("/"), crowd.token)
    refused_before = _board(other).refused
    answer = await socket.call("buy", {"sku_id": sku, "idempotency_key": uuid.uuid4().hex})
    assert answer == SOLD_OUT
    assert _board(other).refused == refused_before + 1


async def test_a_winners_retry_on_the_other_process_answers_their_order(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    _seller, winner, _crowd, sku = await _two_processes(client, other, stock=1)
    key = uuid.uuid4().hex
    status, first = await buy(winner, sku, key=key)
    assert status == 201, first
    await _until(lambda: _board(other).is_out(sku) and _board(other).knows_buyer(sku, winner.id))
    status, again = await buy(_on(other, winner), sku, key=key)
    assert status == 200, again
    assert again["order"]["id"] == first["order"]["id"] and again["replayed"] is True


async def test_a_process_started_after_the_sale_still_answers_a_winners_retry(
    aiohttp_client: Any,
    settings: Settings,
    client: TestClient[Any, Any],
    other: TestClient[Any, Any],
) -> None:
    _seller, winner, crowd, sku = await _two_processes(client, other, stock=1)
    key = uuid.uuid4().hex
    status, first = await buy(winner, sku, key=key)
    assert status == 201, first
    late: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    async with asyncio.timeout(10):
        await late.app[EVENTS].wait_listening()
    await asyncio.sleep(1.1)  # the script says "sold out" again at most once a second
    assert await buy(_on(late, crowd), sku) == (409, SOLD_OUT)  # the script's refusal
    # The late process learnt of the running out, and read who bought before it started.
    await _until(lambda: _board(late).is_out(sku) and _board(late).knows_buyer(sku, winner.id))
    refused_before = _board(late).refused
    assert await buy(_on(late, crowd), sku) == (409, SOLD_OUT)
    assert _board(late).refused == refused_before + 1
    status, again = await buy(_on(late, winner), sku, key=key)
    assert status == 200 and again["order"]["id"] == first["order"]["id"], again


async def test_a_sold_out_flash_sale_is_refused_with_its_own_answer(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    creator, winner, sku = await open_shop(client, stock=10)
    crowd = _on(other, await sign_up(client, "crowd"))
    async with asyncio.timeout(10):
        for app in (client, other):
            await app.app[EVENTS].wait_listening()
    product_id = (await creator.call("GET", "/api/products", status=200))["products"][0]["id"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product_id]}, status=201
        )
    )["stream"]["id"]
    terms = {"sku_id": sku, "sale_price": 1900, "quantity": 2, "duration_s": 60}
    await creator.call("POST", f"/api/streams/{stream}/sales", terms | {"per_buyer_limit": 2})
    assert (await buy(winner, sku, qty=2, stream_id=stream))[0] == 201

    def sale_out() -> bool:
        notice = _board(other).notice(sku)
        return notice is not None and notice.sale_left == 0 and notice.available == 8

    await _until(sale_out)

    refused_before = _board(other).refused
    status, body = await buy(crowd, sku, stream_id=stream)
    assert status == 409
    assert body == {
        "error": {"code": "sold_out", "message": "the flash sale has 0 left", "available": 0}
    }
    assert _board(other).refused == refused_before + 1
    # Outside the sale's stream the list price applies, and units are left.
    status, body = await buy(crowd, sku)
    assert status == 201, body


async def test_a_pin_warms_every_process_before_the_first_buyer(
    client: TestClient[Any, Any], other: TestClient[Any, Any]
) -> None:
    creator = await sign_up(client, "creator")
    async with asyncio.timeout(10):
        for app in (client, other):
            await app.app[EVENTS].wait_listening()
    product = (
        await creator.call(
            "POST", "/api/products", hoodie(f"W-{uuid.uuid4().hex[:6]}", 5), status=201
        )
    )["product"]
    sku = product["variants"][0]["id"]
    stream = (
        await creator.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product["id"]]}, status=201
        )
    )["stream"]["id"]
    buyer = _on(other, await sign_up(client, "buyer"))
    assert await client.app[RESERVATIONS].level(sku) is None  # nobody has bought it yet
    reads = other.app[PURCHASES].directory.reads
    await creator.call(
        "POST", f"/api/streams/{stream}/pin", {"product_id": product["id"]}, status=201
    )
    assert await client.app[RESERVATIONS].level(sku) is not None  # the counters, at once
    await _until(lambda: other.app[PURCHASES].directory.reads == reads + 1)
    status, body = await buy(buyer, sku, stream_id=stream)
    assert status == 201, body
    purchases = other.app[PURCHASES]
    assert (purchases.cold_loads, purchases.directory.reads) == (0, reads + 1)


async def test_a_burst_on_two_processes_sells_exactly_the_stock(
    server_processes: list[ServerProcess], postgres_url: str
) -> None:
    listed, crowd_size = 15, 600
    tokens = await make_buyers(postgres_url, crowd_size)
    a, b = server_processes
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400)) as session:
        seller = await _sign_up_on(session, a.url)
        async with session.post(
            f"{a.url}/api/products",
            json=hoodie(f"R-{uuid.uuid4().hex[:6]}", listed),
            headers={"Authorization": f"Bearer {seller}"},
        ) as response:
            sku = (await response.json())["product"]["variants"][0]["id"]

        async def one(i: int, token: str) -> tuple[int, dict[str, Any]]:
            server = (a, b)[i % 2]
            async with session.post(
                f"{server.url}/api/purchases",
                json={"sku_id": sku, "qty": 1, "pay_with_saved_card": False},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
            ) as response:
                return response.status, await response.json()

        first = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens[:300])))
        # One winner gives their unit back in the middle of the crowd: exactly one more sells.
        winner = next(i for i, (status, _) in enumerate(first) if status == 201)
        won, cancel = first[winner][1]["order"]["id"], tokens[winner]
        async with session.post(
            f"{b.url}/api/orders/{won}/cancel", headers={"Authorization": f"Bearer {cancel}"}
        ) as response:
            assert response.status == 200
        second = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens[300:])))

    answers = first + second
    assert sum(1 for status, _ in answers if status == 201) == listed + 1
    refusals = [body for status, body in answers if status != 201]
    assert all(body == SOLD_OUT for body in refusals), {str(b) for b in refusals}
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(orders.c.status).where(orders.c.sku_id == sku))
            ).all()
    finally:
        await engine.dispose()
    assert sorted(r.status for r in rows).count("reserved") == listed
    assert len(rows) == listed + 1


async def _sign_up_on(session: aiohttp.ClientSession, url: str) -> str:
    email = f"seller-{uuid.uuid4().hex[:6]}@example.com"
    account = {"email": email, "password": "correct horse", "display_name": "Seller"}
    async with session.post(f"{url}/api/accounts", json=account) as response:
        body = await response.json()
        assert response.status == 201, body
        return str(body["token"])


@pytest.mark.parametrize(
    "body",
    [
        b'{"sku_id": 7}',
        b'{"sku_id": 7, "qty": 3, "stream_id": 9, "pay_with_saved_card": false}',
        b'{"sku_id": 7, "qty": 3, "stream_id": 9, "pay_with_saved_card": false,'
        b' "unit_price_minor": 4900}',
        b'{"sku_id": 7, "unit_price_minor": 0}',
        b'{"sku_id": 7, "unit_price_minor": null}',
        b'{"sku_id": 7, "unit_price_minor": 2147483648}',
        b'\t{ "pay_with_saved_card" :true ,"stream_id":null,"sku_id":2147483647}\n',
        b'{"sku_id": 7, "qty": 0}',
        b'{"sku_id": 0}',
        b'{"sku_id": 2147483648}',
        b'{"sku_id": 07}',
        b'{"sku_id": 7, "qty": 1, "qty": 2}',
        b'{"sku_id": 7, "stream_id": 0}',
        b'{"sku_id": 7, "pay_with_saved_card": null}',
        b'{"sku_id": 7, "note": 1}',
        b'{"qty": 1}',
        b'{"sku_id": 7.0}',
        b'[{"sku_id": 7}]',
    ],
)
def test_a_plain_body_is_read_as_the_parser_reads_it_or_left_to_it(body: bytes) -> None:
    plain = _plain_purchase(body)
    try:
        parsed = validate_json(NewPurchase, body.decode())
    except LiveCommerceError:
        assert plain is None  # the full path answers (and names what is wrong)
        return
    if plain is not None:
        assert plain.model_dump() == parsed.model_dump()
