"""Inventory is the only writer of stock on hand: no other module of the app writes the column.

A source scan of every module outside ``livecommerce/inventory/`` (the tables and migrations
excepted: they declare the column): a ``stock_on_hand=`` keyword or a ``"stock_on_hand"`` key
handed to ``values`` / ``update`` / ``insert``, a ``["stock_on_hand"] = ...`` store (a dict of
values built up for a statement), or SQL text that updates or inserts it, fails the test. The
scanner is checked against each of those shapes first, so a scan that finds nothing means
something.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from livecommerce.inventory import onhand
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.db.tables import metadata, skus
from tests.shopping import open_shop, stock_on_hand

ROOT = Path(__file__).resolve().parent.parent / "livecommerce"
ALLOWED = (ROOT / "inventory", ROOT / "platform" / "db")
COLUMN = "stock_on_hand"
WRITE_CALLS = {"values", "update", "insert", "on_conflict_do_update", "execute"}
RAW_SQL = re.compile(rf"\b(update|insert)\b.*\b{COLUMN}\b", re.IGNORECASE | re.DOTALL)


def _names_column(node: ast.AST) -> bool:
    """``"stock_on_hand"`` or ``<table>.c.stock_on_hand``."""
    if isinstance(node, ast.Constant):
        return node.value == COLUMN
    return isinstance(node, ast.Attribute) and node.attr == COLUMN


def writes_of_stock(source: str) -> list[int]:
    """Line numbers at which ``source`` writes the stock-on-hand column."""
    found: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in WRITE_CALLS:
                continue
            if any(k.arg == COLUMN for k in node.keywords):
                found.append(node.lineno)
            for arg in [*node.args, *(k.value for k in node.keywords if k.arg is None)]:
                if isinstance(arg, ast.Dict) and any(
                    key is not None and _names_column(key) for key in arg.keys
                ):
                    found.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript) and _names_column(target.slice):
                    found.append(node.lineno)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and RAW_SQL.search(node.value)
        ):
            found.append(node.lineno)
    return found


def test_the_scanner_finds_each_shape_of_a_write() -> None:
    writes = {
        "keyword": "conn.execute(skus.update().values(stock_on_hand=skus.c.stock_on_hand - 1))",
        "insert": "skus.insert().values(code='A', stock_on_hand=3)",
        "dict": "skus.update().values({skus.c.stock_on_hand: 0})",
        "unpacked dict": "skus.insert().values(**{'stock_on_hand': 0})",
        "store": "values['stock_on_hand'] = 4",
        "raw SQL": "sa.text('UPDATE skus SET stock_on_hand = stock_on_hand + 1')",
    }
    for shape, source in writes.items():
        assert writes_of_stock(source) == [1], shape
    reads = (
        "sa.select(skus.c.stock_on_hand).where(skus.c.id == 1)",
        "Variant(stock_on_hand=m['stock_on_hand'])",
        "{'stock_on_hand': self.stock_on_hand}",
    )
    for source in reads:
        assert writes_of_stock(source) == [], source


def test_only_inventory_writes_stock_on_hand() -> None:
    scanned = 0
    offenders: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        if any(path.is_relative_to(allowed) for allowed in ALLOWED):
            continue
        scanned += 1
        for line in writes_of_stock(path.read_text()):
            offenders.append(f"{path.relative_to(ROOT.parent)}:{line}")
    assert scanned > 50  # the whole app was read, not an empty folder
    assert not offenders, f"stock on hand is written outside livecommerce/inventory/: {offenders}"
    # ... and inventory's own modules do write it (the scan would see them if they moved out).
    assert writes_of_stock((ROOT / "inventory" / "onhand.py").read_text())


def test_a_new_sku_holds_no_stock_until_inventory_counts_it_in() -> None:
    """The row's default is 0, on the client side only (the schema is unchanged)."""
    column = metadata.tables["skus"].c[COLUMN]
    assert column.default is not None and column.default.arg == 0
    assert column.server_default is None


async def test_inventory_writers_stay_in_the_callers_transaction(
    client: TestClient[Any, Any],
) -> None:
    """sell / restock / set_on_hand run on the caller's connection: a rollback undoes them,
    and a product made with stock has its count (set by inventory) from the start."""
    _, _, sku = await open_shop(client, stock=5)
    assert await stock_on_hand(client, sku) == 5
    engine = client.app[ENGINE]

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with engine.begin() as conn:
            await onhand.sell(conn, sku, 2)
            await onhand.restock(conn, sku, 1)
            inside = (
                await conn.execute(sa.select(skus.c.stock_on_hand).where(skus.c.id == sku))
            ).scalar_one()
            assert inside == 4
            raise Undo
    assert await stock_on_hand(client, sku) == 5
    async with engine.begin() as conn:
        await onhand.set_on_hand(conn, sku, 9)
        await onhand.sell(conn, sku, 3)
    assert await stock_on_hand(client, sku) == 6
