"""``livecommerce demo``: a small shop to try the product with, seeded idempotently."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.accounts.users import find_user_by_email, sign_up
from livecommerce.catalog.products import VariantDraft, create_product
from livecommerce.config import Settings
from livecommerce.live.streams import (
    Shopstream,
    StreamStatus,
    add_moderator,
    create_stream,
    list_streams,
    set_status,
)
from livecommerce.platform.db.engine import create_engine, migrate
from livecommerce.platform.db.tables import orders, utcnow

PASSWORD = "livecommerce-demo"
ACCOUNTS = (
    ("creator@demo.live", "Ava (creator)"),
    ("moderator@demo.live", "Max (moderator)"),
    ("viewer@demo.live", "Vic (viewer)"),
)
PRODUCTS = (
    (
        "Everyday Hoodie",
        "Heavyweight cotton, relaxed fit.",
        [
            ("HOODIE-S", {"size": "S"}, 4900, 25),
            ("HOODIE-M", {"size": "M"}, 4900, 40),
            ("HOODIE-L", {"size": "L"}, 4900, 30),
        ],
    ),
    ("Glow Serum", "Vitamin C serum, 30 ml.", [("SERUM-30", {"volume": "30 ml"}, 2900, 100)]),
    (
        "Ceramic Mug",
        "Hand-glazed, 350 ml.",
        [("MUG-BLUE", {"colour": "blue"}, 1800, 12), ("MUG-SAND", {"colour": "sand"}, 1800, 12)],
    ),
)


HOME = {
    "name": "Vic Viewer",
    "line1": "12 Rue des Lilas",
    "line2": "",
    "city": "Paris",
    "region": "",
    "postal_code": "75011",
    "country": "FR",
    "phone": "+33 1 23 45 67 89",
}
OFFICE = {**HOME, "line1": "8 Avenue de l'Opera", "line2": "3e etage", "postal_code": "75001"}
FINISHED_SHOW = "Last week's drop (ended)"

AppFactory = Callable[[Settings], web.Application]


SHOW_TITLE = "Friday drop: hoodies, serum and mugs"
SHOW_DESCRIPTION = "Flash sales every ten minutes."


async def demo_show(engine: AsyncEngine) -> Shopstream | None:
    """The demo creator's own show to point at: their live or next one, never another
    user's. When every show of theirs has ended, a new one is planned with the same lineup
    and moderators, so the studio link printed can always go live. None without the demo
    creator (someone deleted the account)."""
    async with engine.connect() as conn:
        creator = await find_user_by_email(conn, ACCOUNTS[0][0])
        if creator is None:
            return None
        mine = await list_streams(conn, creator_id=creator.id, limit=200)
    for show in mine:  # live first, then the soonest scheduled
        if show.status is not StreamStatus.ENDED:
            return show
    last = max(mine, key=lambda s: s.id, default=None)
    show, _key = await create_stream(
        engine,
        creator.id,
        title=last.title if last else SHOW_TITLE,
        description=last.description if last else SHOW_DESCRIPTION,
        lineup=list(last.lineup) if last else None,
    )
    for moderator_id, _name in last.moderators if last else ():
        show = await add_moderator(engine, show.id, creator.id, user_id=moderator_id)
    return show


async def seed_demo(settings: Settings, app_factory: AppFactory | None = None) -> str:
    """Seed the demo accounts, products and a shopstream unless present; say how to log in.

    With ``app_factory`` (the command line hands in ``create_app``), a finished show is also
    sold through the real app, run in this process on a loopback port: orders in every state of
    the back office (paid, packed, shipped, delivered, return requested, refunded), paid with
    the test card against the embedded Stripe emulator (or the configured test account)."""
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            existing = await find_user_by_email(conn, ACCOUNTS[0][0])
        if existing is None:
            creator, moderator, _viewer = [
                await sign_up(engine, email, PASSWORD, name) for email, name in ACCOUNTS
            ]
            product_ids = []
            for title, description, variants in PRODUCTS:
                product = await create_product(
                    engine,
                    creator.id,
                    title=title,
                    description=description,
                    image_url=None,
                    variants=[
                        VariantDraft(code, price, "USD", stock, attrs)
                        for code, attrs, price, stock in variants
                    ],
                )
                product_ids.append(product.id)
            if app_factory is not None:
                await _seed_back_office(settings, engine, app_factory, creator.id, product_ids)
            stream, _key = await create_stream(
                engine,
                creator.id,
                title=SHOW_TITLE,
                description=SHOW_DESCRIPTION,
                lineup=product_ids,
            )
            await add_moderator(engine, stream.id, creator.id, user_id=moderator.id)
        show = await demo_show(engine)
    finally:
        await engine.dispose()
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    lines = ["Demo shop ready. Log in with any of these (password: " + PASSWORD + "):"]
    lines += [f"  {email:<22} {name}" for email, name in ACCOUNTS]
    if show is not None:
        sid = show.id
        lines.append(f"Creator studio (log in as the creator): {base}/studio/{sid}")
        lines.append(f"Moderator console (log in as the moderator): {base}/console/{sid}")
        lines.append(f"Viewer page (any browser, any phone): {base}/watch/{sid}")
    lines.append(f"Order desk (log in as the creator): {base}/orderdesk")
    lines.append(f"Open {base}/ to look around. Test card: 4242 4242 4242 4242.")
    return "\n".join(lines)


async def _seed_back_office(
    settings: Settings,
    engine: AsyncEngine,
    app_factory: AppFactory,
    creator_id: int,
    product_ids: list[int],
) -> None:
    """A finished show whose orders are in every state, made through the API of a real app."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    app = app_factory(replace(settings, host="127.0.0.1", port=port, public_url=""))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            await _sell_and_fulfil(http, engine, creator_id, product_ids)
    finally:
        await runner.cleanup()


