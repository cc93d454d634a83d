"""Without a Stripe key: one emulator per DATA_DIR, shared by every server, surviving restarts."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import stripe

from bench.processes import ServerProcess
from livecommerce.payments.embedded_stripe import EMBEDDED_SECRET_KEY
from tests.conftest import hoodie
from tests.shopping import OK_CARD


def _emulator(data_dir: Path) -> dict[str, Any]:
    address: dict[str, Any] = json.loads((data_dir / "stripe-emulator/emulator.json").read_text())
    return address


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _saved_card(emulator_url: str) -> str:
    """A PaymentMethod, made at the emulator as its Stripe.js stand-in makes one."""
    client = stripe.StripeClient(
        EMBEDDED_SECRET_KEY,
        base_addresses={"api": emulator_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": OK_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return str(pm.id)


def _sign_up(server: ServerProcess, name: str) -> dict[str, str]:
    answer = httpx.post(
        f"{server.url}/api/accounts",
        json={
            "email": f"{name}-{uuid.uuid4().hex[:6]}@example.com",
            "password": "correct horse",
            "display_name": name,
        },
    )
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _one_tap(server: ServerProcess, buyer: dict[str, str], sku: int) -> dict[str, Any]:
    answer = httpx.post(
        f"{server.url}/api/purchases",
        json={"sku_id": sku},
        headers={**buyer, "Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    order: dict[str, Any] = answer.json()["order"]
    return order


def test_two_servers_share_one_emulator_that_remembers_saved_cards(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": postgres_url.replace("+asyncpg", ""),
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": f"t{uuid.uuid4().hex[:10]}",
        "STRIPE_SECRET_KEY": "",
        "STRIPE_WEBHOOK_SECRET": "",
        "STRIPE_API_BASE": "",
        "ICE_HOSTS": "127.0.0.1",
        "AUTO_MIGRATE": "0",
        "DATA_DIR": str(tmp_path),
    }
    first, second = (ServerProcess(env, tmp_path / f"server-{i}.log") for i in range(2))
    third: ServerProcess | None = None
    try:
        first.wait_ready()
        second.wait_ready()
        emulator = _emulator(tmp_path)
        seller = _sign_up(first, "seller")
        product = httpx.post(
            f"{first.url}/api/products", json=hoodie(f"E-{uuid.uuid4().hex[:6]}", 5), headers=seller
        )
        assert product.status_code == 201, product.text
        sku = product.json()["product"]["variants"][0]["id"]
        buyer = _sign_up(first, "buyer")
        saved = httpx.post(
            f"{first.url}/api/cards",
            json={"payment_method_id": _saved_card(emulator["url"])},
            headers=buyer,
        )
        assert saved.status_code == 201, saved.text

        # Saved through the first process, paid through the second.
        assert _one_tap(second, buyer, sku)["status"] == "paid"
        # The process that started the emulator goes; the emulator stays for the other.
        first.stop()
        assert _alive(emulator["pid"])
        assert _one_tap(second, buyer, sku)["status"] == "paid"

        # Every server stops: the emulator writes its store and exits. A fresh start remembers.
        second.stop()
        deadline = time.monotonic() + 20
        while _alive(emulator["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(emulator["pid"])
        third = ServerProcess(env, tmp_path / "server-3.log")
        third.wait_ready()
        assert _emulator(tmp_path)["pid"] != emulator["pid"]
        assert _one_tap(third, buyer, sku)["status"] == "paid"
    finally:
        for server in (first, second, third):
            if server is not None:
                server.stop()
