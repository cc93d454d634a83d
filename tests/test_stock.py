"""The Lua-script ledger against a real Redis: holds, idempotency, flash-sale caps, invariants."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.inventory.holds import (
    Hold,
    LiveHold,
    NotLoaded,
    PriceChanged,
    SaleWindow,
    StockLevel,
)
from livecommerce.inventory.reservations import Reservations, UnpaidBounds
from livecommerce.inventory.unpaidtotals import NO_BOUNDS
from livecommerce.platform.pipelined import PipelinedRedis, RedisReplyError

NOW = 1_800_000_000_000


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Reservations]:
    redis = Redis(
        connection_pool=BlockingConnectionPool.from_url(
            redis_url, max_connections=32, decode_responses=True
        )
    )
    hot = PipelinedRedis(redis_url)
    reservations = Reservations(redis, f"t{uuid.uuid4().hex[:10]}", hot)
    await reservations.preload_scripts()
    yield reservations
    await hot.close()
    await redis.aclose()


async def _reserve(
    ledger: Reservations,
    buyer: int,
    qty: int = 1,
    key: str | None = None,
    sku: int = 1,
    *,
    bounds: UnpaidBounds = NO_BOUNDS,
    stream: int | None = None,
    most: int | None = None,
) -> Hold:
    return await ledger.reserve(
        sku_id=sku,
        buyer_id=buyer,
        qty=qty,
        hold_id=uuid.uuid4().hex,
        idempotency_key=key or uuid.uuid4().hex,
        now_ms=NOW,
        deadline_ms=NOW + 60_000,
        idempotency_ttl_s=600,
        stream_id=stream,
        bounds=bounds,
        most_per_unit=most,
    )


async def test_reserve_until_sold_out_then_release_and_commit(ledger: Reservations) -> None:
    with pytest.raises(NotLoaded):
        await _reserve(ledger, 1)
    assert await ledger.load(1, available=3, price=4900, currency="USD", holds=[])
    assert not await ledger.load(1, available=99, price=1, currency="USD", holds=[])
    first = await _reserve(ledger, 1, qty=2)
    assert (first.available_after, first.unit_price, first.sale_id) == (1, 4900, None)
    with pytest.raises(LiveCommerceError) as short:
        await _reserve(ledger, 2, qty=2)
    assert short.value.code is ErrorCode.INSUFFICIENT_STOCK
    second = await _reserve(ledger, 2)
    with pytest.raises(LiveCommerceError) as gone:
        await _reserve(ledger, 3)
    assert gone.value.code is ErrorCode.SOLD_OUT
    assert await ledger.level(1) == StockLevel(available=0, held=3, sold=0)

    assert await ledger.release(1, first.hold_id) == 2
    assert await ledger.release(1, first.hold_id) == 0  # exactly once
    assert await ledger.commit(1, second.hold_id) == 1
    assert await ledger.commit(1, second.hold_id) == 0
    level = await ledger.level(1)
    assert level == StockLevel(available=2, held=0, sold=1)


async def test_same_idempotency_key_gives_the_same_hold(ledger: Reservations) -> None:
    await ledger.load(1, available=5, price=100, currency="USD", holds=[])
    first = await _reserve(ledger, 7, key="tap-1")
    again = await _reserve(ledger, 7, key="tap-1")
    assert again.replayed and again.hold_id == first.hold_id
    other_buyer = await _reserve(ledger, 8, key="tap-1")
    assert not other_buyer.replayed
    level = await ledger.level(1)
    assert level is not None and level.held == 2


async def test_flash_sale_window_cap_and_per_buyer_limit(ledger: Reservations) -> None:
    await ledger.load(1, available=100, price=5000, currency="USD", holds=[])
    await ledger.start_sale(
        1,
        SaleWindow(
            "sale-1",
            2500,
            cap=3,
            sold=0,
            starts_ms=NOW - 1,
            ends_ms=NOW + 30_000,
            per_buyer_limit=2,
        ),
    )
    hold = await _reserve(ledger, 1, qty=2)
    assert (hold.unit_price, hold.sale_id) == (2500, "sale-1")
    with pytest.raises(LiveCommerceError) as limit:
        await _reserve(ledger, 1)
    assert limit.value.code is ErrorCode.LIMIT_EXCEEDED
    await _reserve(ledger, 2)
    with pytest.raises(LiveCommerceError) as capped:
        await _reserve(ledger, 3)
    assert capped.value.code is ErrorCode.SOLD_OUT
    # A released sale hold frees its place in the cap and in the buyer's limit.
    await ledger.release(1, hold.hold_id)
    again = await _reserve(ledger, 1, qty=2)
    assert again.sale_id == "sale-1"
    # Ended early: the list price again, no cap.
    assert await ledger.end_sale(1, "sale-1", NOW)
    assert not await ledger.end_sale(1, "sale-1", NOW)
    after = await _reserve(ledger, 3, qty=5)
    assert (after.unit_price, after.sale_id) == (5000, None)


async def test_a_dearer_unit_than_agreed_is_refused_with_nothing_taken(
    ledger: Reservations,
) -> None:
    """The price check is in the hold's atomic step: the last unit is never held, not even for
    a moment, by a tap that will be refused, and the refused key stays usable."""
    await ledger.load(1, available=1, price=5000, currency="USD", holds=[])
    await ledger.start_sale(
        1,
        SaleWindow(
            "sale-1", 2500, 1, 0, starts_ms=NOW - 1, ends_ms=NOW + 30_000, per_buyer_limit=1
        ),
    )
    assert await ledger.end_sale(1, "sale-1", NOW)  # the sale ends before the tap arrives
    with pytest.raises(PriceChanged) as changed:
        await _reserve(ledger, 1, key="tap-1", most=2500, bounds=UnpaidBounds(2, per_buyer=1))
    assert changed.value.unit_price == 5000
    assert await ledger.level(1) == StockLevel(available=1, held=0, sold=0)
    # The crowd's answers stay true: sold out only when it is, and no unpaid unit counted.
    hold = await _reserve(ledger, 2, most=5000, bounds=UnpaidBounds(per_sku=1))
    assert (hold.unit_price, hold.available_after) == (5000, 0)
    with pytest.raises(LiveCommerceError) as gone:
        await _reserve(ledger, 1, key="tap-1", most=2500)
    assert gone.value.code is ErrorCode.SOLD_OUT  # sold out says more than a price
    await ledger.release(1, hold.hold_id)
    # nothing of the refused tap was counted unpaid either (a bound of 1 would refuse it)
    again = await _reserve(ledger, 1, key="tap-1", most=9000, bounds=UnpaidBounds(1, per_buyer=1))
    assert not again.replayed and again.unit_price == 5000  # a lower price than agreed is taken


async def test_unpaid_units_are_bounded_per_sku_and_in_all_under_a_burst(
    ledger: Reservations,
) -> None:
    bounds = UnpaidBounds(per_sku=3, per_buyer=5)
    for sku in (1, 2, 3):
        await ledger.load(sku, available=12, price=100, currency="USD", holds=[])

    async def attempt(sku: int, key: str | None = None) -> Hold | LiveCommerceError:
        try:
            return await _reserve(ledger, 7, key=key, sku=sku, bounds=bounds)
        except LiveCommerceError as exc:
            return exc

    burst = await asyncio.gather(*(attempt(1) for _ in range(40)))
    won = [h for h in burst if isinstance(h, Hold)]
    refused = [e for e in burst if isinstance(e, LiveCommerceError)]
    assert len(won) == 3
    assert {e.code for e in refused} == {ErrorCode.TOO_MANY_UNPAID}
    assert "pay for or cancel" in refused[0].message
    assert await ledger.level(1) == StockLevel(available=9, held=3, sold=0)

    # Across SKUs: 3 held on SKU 1, so only 2 more in all, however they are spread.
    spread = await asyncio.gather(*(attempt(2 + i % 2) for i in range(40)))
    assert sum(isinstance(h, Hold) for h in spread) == 2
    for sku in (2, 3):
        level = await ledger.level(sku)
        assert level is not None and level.available + level.held == 12  # refusals gave back
    # Another buyer is not bound by buyer 7's holds.
    assert (await _reserve(ledger, 8, qty=3, sku=1, bounds=bounds)).qty == 3

    # A refused key is free: once a unit is paid for, the same key buys.
    assert isinstance(await attempt(1, key="again"), LiveCommerceError)
    assert await ledger.commit(1, won[0].hold_id) == 1
    again = await attempt(1, key="again")
    assert isinstance(again, Hold) and not again.replayed
    # Released holds free their place too.
    assert isinstance(await attempt(1), LiveCommerceError)
    await ledger.release(1, won[1].hold_id)
    assert isinstance(await attempt(1), Hold)


async def test_a_sale_counts_held_and_paid_units_and_prices_only_its_stream(
    ledger: Reservations,
) -> None:
    bounds = UnpaidBounds(per_sku=5, per_buyer=10)
    await ledger.load(1, available=100, price=5000, currency="USD", holds=[])
    window = SaleWindow("sale-s", 2500, 10, 0, NOW - 1, NOW + 30_000, 2, stream_id=5)
    await ledger.start_sale(1, window)
    assert await ledger.sale(1) == window
    held = await _reserve(ledger, 1, stream=5, sku=1, bounds=bounds)
    paid = await _reserve(ledger, 1, stream=5, sku=1, bounds=bounds)
    assert (held.unit_price, held.sale_id) == (2500, "sale-s")
    await ledger.commit(1, paid.hold_id)
    with pytest.raises(LiveCommerceError) as limit:
        await _reserve(ledger, 1, stream=5, sku=1, bounds=bounds)
    assert limit.value.code is ErrorCode.LIMIT_EXCEEDED
    # Without a stream, or in another stream, the sale does not apply: the list price.
    for stream in (None, 6):
        other = await _reserve(ledger, 2, stream=stream, sku=1, bounds=bounds)
        assert (other.unit_price, other.sale_id) == (5000, None)
    sale = await ledger.sale(1)
    assert sale is not None and sale.sold == 2


async def test_a_rebuild_counts_recreated_holds_against_the_bounds(ledger: Reservations) -> None:
    """After Redis lost everything: a SKU's counters and a buyer's total both come back from
    the system of record (here a list), holds beyond today's bounds included."""
    bounds = UnpaidBounds(per_sku=3, per_buyer=4)
    holds = [
        LiveHold(f"old-{i}", NOW + 60_000, 1, 9, None, 100)
        for i in range(5)  # more than the bound allows now: they are honoured, not dropped
    ]
    sql_calls = 0

    async def from_sql(buyer_id: int) -> list[LiveHold]:
        nonlocal sql_calls
        sql_calls += 1
        return [h for h in holds if h.buyer_id == buyer_id]

    rebuilt = Reservations(ledger.redis, ledger._ns, ledger._hot, buyer_holds=from_sql)
    await rebuilt.preload_scripts()
    assert await rebuilt.load(1, available=10, price=100, currency="USD", holds=holds)
    assert await rebuilt.level(1) == StockLevel(available=10, held=5, sold=0)
    await rebuilt.load(2, available=10, price=100, currency="USD", holds=[])
    for sku in (1, 2):  # 1: five of this SKU; 2: five in all
        with pytest.raises(LiveCommerceError) as over:
            await _reserve(rebuilt, 9, sku=sku, bounds=bounds)
        assert over.value.code is ErrorCode.TOO_MANY_UNPAID
    assert await rebuilt.level(2) == StockLevel(available=10, held=0, sold=0)
    released = await rebuilt.release_many(1, [h.hold_id for h in holds[:3]] + ["gone"])
    assert sorted(r.hold_id for r in released) == ["old-0", "old-1", "old-2"]
    assert (await _reserve(rebuilt, 9, qty=2, sku=2, bounds=bounds)).qty == 2
    assert sql_calls == 1  # seeded once, then kept in Redis


