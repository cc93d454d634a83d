"""What the Socket.IO seam changes, against real clients and Redis: engine.io's heartbeat through
the ping wheel (one timer for every socket, no task each): a client that answers stays, one that
does not is closed, as engine.io's own would; which broadcasts make joiners read a room's
snapshot again."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import engineio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from livecommerce.live.transport import engineioseam, socketioseam, socketioserver


async def _app(aiohttp_client: Any, redis_url: str) -> tuple[TestClient[Any, Any], Any]:
    server = socketioserver.build_server(redis_url, f"pings{uuid.uuid4().hex[:8]}:socketio")
    server.eio.ping_interval, server.eio.ping_timeout = 1, 2
    app = web.Application()
    server.attach(app)
    sweeping = asyncio.ensure_future(socketioserver.fanout(server).keep_sweeping(0.05))

    async def stop(_app: web.Application) -> None:
        sweeping.cancel()

    app.on_cleanup.append(stop)
    return await aiohttp_client(app), server


async def test_a_client_that_answers_pings_stays_and_one_that_does_not_is_closed(
    aiohttp_client: Any, redis_url: str
) -> None:
    client, server = await _app(aiohttp_client, redis_url)
    url = str(client.make_url("/")).rstrip("/")

    answering = engineio.AsyncClient()
    await answering.connect(url, transports=["websocket"], engineio_path="socket.io")

    pings: list[float] = []
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
        opened = await ws.receive_str()
        assert opened.startswith("0") and json.loads(opened[1:])["pingInterval"] == 1000
        started = time.monotonic()
        closed_after = None
        while time.monotonic() - started < 8:
            msg = await ws.receive(timeout=8)
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                pings.append(time.monotonic() - started)  # never answered
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                closed_after = time.monotonic() - started
                break
        await ws.close()

    # one PING after ping_interval (the wheel turns every 50 ms here), then, unanswered, the
    # socket is closed within ping_timeout more (engine.io's rule, kept)
    assert len(pings) == 1 and 0.95 <= pings[0] <= 1.5, pings
    assert closed_after is not None and closed_after <= pings[0] + 2.5, closed_after
    # the answering client is still connected: pinged and answering all along (its reader ends
    # a socket that stays quiet for ping_interval + ping_timeout, which the PONGs prevent)
    assert answering.state == "connected"
    assert not server.eio.sockets[answering.sid].closing
    await answering.disconnect()


async def test_only_broadcasts_of_what_a_snapshot_shows_start_a_new_generation(
    redis_url: str,
) -> None:
    server = socketioserver.build_server(redis_url, f"gen{uuid.uuid4().hex[:8]}:socketio")
    manager = server.manager
    room = "stream:1"
    sid = await manager.connect("eio1", "/live")  # an engine.io socket that is not there
    await manager.enter_room(sid, "/live", room)
    fanout = socketioserver.fanout(server)
    try:
        assert fanout.generation(room) == 0
        for event in ("viewers", "reactions", "purchase:feed"):
            await manager.broadcast(event, {"stream_id": 1}, room, "/live")
        assert fanout.generation(room) == 0  # a joiner's snapshot stays good
        await manager.broadcast("chat:message", {"stream_id": 1}, room, "/live")
        await manager.broadcast("product:pinned", {"stream_id": 1}, room, "/live", version=1)
        assert fanout.generation(room) == 2
    finally:
        await server.shutdown()


def test_the_seams_refuse_versions_they_were_not_checked_against(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    socketioseam.check()  # the installed python-socketio and python-engineio pass
    monkeypatch.setattr(engineioseam, "CHECKED_VERSION", "9.9.")
    with pytest.raises(
        RuntimeError, match=r"engineioseam.py was checked with python-engineio 9\.9\.x"
    ):
        socketioseam.check()
    monkeypatch.setattr(socketioseam, "CHECKED_VERSION", "9.9.")
    with pytest.raises(
        RuntimeError, match=r"socketioseam.py was checked with python-socketio 9\.9\.x"
    ):
        socketioseam.check()
