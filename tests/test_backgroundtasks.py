"""Every background task has an owner that cancels and awaits it on close."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from livecommerce.events.orders import Purchased
from livecommerce.live.rooms.rooms import ROOMS
from livecommerce.platform.backgroundtasks import BackgroundTasks
from livecommerce.platform.sharedcalls import SharedCalls


async def test_close_cancels_and_awaits_and_nothing_starts_after() -> None:
    tasks = BackgroundTasks("test")
    started, ended = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # cleanup that needs the loop: close waits for it
            ended.set()

    async def quick() -> int:
        return 1

    assert tasks.spawn(quick(), "quick") is not None
    running = tasks.spawn(forever(), "forever")
    await started.wait()
    assert len(tasks) == 1  # the finished one is not kept
    await tasks.close()
    assert running is not None and running.cancelled() and ended.is_set()
    assert len(tasks) == 0
    late = quick()
    assert tasks.spawn(late, "late") is None
    assert late.cr_frame is None  # closed unrun: no "never awaited" warning
    await tasks.close()  # twice is fine


async def test_a_shared_call_whose_callers_left_is_cancelled_on_close() -> None:
    calls = SharedCalls("test")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow() -> int:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    caller = asyncio.create_task(calls.run("k", slow))
    await started.wait()
    caller.cancel()  # the caller goes away; the shared call goes on for the others
    await asyncio.gather(caller, return_exceptions=True)
    assert not cancelled.is_set()
    await calls.close()
    assert cancelled.is_set()
    # After close a call still runs, just not shared.
    assert await calls.run("k", _one) == 1


async def _one() -> int:
    return 1


async def test_closed_rooms_start_no_stock_push_for_a_late_order_event(
    client: TestClient[Any, Any],
) -> None:
    """On shutdown the rooms close before checkout: an order event still being published
    then (a buy's ``Purchased``) must not leave a push running with no owner."""
    rooms = client.app[ROOMS]
    await rooms.close()
    await rooms.purchased(Purchased(order_id=1, buyer_id=1, sku_id=1, stream_id=1, qty=1))
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "stock-push"]
    await rooms.close()  # twice is fine