async def test_adjust_refuses_to_take_held_units(ledger: Reservations) -> None:
    assert await ledger.adjust(1, 5) is None
    await ledger.load(1, available=2, price=100, currency="USD", holds=[])
    await _reserve(ledger, 1)
    with pytest.raises(LiveCommerceError) as short:
        await ledger.adjust(1, -2)
    assert short.value.code is ErrorCode.CONFLICT
    assert await ledger.adjust(1, -1) == 0
    assert await ledger.adjust(1, 10, price=90) == 10
    assert (await _reserve(ledger, 2)).unit_price == 90


async def test_due_holds_come_oldest_first(ledger: Reservations) -> None:
    await ledger.load(1, available=5, price=100, currency="USD", holds=[])
    early = await ledger.reserve(
        sku_id=1,
        buyer_id=1,
        qty=1,
        hold_id="a",
        idempotency_key="a",
        now_ms=NOW,
        deadline_ms=NOW + 10,
        idempotency_ttl_s=60,
    )
    await ledger.reserve(
        sku_id=1,
        buyer_id=2,
        qty=1,
        hold_id="b",
        idempotency_key="b",
        now_ms=NOW,
        deadline_ms=NOW + 1000,
        idempotency_ttl_s=60,
    )
    due = await ledger.due(1, NOW + 500)
    assert [h.hold_id for h in due] == [early.hold_id]
    assert due[0].buyer_id == 1


