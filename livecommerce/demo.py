"""``livecommerce demo``: a small shop to try the product with, seeded idempotently."""

from __future__ import annotations

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
)
from livecommerce.platform.db.engine import create_engine, migrate

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


async def seed_demo(settings: Settings) -> str:
    """Seed the demo accounts, products and a shopstream unless present; say how to log in."""
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
    lines.append(f"Open {base}/ to look around. Test card: 4242 4242 4242 4242.")
    return "\n".join(lines)
