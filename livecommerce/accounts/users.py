"""Accounts: sign-up, log-in and bearer tokens (stored only as their SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.accounts.passwords import hash_password, verify_password
from livecommerce.db.tables import auth_tokens, users, utcnow
from livecommerce.errors import ErrorCode, LiveCommerceError

# Verifying against a real hash when the email is unknown keeps log-in time the same either way.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$KkJevxciM+T/wxF584m+EA$"
    "n7jT9r9qwNrpZNhrzDmjI9IfwscNjwBySm2I2OR0Tf8"
)


@dataclass(frozen=True)
class User:
    id: int
    email: str
    display_name: str
    created_at: datetime
    stripe_customer_id: str | None = None

    def public(self) -> dict[str, object]:
        return {"id": self.id, "display_name": self.display_name}

    def private(self) -> dict[str, object]:
        return {
            "id": self.id,
            "email": self.email,
            "display_name": self.display_name,
            "created_at": self.created_at.isoformat(),
        }


def _user(row: sa.Row[*tuple[Any, ...]]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        email=m["email"],
        display_name=m["display_name"],
        created_at=m["created_at"],
        stripe_customer_id=m["stripe_customer_id"],
    )


_USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.display_name,
    users.c.created_at,
    users.c.stripe_customer_id,
)


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def sign_up(engine: AsyncEngine, email: str, password: str, display_name: str) -> User:
    """Create an account; a taken email (case-insensitive) is a 409 ``email_taken``."""
    password_hash = await hash_password(password)
    email = normalise_email(email)
    try:
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    users.insert()
                    .values(
                        email=email,
                        display_name=display_name,
                        password_hash=password_hash,
                        created_at=utcnow(),
                    )
                    .returning(*_USER_COLUMNS)
                )
            ).one()
    except IntegrityError:
        raise LiveCommerceError(
            ErrorCode.EMAIL_TAKEN, "an account with that email exists"
        ) from None
    return _user(row)


async def log_in(engine: AsyncEngine, email: str, password: str) -> User:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(*_USER_COLUMNS, users.c.password_hash).where(
                    users.c.email == normalise_email(email)
                )
            )
        ).one_or_none()
    stored = row._mapping["password_hash"] if row is not None else _DUMMY_HASH
    if not await verify_password(stored, password) or row is None:
        raise LiveCommerceError(ErrorCode.BAD_CREDENTIALS, "wrong email or password")
    return _user(row)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(engine: AsyncEngine, user_id: int, ttl_s: int) -> str:
    """A new opaque bearer token for ``user_id``; only its digest is stored."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(
            auth_tokens.insert().values(
                token_hash=_digest(token),
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl_s),
            )
        )
    return token


async def revoke_token(engine: AsyncEngine, token: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(auth_tokens.delete().where(auth_tokens.c.token_hash == _digest(token)))


async def user_for_token(engine: AsyncEngine, token: str) -> User | None:
    """The user a live token belongs to, or ``None`` (unknown or expired)."""
    if not token or len(token) > 200:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(*_USER_COLUMNS)
                .join(auth_tokens, auth_tokens.c.user_id == users.c.id)
                .where(auth_tokens.c.token_hash == _digest(token))
                .where(auth_tokens.c.expires_at > utcnow())
            )
        ).one_or_none()
    return _user(row) if row is not None else None


class TokenCache:
    """Who a token belongs to, remembered for ``ttl_s`` so a burst of buys costs no SQL read.

    A token revoked on this process is forgotten at once; on another process it keeps working
    for at most ``ttl_s`` (the price of not asking SQL on every request).
    """

    def __init__(self, engine: AsyncEngine, ttl_s: float = 15.0, size: int = 100_000) -> None:
        self._engine = engine
        self._ttl = ttl_s
        self._size = size
        self._entries: OrderedDict[str, tuple[float, User | None]] = OrderedDict()

    async def user(self, token: str) -> User | None:
        if not token or len(token) > 200:
            return None
        now = time.monotonic()
        entry = self._entries.get(token)
        if entry is not None and entry[0] > now:
            return entry[1]
        user = await user_for_token(self._engine, token)
        # Unknown tokens are remembered briefly too, so garbage cannot hammer SQL.
        self._entries[token] = (now + (self._ttl if user else 1.0), user)
        self._entries.move_to_end(token)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return user

    def forget(self, token: str) -> None:
        self._entries.pop(token, None)


async def get_user(conn: AsyncConnection, user_id: int) -> User | None:
    row = (await conn.execute(sa.select(*_USER_COLUMNS).where(users.c.id == user_id))).one_or_none()
    return _user(row) if row is not None else None


async def find_user_by_email(conn: AsyncConnection, email: str) -> User | None:
    row = (
        await conn.execute(sa.select(*_USER_COLUMNS).where(users.c.email == normalise_email(email)))
    ).one_or_none()
    return _user(row) if row is not None else None
