"""The demo seeds a living back office: a finished show with orders in every state."""

from __future__ import annotations

import sqlalchemy as sa

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.demo import FINISHED_SHOW, seed_demo
from livecommerce.platform.db.engine import create_engine
from livecommerce.platform.db.tables import order_returns, orders, refunds, streams


async def test_demo_sells_a_finished_show_in_every_state(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        said = await seed_demo(settings, create_app)
        assert "/orderdesk" in said
        async with engine.connect() as conn:
            show = (
                await conn.execute(sa.select(streams).where(streams.c.title == FINISHED_SHOW))
            ).one()
            assert show.status == "ended"
            states = {
                status
                for (status,) in await conn.execute(
                    sa.select(orders.c.status).where(orders.c.stream_id == show.id)
                )
            }
            returned = {
                status for (status,) in await conn.execute(sa.select(order_returns.c.status))
            }
            refunded = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(refunds)
                    .where(refunds.c.status == "succeeded")
                )
            ).scalar_one()
        assert states == {
            "paid",
            "packed",
            "shipped",
            "delivered",
            "return_requested",
            "refunded",
        }
        assert returned == {"requested", "received"} and refunded == 1
        # Seeding twice changes nothing.
        await seed_demo(settings, create_app)
        async with engine.connect() as conn:
            count = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(streams)
                    .where(streams.c.title == FINISHED_SHOW)
                )
            ).scalar_one()
        assert count == 1
    finally:
        await engine.dispose()
