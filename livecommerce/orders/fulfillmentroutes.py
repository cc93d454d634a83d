"""HTTP routes of the order desk: what to pack, the pick list, parcels (pack, ship, deliver),
packing slips and the carrier CSV. Who may: see ``fulfillment.may_fulfil``."""

from __future__ import annotations

import html
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, StringConstraints

from livecommerce.accounts.routes import current_user
from livecommerce.events.bus import EVENTS
from livecommerce.orders import orderdesk
from livecommerce.orders.carriers import TRACKING_PAGES
from livecommerce.orders.fulfillment import (
    MAX_PARCEL_ORDERS,
    Parcel,
    advance,
    check_shipment,
    pack,
    visible_parcel,
)
from livecommerce.orders.notices import BuyerNotices
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.mail import MAILER
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import Payload, path_id, query, read_json

PARCEL_ID = r"{id:\d+}"


class DeskQuery(Payload):
    stream_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class NewParcel(Payload):
    order_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        min_length=1, max_length=MAX_PARCEL_ORDERS
    )


class Shipment(Payload):
    carrier: str = Field(min_length=1, max_length=40)
    tracking_number: Annotated[
        str, StringConstraints(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9 ._/-]+$")
    ]


def notices(request: web.Request) -> BuyerNotices:
    app = request.app
    return BuyerNotices(app[ENGINE], app[EVENTS], app[MAILER])


