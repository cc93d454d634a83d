"""Follow a creator, "remind me" on a show, and the one "is live" email each gets, against a
real SMTP server (aiosmtpd), also with two server processes hearing the same show go live."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from bench.processes import ServerProcess
from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.events.bus import EVENTS, EventBus
from livecommerce.events.streams import StreamOnAir
from livecommerce.platform.mail import MAILER
from livecommerce.platform.pipelined import PipelinedRedis
from tests.conftest import sign_up
from tests.mailbox import Mailbox, body_text, smtp_env, smtp_settings

PUBLIC = "https://shop.example.test"


@pytest.fixture
def server_env(smtp_server: tuple[int, Mailbox]) -> dict[str, str]:
    port, _mailbox = smtp_server
    return {**smtp_env(port), "PUBLIC_URL": PUBLIC}


async def _mail_client(aiohttp_client: Any, settings: Settings, port: int) -> TestClient[Any, Any]:
    app = create_app(smtp_settings(settings, port, public_url=PUBLIC))
    return await aiohttp_client(app)  # type: ignore[no-any-return]


async def test_follow_and_remind_api(client: TestClient[Any, Any]) -> None:
    creator = await sign_up(client, "creator")
    fan = await sign_up(client, "fan")
    stream = (await creator.call("POST", "/api/streams", {"title": "Drop"}, status=201))["stream"]
    assert (await fan.call("PUT", f"/api/creators/{creator.id}/follow", status=200))["following"]
    await fan.call("PUT", f"/api/creators/{creator.id}/follow", status=200)  # idempotent
    await fan.call("PUT", f"/api/streams/{stream['id']}/reminder", status=200)
    assert await fan.call("GET", "/api/following", status=200) == {
        "creators": [creator.id],
        "reminders": [stream["id"]],
    }
    await fan.call("DELETE", f"/api/creators/{creator.id}/follow", status=200)
    await fan.call("DELETE", f"/api/streams/{stream['id']}/reminder", status=200)
    assert await fan.call("GET", "/api/following", status=200) == {"creators": [], "reminders": []}
    self_follow = await creator.call("PUT", f"/api/creators/{creator.id}/follow", status=422)
    assert self_follow["error"]["code"] == "invalid_input"
    nobody = await fan.call("PUT", "/api/creators/999999/follow", status=404)
    assert nobody["error"]["code"] == "not_found"
    assert (await fan.call("PUT", "/api/streams/999999/reminder", status=404))["error"]
    assert (await client.put(f"/api/creators/{creator.id}/follow")).status == 401
    await creator.call("PATCH", f"/api/streams/{stream['id']}", {"status": "ended"}, status=200)
    late = await fan.call("PUT", f"/api/streams/{stream['id']}/reminder", status=409)
    assert late["error"]["code"] == "invalid_transition"


async def test_going_live_emails_followers_and_reminded_once(
    aiohttp_client: Any, settings: Settings, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server
    client = await _mail_client(aiohttp_client, settings, port)
    creator = await sign_up(client, "Maya")
    follower = await sign_up(client, "follower")
    reminded = await sign_up(client, "reminded")
    both = await sign_up(client, "both")
    bystander = await sign_up(client, "bystander")
    stream = (await creator.call("POST", "/api/streams", {"title": "Spring drop"}, status=201))[
        "stream"
    ]
    await follower.call("PUT", f"/api/creators/{creator.id}/follow", status=200)
    await reminded.call("PUT", f"/api/streams/{stream['id']}/reminder", status=200)
    await both.call("PUT", f"/api/creators/{creator.id}/follow", status=200)
    await both.call("PUT", f"/api/streams/{stream['id']}/reminder", status=200)
    await creator.call("PATCH", f"/api/streams/{stream['id']}", {"status": "live"}, status=200)
    # The relay says "on air" again and again; nobody hears twice.
    for _ in range(3):
        await client.app[EVENTS].publish(StreamOnAir(stream_id=stream["id"]))
    for account in (follower, reminded, both):
        message = await mailbox.wait_for(account.email, "Maya is live: Spring drop")
        assert f"{PUBLIC}/watch/{stream['id']}" in body_text(message)
    await client.app[MAILER].drain()
    await asyncio.sleep(0.2)
    for account in (follower, reminded, both):
        assert len(mailbox.to(account.email)) == 1
    assert mailbox.to(bystander.email) == [] and mailbox.to(creator.email) == []


async def _call(
    session: aiohttp.ClientSession, server: ServerProcess, method: str, path: str, **kw: Any
) -> Any:
    async with session.request(method, server.url + path, **kw) as response:
        body = await response.json()
        assert response.status < 300, body
        return body


async def test_two_processes_send_one_live_email_each(
    server_processes: list[ServerProcess], smtp_server: tuple[int, Mailbox], redis_url: str
) -> None:
    _port, mailbox = smtp_server
    a, b = server_processes
    people: dict[str, tuple[int, str, str]] = {}
    async with aiohttp.ClientSession() as session:
        for name in ("creator", "fan1", "fan2", "fan3"):
            email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
            body = await _call(
                session,
                a,
                "POST",
                "/api/accounts",
                json={"email": email, "password": "correct horse", "display_name": name},
            )
            people[name] = (body["user"]["id"], email, body["token"])
        session.cookie_jar.clear()

        def auth(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {people[name][2]}"}

        stream = (
            await _call(
                session, b, "POST", "/api/streams", json={"title": "Night"}, headers=auth("creator")
            )
        )["stream"]
        creator_id = people["creator"][0]
        await _call(session, a, "PUT", f"/api/creators/{creator_id}/follow", headers=auth("fan1"))
        await _call(session, b, "PUT", f"/api/creators/{creator_id}/follow", headers=auth("fan2"))
        await _call(
            session, a, "PUT", f"/api/streams/{stream['id']}/reminder", headers=auth("fan3")
        )
        # Both processes hear the show go on air, several times, while the creator also marks
        # it live by hand on one of them.
        redis = Redis.from_url(redis_url)
        hot = PipelinedRedis(redis_url)
        bus = EventBus(redis, a.env["REDIS_NAMESPACE"], hot)
        on_air = [bus.publish(StreamOnAir(stream_id=stream["id"])) for _ in range(3)]
        live = _call(
            session,
            b,
            "PATCH",
            f"/api/streams/{stream['id']}",
            json={"status": "live"},
            headers=auth("creator"),
        )
        await asyncio.gather(*on_air, live)
        await hot.close()
        await redis.aclose()
        for name in ("fan1", "fan2", "fan3"):
            await mailbox.wait_for(people[name][1], "creator is live: Night", timeout_s=15)
        await asyncio.sleep(2.0)  # time for any duplicate to arrive
        for name in ("fan1", "fan2", "fan3"):
            assert len(mailbox.to(people[name][1])) == 1, name
        assert mailbox.to(people["creator"][1]) == []