async def test_concurrent_buyers_never_oversell(ledger: Reservations) -> None:
    await ledger.load(1, available=50, price=100, currency="USD", holds=[])

    async def attempt(buyer: int) -> int:
        try:
            return (await _reserve(ledger, buyer, qty=1 + buyer % 3)).qty
        except LiveCommerceError:
            return 0

    taken = await asyncio.gather(*(attempt(b) for b in range(2000)))
    level = await ledger.level(1)
    assert level is not None
    assert sum(taken) == level.held <= 50
    assert level.available == 50 - sum(taken) >= 0


operations = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "release", "commit", "restock"]),
        st.integers(1, 4),
        st.integers(0, 30),
    ),
    max_size=60,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations, listed=st.integers(0, 20))
async def test_every_unit_is_available_held_or_sold(
    ledger: Reservations, ops: list[tuple[str, int, int]], listed: int
) -> None:
    """Property: available + held + sold = listed, and available never goes below zero."""
    sku = int(uuid.uuid4().int % 10**8)
    await ledger.load(sku, available=listed, price=100, currency="USD", holds=[])
    holds: list[Hold] = []
    sold = 0
    for op, qty, pick in ops:
        if op == "reserve":
            with contextlib.suppress(LiveCommerceError):
                holds.append(await _reserve(ledger, pick, qty=qty, sku=sku))
        elif op == "restock":
            listed += qty
            await ledger.adjust(sku, qty)
        elif holds:
            hold = holds.pop(pick % len(holds))
            if op == "commit":
                sold += await ledger.commit(sku, hold.hold_id)
            else:
                await ledger.release(sku, hold.hold_id)
        level = await ledger.level(sku)
        assert level is not None
        assert level.available >= 0
        assert level.sold == sold
        assert level.available + level.held + level.sold == listed


