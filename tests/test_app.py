"""The composition root: layers kept, settings free of domains, resources built once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.live.transport.socketioserver import SOCKETIO
from livecommerce.platform.openapi import DOCUMENT
from livecommerce.platform.resources import REDIS_URL
from tests.liveclient import Viewer

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    """The layers and the independence of sibling domains in pyproject.toml hold."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_settings_import_no_domain() -> None:
    """Reading and checking settings (ICE ones included) loads no domain, aiortc or aiohttp."""
    code = textwrap.dedent(
        """
        import sys
        from livecommerce.config import ConfigError, Settings
        Settings(ice_hosts=("127.0.0.1",), ice_servers=("turn:u:p@127.0.0.1:3478",))
        for bad in (dict(ice_servers=("http://x",)), dict(ice_hosts=("host",))):
            try:
                Settings(**bad)
            except ConfigError as exc:
                assert "ICE_HOSTS / ICE_SERVERS" in str(exc), exc
            else:
                raise AssertionError(f"accepted {bad}")
        domains = (
            "accounts", "catalog", "checkout", "live", "media",
            "inventory", "orders", "payments", "events",
        )
        loaded = sorted(
            name for name in sys.modules
            if name.split(".")[0] in ("aiortc", "aiohttp")
            or name.split(".")[:2][-1] in domains and name.startswith("livecommerce.")
        )
        assert not loaded, loaded
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr


async def test_socketio_server_is_built_once_redis_is_known(
    aiohttp_client: Any, settings: Settings, viewers: list[Viewer]
) -> None:
    """No placeholder manager: the server is made at start-up, on the app's own Redis."""
    app = create_app(settings)
    assert SOCKETIO not in app
    client = await aiohttp_client(app)
    manager = app[SOCKETIO].manager
    assert manager.redis_url == app[REDIS_URL] == settings.redis_url
    assert manager.channel == f"{settings.redis_namespace}:socketio"
    viewer = Viewer()
    viewers.append(viewer)
    await viewer.connect(str(client.make_url("/")))  # through the routes made before start-up
    clock = await viewer.call("clock:sync", {})
    assert isinstance(clock["server_time"], int | float)


async def test_openapi_document_is_built_once_and_describes_itself(
    aiohttp_client: Any, settings: Settings
) -> None:
    app = create_app(settings)
    document = app[DOCUMENT]
    client = await aiohttp_client(app)
    served = await (await client.get("/api/openapi.json")).json()
    assert served == document
    assert "get" in document["paths"]["/api/openapi.json"]
    assert app[DOCUMENT] is document


async def test_an_app_that_stops_leaves_no_redis_connection_open(
    settings: Settings, private_redis_url: str
) -> None:
    """Started and stopped again and again (as workers are on reloads, and tests all day), an
    app must give back every Redis connection it opened, its warmed pool's included."""
    from dataclasses import replace

    from aiohttp.test_utils import TestClient, TestServer
    from redis.asyncio import Redis

    probe = Redis.from_url(private_redis_url)
    try:
        before = int((await probe.info("clients"))["connected_clients"])
        for _ in range(3):
            client = TestClient(
                TestServer(create_app(replace(settings, redis_url=private_redis_url)))
            )
            await client.start_server()
            async with client.get("/healthz") as response:
                assert response.status == 200
            await client.close()
        after = int((await probe.info("clients"))["connected_clients"])
    finally:
        await probe.aclose()
    assert after == before, (before, after)
