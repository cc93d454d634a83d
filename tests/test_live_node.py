"""Live rooms with the official Node ``socket.io-client``, the one browsers run, against the app."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
from tests.test_checkout import OK_CARD
from tests.test_checkout import card as saved_card_for
from tests.test_live import _stage, _url

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "tests" / "node" / "live_client.mjs"


class NodeClient:
    """``node live_client.mjs``: emits with acks on command, reports every event it hears."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str, token: str | None = None) -> NodeClient:
        node = shutil.which("node")
        if node is None or not (ROOT / "node_modules" / "socket.io-client").is_dir():
            pytest.fail("Node and `npm ci` are needed (scripts/setup installs the packages)")
        process = await asyncio.create_subprocess_exec(
            node,
            str(CLIENT),
            url,
            *([token] if token else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(json.loads(raw))

    async def _until(self, found: Any, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for line in self.lines:
                if found(line):
                    return line
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {what} in {self.lines}")

    async def connected(self) -> dict[str, Any]:
        return await self._until(lambda x: "connected" in x or "connect_error" in x, "connect")

    async def call(self, event: str, data: Any) -> Any:
        command_id = next(self._ids)
        assert self.process.stdin is not None
        self.process.stdin.write(
            json.dumps({"id": command_id, "emit": event, "data": data}).encode() + b"\n"
        )
        await self.process.stdin.drain()
        line = await self._until(lambda x: x.get("id") == command_id, f"ack {command_id}")
        return line["ack"]

    async def event(self, name: str, **match: Any) -> Any:
        line = await self._until(
            lambda x: (
                x.get("event") == name and all(x["data"].get(k) == v for k, v in match.items())
            ),
            name,
        )
        return line["data"]

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


@pytest.fixture
async def node_clients() -> AsyncIterator[list[NodeClient]]:
    made: list[NodeClient] = []
    yield made
    for client in made:
        await client.close()


async def test_node_clients_watch_pin_buy_and_chat(
    aiohttp_client: Any, settings: Settings, node_clients: list[NodeClient]
) -> None:
    live: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    _creator, moderator, buyer, stream_id, product_id, sku_id = await _stage(live)
    await buyer.call(
        "POST",
        "/api/cards",
        {"payment_method_id": await saved_card_for(settings, OK_CARD)},
        status=201,
    )
    url = _url(live)
    mod = await NodeClient.start(url, moderator.token)
    fan = await NodeClient.start(url, buyer.token)
    anon = await NodeClient.start(url)
    node_clients += [mod, fan, anon]
    for client in (mod, fan, anon):
        assert "connected" in await client.connected()
        joined = await client.call("join", {"stream_id": stream_id})
        assert joined["ok"] and joined["state"]["stream_id"] == stream_id
    state = await anon.event("room:state")
    assert state["status"] == "scheduled" and state["pinned"] is None

    refused = await fan.call("pin", {"stream_id": stream_id, "product_id": product_id})
    assert refused["error"]["code"] == "forbidden"
    assert (await mod.call("pin", {"stream_id": stream_id, "product_id": product_id}))["ok"]
    card = await anon.event("product:pinned", stream_id=stream_id)
    assert card["product"]["sku_id"] == sku_id and card["stock"] == 20

    clock = await anon.call("clock:sync", {"client_time": 123})
    assert clock["client_time"] == 123 and abs(clock["server_time"] - time.time() * 1000) < 5000

    bought = await fan.call(
        "buy", {"sku_id": sku_id, "qty": 1, "idempotency_key": "node-1", "stream_id": stream_id}
    )
    assert bought["ok"] and bought["order"]["status"] == "paid"  # one tap, saved card
    again = await fan.call(
        "buy", {"sku_id": sku_id, "qty": 1, "idempotency_key": "node-1", "stream_id": stream_id}
    )
    assert again["replayed"] and again["order"]["id"] == bought["order"]["id"]
    feed = await anon.event("purchase:feed", sku_id=sku_id)
    assert feed["qty"] == 1 and "buyer_id" not in feed
    assert (await anon.event("stock:changed", sku_id=sku_id))["available"] == 19

    assert (await fan.call("chat:send", {"stream_id": stream_id, "text": "from node"}))["ok"]
    assert (await anon.event("chat:message"))["text"] == "from node"

    # Bad input is answered, and the connection stays up.
    assert (await anon.call("join", {"stream_id": "seven"}))["error"]["code"] == "invalid_input"
    assert (await anon.call("no-such-event", {}))["error"]["code"] == "unknown_event"
    assert (await anon.call("buy", {"sku_id": sku_id, "idempotency_key": "x"}))["error"][
        "code"
    ] == "not_authenticated"
    assert (await anon.call("clock:sync", {}))["ok"]


async def test_node_client_with_a_bad_token_is_refused(
    aiohttp_client: Any, settings: Settings, node_clients: list[NodeClient]
) -> None:
    live: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    client = await NodeClient.start(_url(live), "not-a-token")
    node_clients.append(client)
    refused = await client.connected()
    assert refused["connect_error"]["message"] == "not_authenticated"
    assert refused["connect_error"]["data"]["code"] == "not_authenticated"


async def test_node_client_large_events_are_answered_and_huge_frames_close(
    aiohttp_client: Any, settings: Settings, node_clients: list[NodeClient]
) -> None:
    live: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    client = await NodeClient.start(_url(live))
    node_clients.append(client)
    assert "connected" in await client.connected()
    # Above the old 64 KB engine buffer, under its 1 MiB frame limit: an ack, not a hang-up.
    big = await client.call("chat:send", {"stream_id": 1, "text": "x" * 200_000})
    assert big["error"]["code"] == "payload_too_large"
    loose = await client.call("join", {"stream_id": "1"})
    assert loose["error"]["code"] == "invalid_input"
    assert (await client.call("clock:sync", {"client_time": 1}))["ok"]
    # Past the frame limit the connection closes, as the README says.
    assert client.process.stdin is not None
    client.process.stdin.write(
        json.dumps({"id": 99, "emit": "chat:send", "data": {"text": "x" * 1_200_000}}).encode()
        + b"\n"
    )
    await client.process.stdin.drain()
    closed = await client._until(lambda x: "disconnected" in x, "disconnect")
    assert closed["disconnected"] == "transport close"
