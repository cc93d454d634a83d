"""``livecommerce serve --workers 2``: a master and two workers on one port, as operators run it.

The workers share the port (the kernel spreads connections over them), the embedded services
and migrations start once in the master, a pin made through one worker reaches viewers on the
other, SIGTERM lets in-flight buys finish, and a worker killed mid-rush is replaced without
selling what is not there or losing an order the buyer was told about.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiortc import RTCPeerConnection, RTCSessionDescription
from redis.asyncio import Redis

from bench.crowd import make_buyers
from bench.processes import ServerProcess, free_port_run
from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.platform.db.engine import create_engine
from livecommerce.platform.db.tables import orders
from livecommerce.platform.workers import (
    Plan,
    bind_media_ports,
    check_gunicorn,
    cpu_count,
    media_origin,
)
from tests.conftest import hoodie
from tests.liveclient import Viewer
from tests.mediapeers import CONFIG, NumberedCamera
from tests.mediapeers import Viewer as MediaViewer


async def _offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


def _log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    text = server.log_path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _children(server: ServerProcess, marker: bytes) -> set[int]:
    """The master's children whose command line holds ``marker``."""
    found = set()
    for pid in server.children():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if any(marker in part for part in command):
            found.add(pid)
    return found


def _workers(server: ServerProcess) -> set[int]:
    """The master's children that are workers (not the embedded Valkey or Stripe emulator)."""
    return _children(server, b"serve")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_serving(server: ServerProcess, count: int, timeout_s: float = 30) -> set[int]:
    """The workers that said they serve (a log line each), once ``count`` of them have."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        serving = {
            line["worker"] for line in _log_lines(server) if line["msg"].startswith("worker ")
        } & _workers(server)
        if len(serving) >= count:
            return serving
        time.sleep(0.1)
    raise AssertionError(f"{count} workers do not serve:\n{server.log_path.read_text()[-3000:]}")


def _wait_gone(pids: set[int], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while any(_pid_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.1)


async def _account(session: aiohttp.ClientSession, url: str, name: str) -> dict[str, Any]:
    body = {
        "email": f"{name}-{uuid.uuid4().hex[:6]}@example.com",
        "password": "correct horse",
        "display_name": name,
    }
    async with session.post(f"{url}/api/accounts", json=body) as response:
        assert response.status == 201, await response.text()
        made: dict[str, Any] = await response.json()
    session.cookie_jar.clear()
    return made


async def _product(session: aiohttp.ClientSession, url: str, token: str, stock: int) -> int:
    async with session.post(
        f"{url}/api/products",
        json=hoodie(f"W-{uuid.uuid4().hex[:8]}", stock),
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 201, await response.text()
        return int((await response.json())["product"]["variants"][0]["id"])


async def _buy(
    session: aiohttp.ClientSession, url: str, token: str, sku: int
) -> tuple[int, dict[str, Any]]:
    try:
        async with session.post(
            f"{url}/api/purchases",
            json={"sku_id": sku, "qty": 1},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
        ) as response:
            return response.status, await response.json()
    except (TimeoutError, aiohttp.ClientError) as exc:
        # Refused or cut off while the server stops: the buyer was told nothing.
        return 0, {"error": repr(exc)}


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[ServerProcess]:
    """Two workers with nothing configured: embedded Valkey, Stripe emulator and SQLite."""
    server = ServerProcess(
        {
            "DATA_DIR": str(tmp_path),
            "REDIS_URL": "",
            "STRIPE_SECRET_KEY": "",
            "STRIPE_API_BASE": "",
            "LOG_LEVEL": "INFO",
            "LOG_JSON": "1",
        },
        tmp_path / "server.log",
        workers=2,
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


async def test_two_workers_share_one_port_and_the_services_start_once(
    embedded: ServerProcess,
) -> None:
    workers = _wait_serving(embedded, 2)
    valkeys = _children(embedded, b"valkey-server")
    assert len(valkeys) == 1
    configs = set()
    # A fresh connection each time: the kernel picks a worker for each.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(40):
            async with session.get(f"{embedded.url}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{embedded.url}/api/config") as response:
                configs.add(json.dumps(await response.json(), sort_keys=True))
        # Both workers use the one Stripe emulator (one Stripe.js URL) ...
        assert len(configs) == 1
        assert json.loads(configs.pop())["stripe"]["publishable_key"] == "pk_test_embedded"
        # ... and the one Redis and database: three units sell three times, wherever.
        seller = await _account(session, embedded.url, "seller")
        sku = await _product(session, embedded.url, seller["token"], 3)
        buyers = [(await _account(session, embedded.url, f"b{i}"))["token"] for i in range(4)]
        answers = [await _buy(session, embedded.url, token, sku) for token in buyers]
        assert [status for status, _ in answers] == [201, 201, 201, 409], answers

    embedded.stop()
    assert embedded.process.returncode == 0
    lines = _log_lines(embedded)
    serving = {
        line["worker"]
        for line in lines
        if line["logger"] == "aiohttp.access" and "GET /healthz" in line["msg"]
    }
    assert serving == workers, (serving, workers)
    messages = [line["msg"] for line in lines]
    assert messages.count("started embedded Redis") == 1
    assert sum("embedded Stripe emulator" in m for m in messages) == 1
    running = embedded.log_path.read_text().count("livecommerce is running at")
    assert running == 1
    # The master stopped its workers, then the Valkey it started.
    for pid in workers | valkeys:
        assert not _pid_alive(pid), pid


@pytest.fixture
def two_workers(
    postgres_url: str, redis_url: str, localstripe_url: str, tmp_path: Path
) -> Iterator[ServerProcess]:
    server = _two_workers(postgres_url, redis_url, localstripe_url, tmp_path)
    try:
        server.wait_ready()
        _wait_serving(server, 2)
        yield server
    finally:
        server.stop()


async def test_a_pin_through_one_worker_reaches_viewers_on_the_other(
    two_workers: ServerProcess,
) -> None:
    url = two_workers.url
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        creator = await _account(session, url, "creator")
        bearer = {"Authorization": f"Bearer {creator['token']}"}
        async with session.post(
            f"{url}/api/products", json=hoodie(f"P-{uuid.uuid4().hex[:6]}", 5), headers=bearer
        ) as response:
            product = (await response.json())["product"]
        async with session.post(
            f"{url}/api/streams", json={"title": "W", "lineup": [product["id"]]}, headers=bearer
        ) as response:
            stream_id = (await response.json())["stream"]["id"]
        viewers = [Viewer() for _ in range(12)]
        try:
            for n, viewer in enumerate(viewers):
                # The query names the viewer in the access log line of its websocket.
                await viewer.connect(f"{url}?viewer={n}")
                assert (await viewer.call("join", {"stream_id": stream_id}))["ok"]
            async with session.post(
                f"{url}/api/streams/{stream_id}/pin",
                json={"product_id": product["id"]},
                headers=bearer,
            ) as response:
                assert response.status == 201, await response.text()
            for viewer in viewers:
                await viewer.wait_for("product:pinned", stream_id=stream_id)
        finally:
            for viewer in viewers:
                await viewer.sio.disconnect()
    await asyncio.sleep(0.5)
    two_workers.stop()
    lines = [line for line in _log_lines(two_workers) if line["logger"] == "aiohttp.access"]
    pinned_by = {line["worker"] for line in lines if f"/api/streams/{stream_id}/pin" in line["msg"]}
    sockets = {
        int(line["msg"].split("viewer=")[1].split("&")[0].split(" ")[0]): line["worker"]
        for line in lines
        if "viewer=" in line["msg"]
    }
    assert len(pinned_by) == 1 and len(sockets) == len(viewers), (pinned_by, sockets)
    # Every viewer heard the pin, those on the other worker too (through Redis).
    assert set(sockets.values()) - pinned_by, sockets


async def test_sigterm_during_a_rush_loses_no_order_and_leaks_no_hold(
    two_workers: ServerProcess, postgres_url: str, redis_url: str
) -> None:
    url = two_workers.url
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400)) as session:
        seller = await _account(session, url, "seller")
        sku = await _product(session, url, seller["token"], 10_000)
        tokens = await make_buyers(postgres_url, 600)

        under_way = asyncio.Event()
        sold = 0

        async def one(token: str) -> tuple[int, dict[str, Any]]:
            nonlocal sold
            answer = await _buy(session, url, token, sku)
            sold += answer[0] == 201
            if sold >= 30:
                under_way.set()
            return answer

        rushing = asyncio.gather(*(one(t) for t in tokens))
        await asyncio.wait_for(under_way.wait(), 60)  # mid-rush: many buys are in flight
        two_workers.process.send_signal(signal.SIGTERM)
        answers = await rushing
    await asyncio.to_thread(two_workers.process.wait, 30)
    assert two_workers.process.returncode == 0

    told = [body["order"]["id"] for status, body in answers if status == 201]
    import collections

    print("STATUSES", collections.Counter(s for s, _ in answers))
    assert len(told) >= 30
    refused = {body["error"]["code"] for status, body in answers if status == 503}
    assert refused <= {"shutting_down"}, refused
    assert {status for status, _ in answers} <= {0, 201, 503}, answers[:3]
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(orders.c.id, orders.c.status, orders.c.qty).where(
                        orders.c.sku_id == sku
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    # Every buyer told 201 has the order; no order was written that nobody was told of.
    assert {row.id for row in rows} == set(told)
    assert {row.status for row in rows} == {"reserved"}
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        namespace = two_workers.env["REDIS_NAMESPACE"]
        avail, held, sold = await redis.hmget(
            f"{namespace}:stock:{{sku{sku}}}", "avail", "held", "sold"
        )
    finally:
        await redis.aclose()
    # Every unit held belongs to an order (none held for a buyer who was told nothing).
    assert (int(avail), int(held), int(sold)) == (10_000 - len(told), len(told), 0)


async def test_a_worker_killed_mid_rush_is_replaced_and_nothing_is_oversold(
    two_workers: ServerProcess, postgres_url: str, redis_url: str
) -> None:
    url = two_workers.url
    listed = 40
    before = _workers(two_workers)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400)) as session:
        seller = await _account(session, url, "seller")
        sku = await _product(session, url, seller["token"], listed)
        tokens = await make_buyers(postgres_url, 600)

        under_way = asyncio.Event()
        sold = 0

        async def one(token: str) -> tuple[int, dict[str, Any]]:
            nonlocal sold
            answer = await _buy(session, url, token, sku)
            sold += answer[0] == 201
            if sold >= 10:
                under_way.set()
            return answer

        rushing = asyncio.gather(*(one(t) for t in tokens))
        await asyncio.wait_for(under_way.wait(), 60)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        answers = await rushing
        # The master replaces it; the port keeps answering, through both workers.
        after = await asyncio.to_thread(_wait_serving, two_workers, 2)
        assert victim not in after and len(after - before) == 1
        more = await make_buyers(postgres_url, 1)
        status, body = await _buy(session, url, more[0], sku)
        assert status in (201, 409), body

    told = [body["order"]["id"] for status, body in answers if status == 201]
    refused = {body["error"]["code"] for status, body in answers if status == 409}
    assert refused <= {"sold_out"}, refused
    assert 0 < len(told) <= listed
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            ids = set(
                (await conn.execute(sa.select(orders.c.id).where(orders.c.sku_id == sku)))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    assert set(told) <= ids  # every 201 has its order
    assert len(ids) <= listed
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        namespace = two_workers.env["REDIS_NAMESPACE"]
        counters = await redis.hmget(f"{namespace}:stock:{{sku{sku}}}", "avail", "held", "sold")
    finally:
        await redis.aclose()
    avail, held, sold = (int(n) for n in counters)
    assert avail >= 0 and avail + held + sold == listed
    assert held >= len(ids)  # a hold whose order the killed worker never wrote waits its expiry


def _two_workers(
    postgres_url: str, redis_url: str, localstripe_url: str, tmp_path: Path, **extra: str
) -> ServerProcess:
    return ServerProcess(
        {
            "DATABASE_URL": postgres_url.replace("+asyncpg", ""),
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": f"w{uuid.uuid4().hex[:10]}",
            "STRIPE_SECRET_KEY": "sk_test_livecommerce",
            "STRIPE_WEBHOOK_SECRET": f"whsec_{uuid.uuid4().hex}",
            "STRIPE_API_BASE": localstripe_url,
            "ICE_HOSTS": "127.0.0.1",
            "AUTO_MIGRATE": "0",
            "SHUTDOWN_TIMEOUT": "10",
            "LOG_LEVEL": "INFO",
            "LOG_JSON": "1",
            "DATA_DIR": str(tmp_path),
            **extra,
        },
        tmp_path / "server.log",
        workers=2,
    )


@pytest.mark.usefixtures("loopback_only")
async def test_a_whep_viewer_on_either_worker_gets_frames_pulled_from_the_holder(
    two_workers: ServerProcess,
) -> None:
    """Each worker's own media listener takes a viewer: the holder serves it, the other
    worker pulls the stream from the holder and serves its viewer from that."""
    publisher = RTCPeerConnection(CONFIG)
    publisher.addTransceiver(NumberedCamera(), direction="sendonly")
    viewers: list[MediaViewer] = []
    try:
        stream_id = await _go_on_air(two_workers, publisher)
        serving = _wait_serving(two_workers, 2)
        # Each worker's media address, as it logged it when it began to serve.
        media_urls = {
            line["msg"].rsplit(" ", 1)[1]
            for line in _log_lines(two_workers)
            if line["msg"].startswith("worker ") and line["worker"] in serving
        }
        assert len(media_urls) == 2, media_urls
        served: set[str] = set()
        async with aiohttp.ClientSession() as session:
            for media_url in sorted(media_urls):
                viewer = MediaViewer()
                viewers.append(viewer)
                async with session.post(
                    f"{media_url}/whep/{stream_id}",
                    data=await _offer(viewer.pc),
                    headers={"Content-Type": "application/sdp"},
                    allow_redirects=False,
                ) as response:
                    assert response.status == 201, await response.text()
                    answer = await response.text()
                await viewer.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=answer, type="answer")
                )
                await viewer.wait_frames(5)
                assert viewer.encoded[0].keyframe
                served.add(media_url)
        assert served == media_urls  # both workers served a viewer, one through a pull
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


@pytest.mark.usefixtures("loopback_only")
async def test_with_whep_redirect_the_other_worker_sends_the_viewer_to_the_holder(
    postgres_url: str, redis_url: str, localstripe_url: str, tmp_path: Path
) -> None:
    server = _two_workers(postgres_url, redis_url, localstripe_url, tmp_path, WHEP_REDIRECT="true")
    publisher = RTCPeerConnection(CONFIG)
    publisher.addTransceiver(NumberedCamera(), direction="sendonly")
    viewer = MediaViewer()
    try:
        server.wait_ready()
        _wait_serving(server, 2)
        await _watch_through_the_other_worker(server, publisher, viewer)
    finally:
        await viewer.close()
        await publisher.close()
        server.stop()


async def _go_on_air(server: ServerProcess, publisher: RTCPeerConnection) -> int:
    url = server.url
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        creator = await _account(session, url, "host")
        async with session.post(
            f"{url}/api/streams",
            json={"title": "Media on two workers"},
            headers={"Authorization": f"Bearer {creator['token']}"},
        ) as response:
            created = await response.json()
        stream_id, key = created["stream"]["id"], created["stream_key"]
        async with session.post(
            f"{url}/whip/{stream_id}",
            data=await _offer(publisher),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        ) as response:
            assert response.status == 201, await response.text()
            answer = await response.text()
        await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for _ in range(100):  # until the first frames reached the relay
            async with session.get(f"{url}/api/streams/{stream_id}/room") as response:
                if (await response.json())["room"]["on_air"]:
                    break
            await asyncio.sleep(0.1)
    return int(stream_id)


async def _watch_through_the_other_worker(
    two_workers: ServerProcess, publisher: RTCPeerConnection, viewer: MediaViewer
) -> None:
    url = two_workers.url
    first_media_port = int(two_workers.env["WORKER_MEDIA_PORT"])
    stream_id = await _go_on_air(two_workers, publisher)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        offer = await _offer(viewer.pc)
        # Each try is a new connection, so it may reach either worker; the one that does not
        # hold the stream sends the viewer to the holder's own media listener.
        location = None
        for _ in range(12):
            async with session.post(
                f"{url}/whep/{stream_id}",
                data=offer,
                headers={"Content-Type": "application/sdp"},
                allow_redirects=False,
            ) as response:
                if response.status == 307:
                    location = response.headers["Location"]
                    break
                assert response.status == 201, await response.text()
        assert location is not None, "every try reached the holder"
        port = int(location.split(":")[2].split("/")[0])
        assert location == f"http://127.0.0.1:{port}/whep/{stream_id}"
        assert first_media_port <= port < first_media_port + 4
        async with session.post(
            location, data=offer, headers={"Content-Type": "application/sdp"}
        ) as response:
            assert response.status == 201, await response.text()
            answer = await response.text()
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await viewer.wait_frames(5)
        assert viewer.encoded[0].keyframe


async def test_sighup_replaces_the_workers_mid_rush_and_keeps_every_order(
    two_workers: ServerProcess, postgres_url: str, redis_url: str
) -> None:
    url = two_workers.url
    before = _wait_serving(two_workers, 2)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        seller = await _account(session, url, "seller")
        sku = await _product(session, url, seller["token"], 10_000)
        tokens = await make_buyers(postgres_url, 400)
        under_way = asyncio.Event()
        sold = 0

        async def one(token: str) -> tuple[int, dict[str, Any]]:
            nonlocal sold
            answer = await _buy(session, url, token, sku)
            sold += answer[0] == 201
            if sold >= 30:
                under_way.set()
            return answer

        rushing = asyncio.gather(*(one(t) for t in tokens))
        await asyncio.wait_for(under_way.wait(), 60)
        two_workers.process.send_signal(signal.SIGHUP)
        answers = await rushing

        # New workers serve; the old ones finished and left; the master stayed.
        await asyncio.to_thread(_wait_gone, before)
        after = await asyncio.to_thread(_wait_serving, two_workers, 2)
        assert not after & before and two_workers.process.poll() is None
        more = await make_buyers(postgres_url, 1)
        assert (await _buy(session, url, more[0], sku))[0] == 201

    told = [body["order"]["id"] for status, body in answers if status == 201]
    refused = {body["error"]["code"] for status, body in answers if status == 503}
    assert refused <= {"shutting_down"}, refused
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            ids = set(
                (await conn.execute(sa.select(orders.c.id).where(orders.c.sku_id == sku)))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    assert len(ids) == len(told) + 1 and set(told) <= ids
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        namespace = two_workers.env["REDIS_NAMESPACE"]
        held = await redis.hget(f"{namespace}:stock:{{sku{sku}}}", "held")
    finally:
        await redis.aclose()
    assert int(held) == len(ids)


def test_the_gunicorn_seam_checks_the_installed_versions() -> None:
    import gunicorn

    check_gunicorn()  # raises on a gunicorn or aiohttp worker it was not checked against
    assert gunicorn.version_info[0] == 27
    assert 1 <= cpu_count() <= (os.cpu_count() or 1)


def test_each_worker_has_its_own_media_address() -> None:
    first = free_port_run(4, besides=0)
    fixed = bind_media_ports(Settings(worker_media_port=first), 2)  # 2 workers: 4 slots
    free = bind_media_ports(Settings(), 1)
    try:
        assert [sock.getsockname()[1] for sock in fixed] == list(range(first, first + 4))
        plan = Plan(Settings(worker_media_port=first), create_app, "", fixed)
        assert plan.media_socket(3) is fixed[3]
        assert plan.for_port(first + 3).media_url == f"http://127.0.0.1:{first + 3}"
        # Unset, the master picks free ports.
        assert len({sock.getsockname()[1] for sock in free}) == 2
        # A port taken stops the start with one line naming the setting.
        with pytest.raises(OSError, match=f"WORKER_MEDIA_PORT: 127.0.0.1:{first}"):
            bind_media_ports(Settings(worker_media_port=first), 1)
    finally:
        for sock in fixed + free:
            sock.close()
    # A wildcard HOST is reached on loopback; MEDIA_URL's scheme and host are kept.
    assert media_origin(Settings(host="0.0.0.0"), 8100) == "http://127.0.0.1:8100"
    assert media_origin(Settings(host="::1"), 8100) == "http://[::1]:8100"
    edge = Plan(Settings(media_url="https://edge-3.example.net"), create_app, "")
    assert edge.for_port(7001).media_url == "https://edge-3.example.net:7001"
    # --workers wins over WEB_CONCURRENCY.
    assert Settings.from_env({"WEB_CONCURRENCY": "3"}, workers=2).workers == 2