async def test_hot_connection_survives_script_flush_and_a_killed_socket(
    private_redis_url: str,
) -> None:
    redis_url = private_redis_url
    hot = PipelinedRedis(redis_url.rsplit("/", 1)[0] + "/3")
    admin = Redis.from_url(redis_url, decode_responses=True)
    try:
        script = "return {redis.call('INCRBY', KEYS[1], ARGV[1]), 'db'}"
        sha = hashlib.sha1(script.encode()).hexdigest()
        key = f"t{uuid.uuid4().hex}"
        await admin.script_flush()
        assert await hot.evalsha(script, sha, [key], [2]) == [2, "db"]  # loaded on NOSCRIPT
        burst = await asyncio.gather(*(hot.evalsha(script, sha, [key], [1]) for _ in range(500)))
        assert sorted(n for n, _ in burst) == list(range(3, 503))
        assert await hot.execute("SELECT", 3) == "OK"
        assert await admin.get(key) is None  # the URL's database 3, not 0

        with pytest.raises(RedisReplyError, match="wrong number of arguments"):
            await hot.execute("GET")
        # A call in flight when the connection dies fails at once, and the next one reconnects.
        blocked = asyncio.create_task(hot.execute("BLPOP", f"{key}:never", 4))
        await asyncio.sleep(0.1)
        await admin.client_kill_filter(_type="normal", skipme=True)
        with pytest.raises(RedisConnectionError):
            await blocked
        assert await hot.execute("PING") == "PONG"
        await admin.client_kill_filter(_type="normal", skipme=True)
        await asyncio.sleep(0.1)
        assert await hot.execute("PING") == "PONG"  # an idle connection that died: unnoticed
        await hot.execute("DEL", key)
    finally:
        await hot.close()
        await hot.close()
        await admin.aclose()


async def test_a_hold_that_fails_leaves_nothing_counted_in_the_buyers_total(
    ledger: Reservations,
) -> None:
    """The buyer's unpaid total is counted in the same round trip as the hold: every way a
    hold can fail (sold out, a replayed key, the per-SKU bound, counters not loaded) takes
    that count back, so only live holds are ever counted."""
    bounds = UnpaidBounds(per_sku=2, per_buyer=4)
    await ledger.load(1, available=3, price=100, currency="USD", holds=[])
    await ledger.load(2, available=1, price=100, currency="USD", holds=[])
    key = ledger._totals.key(9)
    first = await _reserve(ledger, 9, key="k1", sku=1, bounds=bounds)
    replay = await _reserve(ledger, 9, key="k1", sku=1, bounds=bounds)
    assert replay.replayed and replay.hold_id == first.hold_id
    await _reserve(ledger, 8, sku=2, bounds=bounds)  # SKU 2 sold out by another buyer
    failures = [
        _reserve(ledger, 9, sku=2, bounds=bounds),  # sold out
        _reserve(ledger, 9, qty=2, sku=1, bounds=bounds),  # past the per-SKU bound
        _reserve(ledger, 9, sku=404, bounds=bounds),  # not loaded
    ]
    for failure in failures:
        with pytest.raises((LiveCommerceError, NotLoaded)):
            await failure
    counted = await ledger.redis.zrange(key, 0, -1)
    assert sorted(counted) == sorted(["~:0", f"{first.hold_id}:1"])
    # What is left under the bound in all is still there to buy, concurrently.
    burst = await asyncio.gather(
        *(_reserve(ledger, 9, sku=1, bounds=bounds) for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(h, Hold) for h in burst) == 1  # per SKU: 2 in all on SKU 1
    assert len(await ledger.redis.zrange(key, 0, -1)) == 3
