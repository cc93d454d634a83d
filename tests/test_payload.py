"""Request bodies are read strictly: pathological JSON is a 400, loose types a 422, never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import hoodie, sign_up

PATHOLOGICAL = {
    "deep arrays": '{"email": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "deep but parseable": '{"email": ' + "[" * 500 + "]" * 500 + "}",
    "just too deep": '{"email": ' + "[" * 40 + "]" * 40 + "}",
    "thousands of digits": '{"email": ' + "9" * 5000 + "}",
    "a long fraction": '{"email": 0.' + "1" * 5000 + "}",
    "NaN": '{"email": NaN, "password": "x"}',
    "Infinity": '{"email": -Infinity, "password": "x"}',
    "overflowing float": '{"email": 1e400, "password": "x"}',
    "duplicate keys": '{"email": "a@example.com", "email": "b@example.com", "password": "x"}',
    "not UTF-8": b'{"email": "\xff\xfe", "password": "x"}',
    "truncated": '{"email": ',
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
async def test_pathological_json_is_a_400(client: TestClient[Any, Any], name: str) -> None:
    body = PATHOLOGICAL[name]
    response = await client.post(
        "/api/sessions", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == "invalid_json"


async def test_loose_types_are_refused(client: TestClient[Any, Any]) -> None:
    seller = await sign_up(client, "seller")
    buyer = await sign_up(client, "buyer")
    product = (
        await seller.call(
            "POST", "/api/products", hoodie(f"P-{uuid.uuid4().hex[:6]}", 5), status=201
        )
    )["product"]
    sku_id = product["variants"][0]["id"]
    for loose in ("2", True, 2.0, [2], {"n": 2}):
        response = await client.post(
            "/api/purchases",
            json={"sku_id": sku_id, "qty": loose},
            headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status == 422, loose
        assert (await response.json())["error"]["fields"][0]["field"] == "qty"
    for loose in ("true", 1, 0):
        response = await client.post(
            "/api/purchases",
            json={"sku_id": sku_id, "pay_with_saved_card": loose},
            headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status == 422, loose
    bad_variant = hoodie(f"Q-{uuid.uuid4().hex[:6]}")
    bad_variant["variants"][0]["price_minor"] = "4900"
    await seller.call("POST", "/api/products", bad_variant, status=422)
    # What JSON carries as text still parses: ISO datetimes, enum values.
    stream = await seller.call(
        "POST",
        "/api/streams",
        {"title": "Later", "scheduled_at": "2030-01-01T18:00:00+00:00"},
        status=201,
    )
    await seller.call(
        "PATCH", f"/api/streams/{stream['stream']['id']}", {"status": "live"}, status=200
    )


async def test_query_strings_stay_lax_but_bounded(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/api/streams?limit=5")).status == 200
    response = await client.get("/api/streams?limit=" + "9" * 5000)
    assert response.status == 422
    response = await client.get("/api/streams?limit=abc")
    assert response.status == 422