async def get_desk(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = query(request, DeskQuery)
    async with request.app[ENGINE].connect() as conn:
        body = await orderdesk.desk(conn, user.id, q.stream_id)
    body["carriers"] = [{"key": k, "name": name} for k, (name, _url) in TRACKING_PAGES.items()]
    return web.json_response(body)


async def get_pick_list(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = query(request, DeskQuery)
    async with request.app[ENGINE].connect() as conn:
        picks = await orderdesk.pick_list(conn, user.id, q.stream_id)
    return web.json_response({"stream_id": q.stream_id, "picks": picks})


async def get_export(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = query(request, DeskQuery)
    async with request.app[ENGINE].connect() as conn:
        text = await orderdesk.export_csv(conn, user.id, q.stream_id)
    name = f"parcels-show-{q.stream_id}.csv" if q.stream_id else "parcels.csv"
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def get_parcel(request: web.Request) -> web.Response:
    user = await current_user(request)
    parcel_id = path_id(request, what="parcel")
    async with request.app[ENGINE].connect() as conn:
        parcel = await visible_parcel(conn, parcel_id, user.id)
    return web.json_response({"parcel": _parcel_view(parcel)})


def _parcel_view(parcel: Parcel) -> dict[str, Any]:
    return {**parcel.to_dict(), "orders": [o.to_dict() for o in parcel.orders]}


async def post_parcel(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, NewParcel)
    parcel = await pack(request.app[ENGINE], body.order_ids, user.id)
    said = notices(request)
    await said.announce(parcel.orders)
    ids = ", ".join(f"#{o.id}" for o in parcel.orders)
    await said.email(
        parcel.buyer_id,
        f"Your order {ids} is packed",
        f"Good news: your order {ids} is packed and will ship soon.\n"
        "We will write again with the tracking number.\n",
    )
    return web.json_response({"parcel": _parcel_view(parcel)}, status=201)


async def post_ship(request: web.Request) -> web.Response:
    user = await current_user(request)
    parcel_id = path_id(request, what="parcel")
    body = await read_json(request, Shipment)
    carrier, number = check_shipment(body.carrier, body.tracking_number)
    parcel = await advance(
        request.app[ENGINE],
        parcel_id,
        user.id,
        "shipped",
        carrier=carrier,
        tracking_number=number,
    )
    said = notices(request)
    await said.announce(parcel.orders)
    ids = ", ".join(f"#{o.id}" for o in parcel.orders)
    view = parcel.to_dict()
    name = view["carrier_name"]
    link = f"Track it: {view['tracking_url']}\n" if view["tracking_url"] else ""
    await said.email(
        parcel.buyer_id,
        f"Your order {ids} has shipped",
        f"Your order {ids} is on its way with {name}.\n"
        f"Tracking number: {parcel.tracking_number}\n{link}",
    )
    return web.json_response({"parcel": _parcel_view(parcel)})


async def post_deliver(request: web.Request) -> web.Response:
    user = await current_user(request)
    parcel_id = path_id(request, what="parcel")
    parcel = await advance(request.app[ENGINE], parcel_id, user.id, "delivered")
    said = notices(request)
    await said.announce(parcel.orders)
    ids = ", ".join(f"#{o.id}" for o in parcel.orders)
    await said.email(
        parcel.buyer_id,
        f"Your order {ids} was delivered",
        f"Your order {ids} was delivered. Enjoy it!\n"
        "Not what you hoped for? You can ask for a return from your order page.\n",
    )
    return web.json_response({"parcel": _parcel_view(parcel)})


async def get_slip(request: web.Request) -> web.Response:
    """A packing slip to print and put in the box: the address and what is inside."""
    user = await current_user(request)
    parcel_id = path_id(request, what="parcel")
    async with request.app[ENGINE].connect() as conn:
        parcel = await visible_parcel(conn, parcel_id, user.id)
        items = await orderdesk.lines(conn, {o.sku_id for o in parcel.orders})
        names = await orderdesk.buyers(conn, {parcel.buyer_id})
    return web.Response(
        text=packing_slip(parcel, items, names.get(parcel.buyer_id, "")),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def packing_slip(parcel: Parcel, items: dict[int, orderdesk.Line], buyer_name: str) -> str:
    e = html.escape
    address = parcel.shipping_address or {}
    lines = [
        address.get("name") or buyer_name,
        address.get("line1"),
        address.get("line2"),
        " ".join(str(p) for p in (address.get("postal_code"), address.get("city")) if p),
        address.get("region"),
        address.get("country"),
    ]
    rows = "".join(
        f"<tr><td>#{o.id}</td><td>{e(items[o.sku_id].sku if o.sku_id in items else '')}</td>"
        f"<td>{e(items[o.sku_id].title if o.sku_id in items else '')}</td>"
        f"<td>{e(_variant(items, o.sku_id))}</td><td class=qty>{o.qty}</td>"
        "<td class=check aria-label=packed>&#9744;</td></tr>"
        for o in parcel.orders
    )
    units = sum(o.qty for o in parcel.orders)
    address_html = "<br>".join(e(str(line)) for line in lines if line)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Packing slip — parcel {parcel.id}</title>
<link rel="stylesheet" href="/static/app.css">
<link rel="stylesheet" href="/static/orderdesk.css">
<script type="module" src="/static/js/slip.js"></script>
</head>
<body class="slip">
<div class="toolbar"><button type="button" id="print">Print</button></div>
<h1>Packing slip — parcel P{parcel.id}</h1>
<p>Show {e(str(parcel.stream_id or "—"))} · {len(parcel.orders)} order(s), {units} unit(s)</p>
<p class="ship-to" aria-label="Ship to">{address_html}</p>
<table><thead><tr><th>Order</th><th>SKU</th><th>Item</th><th>Variant</th><th>Qty</th>
<th>Packed</th></tr></thead><tbody>{rows}</tbody></table>
</body></html>
"""


def _variant(items: dict[int, orderdesk.Line], sku_id: int) -> str:
    line = items.get(sku_id)
    if line is None:
        return ""
    return ", ".join(f"{k}: {v}" for k, v in sorted(line.attributes.items()))


OPERATIONS = (
    Operation(
        "GET",
        "/api/orderdesk",
        get_desk,
        "The order desk: parcels to pack (paid orders grouped), parcels made, ship-by and late",
        "fulfillment",
        query=DeskQuery,
        auth=True,
    ),
    Operation(
        "GET",
        "/api/orderdesk/picklist",
        get_pick_list,
        "Units to pick per SKU for the paid orders not yet packed",
        "fulfillment",
        query=DeskQuery,
        auth=True,
    ),
    Operation(
        "GET",
        "/api/orderdesk/export.csv",
        get_export,
        "Packed parcels as CSV for a carrier's bulk label tool, one row per parcel",
        "fulfillment",
        query=DeskQuery,
        auth=True,
        response_type="text/csv",
    ),
    Operation(
        "POST",
        "/api/parcels",
        post_parcel,
        "Pack paid orders (one buyer, one show, one address) into a parcel",
        "fulfillment",
        body=NewParcel,
        auth=True,
        status=201,
        errors=(409,),
    ),
    Operation(
        "GET", f"/api/parcels/{PARCEL_ID}", get_parcel, "One parcel", "fulfillment", auth=True
    ),
    Operation(
        "POST",
        f"/api/parcels/{PARCEL_ID}/ship",
        post_ship,
        "Ship a packed parcel with a carrier and tracking number",
        "fulfillment",
        body=Shipment,
        auth=True,
        errors=(409,),
    ),
    Operation(
        "POST",
        f"/api/parcels/{PARCEL_ID}/deliver",
        post_deliver,
        "Mark a shipped parcel delivered",
        "fulfillment",
        auth=True,
        errors=(409,),
    ),
    Operation(
        "GET",
        f"/api/parcels/{PARCEL_ID}/slip",
        get_slip,
        "A printable packing slip (HTML)",
        "fulfillment",
        auth=True,
        response_type="text/html",
    ),
)
