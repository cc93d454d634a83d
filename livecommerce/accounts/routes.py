"""HTTP routes for accounts and sessions, and who is calling (bearer token or cookie)."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import EmailStr, Field
from redis.exceptions import RedisError

from livecommerce.accounts.attemptlimits import ATTEMPTS, Limit
from livecommerce.accounts.users import (
    TOKENS,
    User,
    change_password,
    issue_token,
    log_in,
    normalise_email,
    revoke_token,
    sign_up,
)
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.accounts import TokensRevoked
from livecommerce.events.bus import EVENTS
from livecommerce.platform.clientaddress import client_address
from livecommerce.platform.db.engine import ENGINE
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import Payload, read_json
from livecommerce.platform.resources import SETTINGS

log = logging.getLogger(__name__)

COOKIE = "lc_session"
_USER = web.RequestKey("user", object)


def request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.cookies.get(COOKIE)


async def optional_user(request: web.Request) -> User | None:
    """The caller, if a valid token came with the request (looked up once per request)."""
    if _USER in request:
        cached = request[_USER]
        return cached if isinstance(cached, User) else None
    token = request_token(request)
    user = await request.app[TOKENS].user(token) if token else None
    request[_USER] = user
    return user


def known_user(request: web.Request) -> User | None:
    """The caller if this process already knows their token (no SQL, no await), else ``None``
    (``optional_user`` or ``current_user`` then decide)."""
    if _USER in request:
        cached = request[_USER]
        return cached if isinstance(cached, User) else None
    token = request_token(request)
    user = request.app[TOKENS].known(token) if token else None
    if user is not None:
        request[_USER] = user
    return user


async def current_user(request: web.Request) -> User:
    user = await optional_user(request)
    if user is None:
        raise LiveCommerceError(ErrorCode.NOT_AUTHENTICATED, "log in first")
    return user


class SignUp(Payload):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=8, max_length=200)
    display_name: str = Field(min_length=1, max_length=80)


class LogIn(Payload):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=200)


class PasswordChange(Payload):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


async def _announce(app: web.Application, event: TokensRevoked) -> None:
    """Tell every process (their token caches and sockets). The tokens are already gone from
    SQL: if Redis is down, other processes learn it when their cache entries lapse (15 s) and
    their sockets at the next token sweep."""
    try:
        await app[EVENTS].publish(event)
    except RedisError as exc:
        log.warning("token revocation not announced to other processes: %s", exc)


async def _session_response(request: web.Request, user: User, status: int) -> web.Response:
    settings = request.app[SETTINGS]
    token = await issue_token(request.app[ENGINE], user.id, settings.token_ttl_s)
    response = web.json_response({"user": user.private(), "token": token}, status=status)
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.token_ttl_s,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="Lax",
        path="/",
    )
    return response


async def create_account(request: web.Request) -> web.Response:
    """Sign up. Every valid attempt counts against the address (each one costs an argon2 hash),
    and a taken email stays a 409: see SECURITY.md for why."""
    body = await read_json(request, SignUp)
    settings = request.app[SETTINGS]
    window = settings.auth_limit_window_s
    per_address = Limit("signup:address", settings.signups_per_address, window)
    await request.app[ATTEMPTS].attempt((per_address, client_address(request)))
    user = await sign_up(request.app[ENGINE], body.email, body.password, body.display_name)
    return await _session_response(request, user, 201)


async def create_session(request: web.Request) -> web.Response:
    """Log in. Failures are limited per account (known or not, so the limit tells nothing about
    who has one) and per address; during a lockout even the right password is refused."""
    body = await read_json(request, LogIn)
    settings = request.app[SETTINGS]
    window = settings.auth_limit_window_s
    limiter = request.app[ATTEMPTS]
    counted = await limiter.attempt(
        (
            Limit("login:account", settings.login_failures_per_account, window),
            normalise_email(body.email),
        ),
        (
            Limit("login:address", settings.login_failures_per_address, window),
            client_address(request),
        ),
    )
    user = await log_in(request.app[ENGINE], body.email, body.password)
    await limiter.give_back(counted)
    return await _session_response(request, user, 201)


async def delete_session(request: web.Request) -> web.Response:
    user = await current_user(request)
    token = request_token(request)
    if token:
        digest = await revoke_token(request.app[ENGINE], token)
        request.app[TOKENS].forget(token)
        await _announce(request.app, TokensRevoked(user.id, (digest,)))
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def post_password(request: web.Request) -> web.Response:
    """Every session of the account ends, this one too (its token may be the stolen one):
    the caller gets a fresh token and cookie in the answer."""
    user = await current_user(request)
    body = await read_json(request, PasswordChange)
    revoked = await change_password(
        request.app[ENGINE], user.id, body.current_password, body.new_password
    )
    await _announce(request.app, TokensRevoked(user.id, tuple(revoked)))
    return await _session_response(request, user, 200)


async def get_me(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"user": user.private()})


OPERATIONS = (
    Operation(
        "POST",
        "/api/accounts",
        create_account,
        "Sign up",
        "accounts",
        body=SignUp,
        status=201,
        errors=(409, 429),
    ),
    Operation(
        "POST",
        "/api/sessions",
        create_session,
        "Log in: a bearer token and a cookie",
        "accounts",
        body=LogIn,
        status=201,
        errors=(401, 429),
    ),
    Operation(
        "DELETE",
        "/api/sessions",
        delete_session,
        "Log out (revoke this token)",
        "accounts",
        auth=True,
    ),
    Operation("GET", "/api/me", get_me, "The logged-in account", "accounts", auth=True),
    Operation(
        "POST",
        "/api/me/password",
        post_password,
        "Change the password: every session ends; the answer carries a new token and cookie",
        "accounts",
        body=PasswordChange,
        auth=True,
        errors=(401,),
    ),
)
