"""Moderator invitations go out by email (a real SMTP server) with a link the invitee opens,
signs in or up with that address, and accepts."""

from __future__ import annotations

import re
import uuid
from typing import Any

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.platform.mail import MAILER
from tests.conftest import Account, sign_up
from tests.mailbox import Mailbox, body_text, smtp_settings


async def test_an_invitation_is_emailed_and_accepted_from_its_link(
    aiohttp_client: Any, settings: Settings, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server
    app = create_app(smtp_settings(settings, port, public_url="https://live.example.test"))
    client = await aiohttp_client(app)
    creator = await sign_up(client, "creator")
    stream = (await creator.call("POST", "/api/streams", {"title": "Sneaker <drop>"}, status=201))[
        "stream"
    ]
    address = f"helper-{uuid.uuid4().hex[:6]}@example.com"
    moderators = f"/api/streams/{stream['id']}/moderators"
    await creator.call("POST", moderators, {"email": address}, status=202)
    message = await mailbox.wait_for(address, "invites you to moderate")
    assert "Sneaker <drop>" in str(message["Subject"])
    text = body_text(message)
    links = re.findall(r"https://live\.example\.test/invitations/([A-Za-z0-9_-]+)", text)
    assert len(links) == 1, text
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "Sneaker &lt;drop&gt;" in str(html.get_content())
    # Inviting again while it is pending sends nothing more.
    await creator.call("POST", moderators, {"email": address.upper()}, status=202)
    await app[MAILER].drain()
    assert len(mailbox.to(address)) == 1

    # The link's page asks who is signed in: someone else sees nothing of it.
    stranger = await sign_up(client, "stranger")
    await stranger.call("GET", f"/api/invitations/{links[0]}", status=404)
    await stranger.call("POST", f"/api/invitations/{links[0]}/accept", status=404)
    # The invitee signs up with the invited address, and accepts.
    response = await client.post(
        "/api/accounts",
        json={"email": address, "password": "correct horse", "display_name": "Helper"},
    )
    body = await response.json()
    client.session.cookie_jar.clear()
    helper = Account(client, body["user"], body["token"])
    shown = await helper.call("GET", f"/api/invitations/{links[0]}", status=200)
    assert shown["invitation"]["stream"]["title"] == "Sneaker <drop>"
    accepted = await helper.call("POST", f"/api/invitations/{links[0]}/accept", status=200)
    assert accepted["role"] == "moderator"
    assert helper.id in [m["id"] for m in accepted["stream"]["moderators"]]
    await helper.call("GET", f"/api/invitations/{links[0]}", status=404)  # used up

    # By account id: the email goes to that account's address.
    known = await sign_up(client, "known")
    await creator.call("POST", moderators, {"user_id": known.id}, status=202)
    message = await mailbox.wait_for(known.email, "invites you to moderate")
    assert "/invitations/" in body_text(message)
    await client.close()