class _Caller:
    def __init__(self, http: aiohttp.ClientSession, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    async def __call__(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        async with self.http.request(
            method, path, json=body, headers={**self.headers, **headers}
        ) as response:
            answer = await response.json()
            if response.status >= 300:
                raise RuntimeError(f"demo seeding: {method} {path} answered {answer}")
            return answer


async def _login(http: aiohttp.ClientSession, email: str) -> _Caller:
    async with http.post("/api/sessions", json={"email": email, "password": PASSWORD}) as r:
        body = await r.json()
    http.cookie_jar.clear()
    return _Caller(http, body["token"])


async def _sell_and_fulfil(
    http: aiohttp.ClientSession, engine: AsyncEngine, creator_id: int, product_ids: list[int]
) -> None:
    seller = await _login(http, ACCOUNTS[0][0])
    buyer = await _login(http, ACCOUNTS[2][0])
    await buyer("POST", "/api/cards", {"payment_method_id": "pm_card_visa"})
    show = (await seller("POST", "/api/streams", {"title": FINISHED_SHOW, "lineup": product_ids}))[
        "stream"
    ]
    await set_status(engine, show["id"], StreamStatus.LIVE)
    skus = {}
    for product_id in product_ids:
        product = (await seller("GET", f"/api/products/{product_id}"))["product"]
        skus.update({v["sku"]: v["id"] for v in product["variants"]})

    async def order(sku: str, address: dict[str, str], qty: int = 1) -> int:
        body = {"sku_id": skus[sku], "qty": qty, "stream_id": show["id"]}
        placed = await buyer(
            "POST", "/api/purchases", body, **{"Idempotency-Key": uuid.uuid4().hex}
        )
        order_id = int(placed["order"]["id"])
        # Where it ships: the copy of the buyer's address an order keeps.
        async with engine.begin() as conn:
            await conn.execute(
                orders.update().where(orders.c.id == order_id).values(shipping_address=address)
            )
        return order_id

    async def parcel(*order_ids: int) -> int:
        made = await seller("POST", "/api/parcels", {"order_ids": list(order_ids)})
        return int(made["parcel"]["id"])

    async def shipped(order_id: int, carrier: str, tracking: str) -> int:
        parcel_id = await parcel(order_id)
        await seller(
            "POST",
            f"/api/parcels/{parcel_id}/ship",
            {"carrier": carrier, "tracking_number": tracking},
        )
        return parcel_id

    async def delivered(order_id: int, tracking: str) -> None:
        parcel_id = await shipped(order_id, "colissimo", tracking)
        await seller("POST", f"/api/parcels/{parcel_id}/deliver")

    async def return_asked(order_id: int, qty: int, reason: str) -> int:
        asked = await buyer(
            "POST", f"/api/orders/{order_id}/returns", {"qty": qty, "reason": reason}
        )
        return int(asked["return"]["id"])

    late = await order("HOODIE-M", HOME)
    await order("MUG-BLUE", HOME)  # the same buyer and address: one parcel with the hoodie
    await order("SERUM-30", OFFICE)  # another address: a parcel of its own
    async with engine.begin() as conn:
        await conn.execute(
            orders.update().where(orders.c.id == late).values(paid_at=utcnow() - timedelta(days=5))
        )
    await parcel(await order("HOODIE-L", OFFICE))
    await shipped(await order("MUG-SAND", OFFICE), "Royal Mail", "RM123456785GB")
    await delivered(await order("HOODIE-S", HOME), "6A12345678901")
    asked = await order("SERUM-30", HOME)
    await delivered(asked, "6A12345678902")
    await return_asked(asked, 1, "The scent is too strong for me.")
    refunded = await order("HOODIE-L", HOME, qty=2)
    await delivered(refunded, "6A12345678903")
    return_id = await return_asked(refunded, 2, "Both too large.")
    await seller("POST", f"/api/returns/{return_id}/approve", {"note": ""})
    await seller("POST", f"/api/returns/{return_id}/receive", {"resellable_qty": 2})
    await set_status(engine, show["id"], StreamStatus.ENDED)
