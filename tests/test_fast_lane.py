"""The listener's fast lane (platform/fastlane.py): a sure "sold out" answered before aiohttp
parses the request, with the very bytes aiohttp would send; a plain tap it cannot refuse (a
winner) taken to the use-case from the lane and answered as aiohttp would; everything else
answered by aiohttp as before. One app, two listeners on it: one with the lane, one without,
so every answer is compared with the one the app gives without the lane."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from livecommerce.app import create_app, fast_lane
from livecommerce.checkout.purchases import PURCHASES
from livecommerce.config import Settings
from livecommerce.health import METRICS
from livecommerce.platform import aiohttpseam
from livecommerce.platform.db.engine import create_engine
from livecommerce.platform.fastlane import PASS_BUDGET, FastLane
from livecommerce.platform.headertimeout import with_head_timeout
from livecommerce.platform.logs import AccessLogger
from tests.mediapeers import until

KEEPALIVE_S = 1.0


class Shop:
    """A running app with a lane listener (``lane_port``) and a plain one (``plain_port``)."""

    def __init__(self, runner: web.AppRunner, lane: FastLane, lane_port: int, plain_port: int):
        self.runner = runner
        self.app = runner.app
        self.lane = lane
        self.lane_port = lane_port
        self.plain_port = plain_port


@contextlib.asynccontextmanager
async def running_shop(settings: Settings, keepalive_s: float) -> AsyncIterator[Shop]:
    settings = replace(settings, header_read_timeout_s=keepalive_s)
    runner = web.AppRunner(
        create_app(settings), access_log_class=AccessLogger, keepalive_timeout=keepalive_s
    )
    await runner.setup()
    assert runner.server is not None
    lane = fast_lane(runner.app)
    assert lane is not None
    loop = asyncio.get_running_loop()
    with_lane = await loop.create_server(
        with_head_timeout(runner.server, keepalive_s, lane), "127.0.0.1", 0
    )
    plain = await loop.create_server(with_head_timeout(runner.server, keepalive_s), "127.0.0.1", 0)
    try:
        yield Shop(
            runner,
            lane,
            with_lane.sockets[0].getsockname()[1],
            plain.sockets[0].getsockname()[1],
        )
    finally:
        with_lane.close()
        plain.close()
        await runner.cleanup()


@pytest.fixture
async def shop(settings: Settings) -> AsyncIterator[Shop]:
    """Connections idle for a second are closed (the keep-alive test's timeout)."""
    async with running_shop(settings, KEEPALIVE_S) as running:
        yield running


class Connection:
    """One kept-alive HTTP/1.1 connection that sends exact bytes and reads whole answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(raw)
        await self.writer.drain()
        return await self.answer()

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 100 "):  # an interim answer: the real one follows
                head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
            return status, headers, body

    async def closed(self) -> bool:
        async with asyncio.timeout(10):
            return await self.reader.read(1) == b""

    def close(self) -> None:
        self.writer.close()


async def _json(port: int, method: str, path: str, body: Any, token: str = "") -> Any:
    conn = await Connection.open(port)
    try:
        data = json.dumps(body).encode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        status, _, answer = await conn.send(
            f"{method} {path} HTTP/1.1\r\nHost: shop\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        assert status in (200, 201), answer
        return json.loads(answer)
    finally:
        conn.close()


async def _account(shop: Shop, name: str) -> tuple[int, str]:
    body = {"email": f"{name}-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse"}
    answer = await _json(shop.plain_port, "POST", "/api/accounts", body | {"display_name": name})
    return int(answer["user"]["id"]), str(answer["token"])


def purchase(
    token: str,
    sku: int,
    *,
    body: bytes | None = None,
    key: str | None = None,
    target: str = "/api/purchases",
    version: str = "HTTP/1.1",
    extra: str = "",
    auth: str | None = None,
) -> bytes:
    data = body if body is not None else b'{"sku_id": %d, "qty": 1}' % sku
    authorization = f"Authorization: Bearer {token}\r\n" if auth is None else auth
    return (
        f"POST {target} {version}\r\nHost: shop\r\n{authorization}"
        f"Idempotency-Key: {key or uuid.uuid4().hex}\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def _sold_out_sku(shop: Shop) -> tuple[str, int]:
    """A buyer's token and a SKU the board knows to be sold out."""
    _seller_id, seller = await _account(shop, "Seller")
    variant = {"sku": f"L-{uuid.uuid4().hex[:6]}", "price_minor": 4900, "currency": "USD"}
    product = {"title": "Lane hoodie", "variants": [variant | {"stock_on_hand": 0}]}
    answer = await _json(shop.plain_port, "POST", "/api/products", product, seller)
    sku = int(answer["product"]["variants"][0]["id"])
    _buyer_id, buyer = await _account(shop, "Buyer")
    conn = await Connection.open(shop.plain_port)
    try:
        status, _, body = await conn.send(purchase(buyer, sku))  # the script says it first
        assert status == 409 and json.loads(body)["error"]["code"] == "sold_out"
    finally:
        conn.close()
    board = shop.app[PURCHASES].sold_out
    await until(lambda: board.notice(sku) is not None, 5.0)
    return buyer, sku


async def test_a_sure_refusal_takes_the_lane_with_the_bytes_aiohttp_sends(shop: Shop) -> None:
    buyer, sku = await _sold_out_sku(shop)
    lane, plain = await Connection.open(shop.lane_port), await Connection.open(shop.plain_port)
    try:
        for _ in range(3):  # on one kept-alive connection
            answered = shop.lane.answered
            status, headers, body = await lane.send(purchase(buyer, sku))
            assert shop.lane.answered == answered + 1
            expected_status, expected_headers, expected_body = await plain.send(
                purchase(buyer, sku)
            )
            assert (status, body) == (expected_status, expected_body)
            assert json.loads(body)["error"]["code"] == "sold_out"
            headers.pop("date"), expected_headers.pop("date")
            assert headers == expected_headers
    finally:
        lane.close()
        plain.close()
    requests = shop.app[METRICS].get_sample_value(
        "http_requests_total", {"method": "POST", "route": "/api/purchases", "status": "409"}
    )
    assert requests is not None and requests >= 7  # the lane's three are counted too


async def test_what_the_lane_is_not_sure_of_is_answered_by_aiohttp(shop: Shop) -> None:
    buyer, sku = await _sold_out_sku(shop)
    key = uuid.uuid4().hex
    odd = {
        "connection close": purchase(buyer, sku, extra="Connection: close\r\n"),
        "a query": purchase(buyer, sku, target="/api/purchases?x=1"),
        "HTTP/1.0": purchase(buyer, sku, version="HTTP/1.0"),
        "expect": purchase(buyer, sku, extra="Expect: 100-continue\r\n"),
        "two tokens": purchase(buyer, sku, extra=f"Authorization: Bearer {buyer}\r\n"),
        "two keys": purchase(buyer, sku, key=key, extra=f"Idempotency-Key: {key}\r\n"),
        "an unknown token": purchase("not-a-token", sku),
        "a cookie": purchase(buyer, sku, auth=f"Cookie: lc_session={buyer}\r\n"),
        "no key": purchase(buyer, sku, key=" "),
        "a key with a space": purchase(buyer, sku, key="a b"),
        "an unknown field": purchase(buyer, sku, body=b'{"sku_id": %d, "x": 1}' % sku),
        "too many": purchase(buyer, sku, body=b'{"sku_id": %d, "qty": 999}' % sku),
        "bad JSON": purchase(buyer, sku, body=b'{"sku_id": '),
        "text": purchase(buyer, sku).replace(b"application/json", b"text/plain"),
        "a folded line": purchase(buyer, sku, extra="X-A: 1\r\n\tfolded\r\n"),
        "a control byte": purchase(buyer, sku, extra="X-A: a\x01b\r\n"),
    }
    for what, raw in odd.items():
        lane, plain = await Connection.open(shop.lane_port), await Connection.open(shop.plain_port)
        try:
            answered, awaited = shop.lane.answered, shop.lane.awaited
            status, _, body = await lane.send(raw)
            assert (shop.lane.answered, shop.lane.awaited) == (answered, awaited), what
            expected_status, _, expected_body = await plain.send(raw.replace(key.encode(), b"k2"))
            assert status == expected_status, what
            if status != 400:  # aiohttp's parser errors name the byte offset, not the request
                assert (
                    json.loads(body)["error"]["code"] == json.loads(expected_body)["error"]["code"]
                ), what
        finally:
            lane.close()
            plain.close()


async def test_a_connection_that_split_a_request_leaves_the_lane(shop: Shop) -> None:
    buyer, sku = await _sold_out_sku(shop)
    conn = await Connection.open(shop.lane_port)
    try:
        conn.writer.write(b"GET /healthz HTTP/1.1\r\nHost: shop\r\nX-Split: ")
        await conn.writer.drain()
        await asyncio.sleep(0.05)  # the head's first half arrives alone
        answered = shop.lane.answered
        status, _, _ = await conn.send(purchase(buyer, sku))
        # aiohttp read the purchase's head as the rest of the GET's (two Host headers): 400
        assert status == 400
        assert shop.lane.answered == answered
    finally:
        conn.close()


async def test_a_connection_the_lane_keeps_busy_stays_open_and_an_idle_one_closes(
    shop: Shop,
) -> None:
    buyer, sku = await _sold_out_sku(shop)
    conn = await Connection.open(shop.lane_port)
    try:
        answered = shop.lane.answered
        for _ in range(8):  # 2.4 s of taps, more than twice the keep-alive timeout
            status, _, _ = await conn.send(purchase(buyer, sku))
            assert status == 409
            await asyncio.sleep(0.3)
        assert shop.lane.answered == answered + 8
        assert await conn.closed()  # and then idle past the timeout: closed by aiohttp
    finally:
        conn.close()


async def test_a_crowd_past_the_pass_budget_is_answered_whole_in_later_passes(
    settings: Settings,
) -> None:
    """More taps at once than one pass of the loop takes on: the rest wait, their connections
    paused, and are answered in the next passes; none is lost or answered twice."""
    async with running_shop(settings, 60.0) as shop:  # opening the crowd may take a while
        await _crowd_taps_twice(shop)


async def _crowd_taps_twice(shop: Shop) -> None:
    buyer, sku = await _sold_out_sku(shop)
    crowd = [await Connection.open(shop.lane_port) for _ in range(3 * PASS_BUDGET)]
    try:
        answered, deferred = shop.lane.answered, shop.lane.deferred
        for _ in range(2):  # two taps each, the second sent at once after the first answer
            for conn in crowd:
                conn.writer.write(purchase(buyer, sku))
            answers = await asyncio.gather(*(conn.answer() for conn in crowd))
            assert {status for status, _, _ in answers} == {409}
        assert shop.lane.answered == answered + 2 * len(crowd)
        assert shop.lane.deferred > deferred
    finally:
        for conn in crowd:
            conn.close()


async def test_a_buyer_who_holds_units_is_answered_by_the_script(shop: Shop) -> None:
    buyer, sku = await _sold_out_sku(shop)
    conn = await Connection.open(shop.lane_port)
    try:
        status, _, _ = await conn.send(purchase(buyer, sku))
        assert status == 409
        board = shop.app[PURCHASES].sold_out
        board.held(sku, _buyer_id_of(shop, buyer))  # this buyer now holds units of it
        answered, awaited = shop.lane.answered, shop.lane.awaited
        status, _, body = await conn.send(purchase(buyer, sku))
        # Not refused from memory: the script answers a buyer who holds units.
        assert (shop.lane.answered, shop.lane.awaited) == (answered, awaited + 1)
        assert json.loads(body)["error"]["code"] == "sold_out"
    finally:
        conn.close()


async def _known_buyer(shop: Shop) -> str:
    """A new buyer's token, known to the process (as after any request of theirs)."""
    _buyer_id, token = await _account(shop, "Buyer")
    conn = await Connection.open(shop.plain_port)
    try:
        status, _, _ = await conn.send(
            f"GET /api/me HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        assert status == 200
    finally:
        conn.close()
    return token


async def _sku_in_stock(shop: Shop, units: int) -> int:
    _seller_id, seller = await _account(shop, "Seller")
    variant = {"sku": f"W-{uuid.uuid4().hex[:6]}", "price_minor": 4900, "currency": "USD"}
    product = {"title": "Lane tee", "variants": [variant | {"stock_on_hand": units}]}
    answer = await _json(shop.plain_port, "POST", "/api/products", product, seller)
    return int(answer["product"]["variants"][0]["id"])


def _shape(value: Any) -> Any:
    """A JSON value with its numbers, strings and times blanked: what two orders share."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


async def test_a_winner_is_answered_by_the_lane_as_aiohttp_answers_one(shop: Shop) -> None:
    sku = await _sku_in_stock(shop, 5)
    first, second = await _known_buyer(shop), await _known_buyer(shop)
    lane, plain = await Connection.open(shop.lane_port), await Connection.open(shop.plain_port)
    try:
        answered, awaited = shop.lane.answered, shop.lane.awaited
        key = uuid.uuid4().hex
        status, headers, body = await lane.send(purchase(first, sku, key=key))
        assert (shop.lane.answered, shop.lane.awaited) == (answered, awaited + 1)
        expected_status, expected_headers, expected_body = await plain.send(purchase(second, sku))
        assert status == expected_status == 201
        won, expected = json.loads(body), json.loads(expected_body)
        assert _shape(won) == _shape(expected)
        assert won["order"]["status"] == "reserved" and won["order"]["sku_id"] == sku
        assert won["order"]["buyer_id"] != expected["order"]["buyer_id"]
        headers.pop("date"), expected_headers.pop("date")
        headers.pop("content-length"), expected_headers.pop("content-length")
        assert headers == expected_headers
        # The retry (same key) on the same kept-alive connection: the same order, 200.
        status, _, again = await lane.send(purchase(first, sku, key=key))
        assert status == 200 and json.loads(again)["order"]["id"] == won["order"]["id"]
        assert shop.lane.awaited == awaited + 2
    finally:
        lane.close()
        plain.close()
    requests = shop.app[METRICS].get_sample_value(
        "http_requests_total", {"method": "POST", "route": "/api/purchases", "status": "201"}
    )
    assert requests is not None and requests >= 2  # the lane's winner is counted too


async def test_a_failure_the_lane_awaited_is_answered_with_aiohttps_bytes(shop: Shop) -> None:
    sku = await _sku_in_stock(shop, 1)
    buyer = await _known_buyer(shop)
    taps = {
        "a SKU that is not there": b'{"sku_id": %d, "qty": 1}' % (sku + 100_000),
        "more than is left": b'{"sku_id": %d, "qty": 2}' % sku,
    }
    for what, data in taps.items():
        lane, plain = await Connection.open(shop.lane_port), await Connection.open(shop.plain_port)
        try:
            awaited = shop.lane.awaited
            status, headers, body = await lane.send(purchase(buyer, sku, body=data))
            assert shop.lane.awaited == awaited + 1, what
            expected_status, expected_headers, expected_body = await plain.send(
                purchase(buyer, sku, body=data)
            )
            assert (status, body) == (expected_status, expected_body), what
            assert 400 <= status < 500, what
            headers.pop("date"), expected_headers.pop("date")
            assert headers == expected_headers, what
        finally:
            lane.close()
            plain.close()


async def test_a_tap_sent_while_a_winner_is_awaited_is_answered_after_it(shop: Shop) -> None:
    """The connection's reading pauses while the lane awaits: answers keep their order."""
    sku = await _sku_in_stock(shop, 1)
    winner, other = await _known_buyer(shop), await _known_buyer(shop)
    conn = await Connection.open(shop.lane_port)
    try:
        conn.writer.write(purchase(winner, sku))
        await conn.writer.drain()
        await asyncio.sleep(0)  # its own chunk, most likely: the second finds reading paused
        conn.writer.write(purchase(winner, sku, body=b'{"sku_id": %d, "qty": 1}' % sku))
        first = await conn.answer()
        second = await conn.answer()
        assert first[0] == 201, first
        assert second[0] == 409, second  # the one unit went to the first
        # Another buyer's tap on a fresh connection: refused from memory or by the script.
        status, _, body = await (await Connection.open(shop.lane_port)).send(purchase(other, sku))
        assert status == 409 and json.loads(body)["error"]["code"] == "sold_out"
    finally:
        conn.close()


async def test_a_shutdown_waits_for_the_winner_the_lane_awaits(settings: Settings) -> None:
    """A graceful stop while a winner's order is being written: the winner is answered, then
    the connection closes (the lane's request counts as under way for aiohttp)."""
    shop_cm = running_shop(settings, 60.0)
    shop = await shop_cm.__aenter__()
    stopped = False
    try:
        sku = await _sku_in_stock(shop, 3)
        buyer = await _known_buyer(shop)
        conn = await Connection.open(shop.lane_port)
        async with _orders_locked(settings.database_url):
            conn.writer.write(purchase(buyer, sku))
            await conn.writer.drain()
            await until(lambda: shop.lane.awaited == 0 and shop.lane.answering == 1, 10.0)
            stopping = asyncio.create_task(shop_cm.__aexit__(None, None, None))
            stopped = True
            await asyncio.sleep(0.3)
            assert not stopping.done()  # it waits for the winner
        status, _, body = await conn.answer()
        assert status == 201 and json.loads(body)["order"]["status"] == "reserved"
        assert await conn.closed()
        await stopping
        assert shop.lane.awaited == 1
    finally:
        if not stopped:
            await shop_cm.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def _orders_locked(database_url: str) -> AsyncIterator[None]:
    """Hold the database's write lock (SQLite) or the orders table's (PostgreSQL), so an order
    being written waits until the block ends."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await conn.begin()
                await conn.exec_driver_sql("LOCK TABLE orders IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()


def _buyer_id_of(shop: Shop, token: str) -> int:
    from livecommerce.accounts.users import TOKENS

    user = shop.app[TOKENS].known(token)
    assert user is not None
    return user.id


def test_the_seam_refuses_an_aiohttp_it_was_not_checked_against(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aiohttpseam.check()
    monkeypatch.setattr(aiohttpseam, "CHECKED_VERSION", "9.9.")
    with pytest.raises(RuntimeError, match=r"checked with aiohttp 9\.9\.x"):
        aiohttpseam.check()
