"""HTTP routes for the stream team: invite moderators, accept or decline, revoke, list."""

from __future__ import annotations

import html

from aiohttp import web
from pydantic import EmailStr, Field, model_validator

from livecommerce.accounts.routes import current_user
from livecommerce.errors import NotFound
from livecommerce.live.invitations import (
    NewInvitation,
    accept,
    decline,
    invitation_for,
    invite,
    pending_for_stream,
    pending_for_user,
    revoke,
)
from livecommerce.live.rooms.rooms import ROOMS
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.mail import MAILER, Email
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import MAX_ID, Payload, path_id, read_json
from livecommerce.platform.resources import SETTINGS

_INVITATION = r"{invitation_id:[A-Za-z0-9_-]+}"


def _invitation_id(request: web.Request) -> str:
    raw = request.match_info["invitation_id"]
    if len(raw) > 64:
        raise NotFound("invitation")
    return raw


class NewModerator(Payload):
    user_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    email: EmailStr | None = Field(default=None, max_length=254)

    @model_validator(mode="after")
    def one_of(self) -> NewModerator:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give exactly one of user_id or email")
        return self


def invitation_email(invitation: NewInvitation, base_url: str) -> Email:
    """The invitation as an email: who invites, to which show, and the link that accepts it."""
    link = f"{base_url.rstrip('/')}/invitations/{invitation.id}"
    who, show = invitation.creator_name, invitation.stream_title
    text = (
        f"{who} invites you to moderate their live show \u201c{show}\u201d on livecommerce: "
        "pin products, run flash sales and keep the chat friendly.\n\n"
        f"Accept the invitation: {link}\n\n"
        f"Sign in, or sign up, with this email address ({invitation.email}) to accept it. "
        "If you did not expect this, ignore this email.\n"
    )
    page = (
        f"<p>{html.escape(who)} invites you to moderate their live show "
        f"<b>{html.escape(show)}</b> on livecommerce.</p>"
        f'<p><a href="{html.escape(link)}">Accept the invitation</a></p>'
        f"<p>Sign in, or sign up, with this email address ({html.escape(invitation.email)}) "
        "to accept it. If you did not expect this, ignore this email.</p>"
    )
    subject = f"{who} invites you to moderate \u201c{show}\u201d"
    if len(subject) > 200:
        subject = "You are invited to moderate a live show"
    return Email(invitation.email, subject, text, html=page)


async def post_moderator(request: web.Request) -> web.Response:
    """Invite a moderator: 202 ``{"invited": true}`` whether or not the email has an account.

    A new invitation is emailed to the address (or the invited account's) with its accept link;
    inviting again while it is pending sends nothing.
    """
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    body = await read_json(request, NewModerator)
    made = await invite(
        request.app[ENGINE], stream_id, user.id, user_id=body.user_id, email=body.email
    )
    if made is not None:
        # From settings, never the request's Host header (which would let a link point anywhere).
        settings = request.app[SETTINGS]
        base = settings.public_url or f"http://127.0.0.1:{settings.port}"
        request.app[MAILER].send_soon(invitation_email(made, base))
    return web.json_response({"invited": True}, status=202)


async def get_stream_invitations(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        pending = await pending_for_stream(conn, stream_id, user.id)
    return web.json_response({"invitations": [i.for_creator() for i in pending]})


async def delete_stream_invitation(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    user = await current_user(request)
    await revoke(request.app[ENGINE], stream_id, _invitation_id(request), user.id)
    return web.json_response({"ok": True})


async def get_my_invitations(request: web.Request) -> web.Response:
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        pending = await pending_for_user(conn, user)
    return web.json_response({"invitations": pending})


async def get_invitation(request: web.Request) -> web.Response:
    user = await current_user(request)
    async with request.app[ENGINE].connect() as conn:
        found = await invitation_for(conn, _invitation_id(request), user)
    return web.json_response({"invitation": found})


async def post_accept(request: web.Request) -> web.Response:
    user = await current_user(request)
    stream = await accept(request.app[ENGINE], _invitation_id(request), user)
    on_air = await request.app[ROOMS].state.on_air(stream.id)
    return web.json_response({"stream": stream.to_dict(on_air=on_air), "role": "moderator"})


async def post_decline(request: web.Request) -> web.Response:
    user = await current_user(request)
    await decline(request.app[ENGINE], _invitation_id(request), user)
    return web.json_response({"ok": True})


_ID = r"{id:\d+}"
OPERATIONS = (
    Operation(
        "POST",
        f"/api/streams/{_ID}/moderators",
        post_moderator,
        "Invite a moderator by email or user id (creator only); they accept to join",
        "streams",
        body=NewModerator,
        auth=True,
        status=202,
        errors=(409,),
    ),
    Operation(
        "GET",
        f"/api/streams/{_ID}/invitations",
        get_stream_invitations,
        "Pending moderator invitations (creator only)",
        "streams",
        auth=True,
    ),
    Operation(
        "DELETE",
        f"/api/streams/{_ID}/invitations/{_INVITATION}",
        delete_stream_invitation,
        "Revoke a pending invitation (creator only)",
        "streams",
        auth=True,
    ),
    Operation(
        "GET",
        "/api/invitations",
        get_my_invitations,
        "Invitations waiting for you",
        "streams",
        auth=True,
    ),
    Operation(
        "GET",
        f"/api/invitations/{_INVITATION}",
        get_invitation,
        "One invitation waiting for you (the accept page); someone else's is a 404",
        "streams",
        auth=True,
    ),
    Operation(
        "POST",
        f"/api/invitations/{_INVITATION}/accept",
        post_accept,
        "Accept an invitation: you become the stream's moderator",
        "streams",
        auth=True,
    ),
    Operation(
        "POST",
        f"/api/invitations/{_INVITATION}/decline",
        post_decline,
        "Decline an invitation",
        "streams",
        auth=True,
    ),
)
