"""Accounts: sign-up, log-in and bearer tokens (stored only as their SHA-256)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.accounts.passwords import hash_password, verify_password
from livecommerce.errors import ErrorCode, LiveCommerceError
from livecommerce.events.accounts import TokensRevoked
from livecommerce.platform.batchedlookups import BatchedLookups
from livecommerce.platform.db.tables import auth_tokens, users, utcnow
from livecommerce.platform.factcache import RENEW_AHEAD

log = logging.getLogger(__name__)

# A token in use is read again once RENEW_AHEAD (a share) of its time in the cache is left.
RENEW_BATCH = 500

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


def token_digest(token: str) -> str:
    """What is stored of a token, and how revocations name it."""
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(engine: AsyncEngine, user_id: int, ttl_s: int) -> str:
    """A new opaque bearer token for ``user_id``; only its digest is stored."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(
            auth_tokens.insert().values(
                token_hash=token_digest(token),
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl_s),
            )
        )
    return token


async def revoke_token(engine: AsyncEngine, token: str) -> str:
    """Delete one token; returns its digest (for the ``TokensRevoked`` event)."""
    digest = token_digest(token)
    async with engine.begin() as conn:
        await conn.execute(auth_tokens.delete().where(auth_tokens.c.token_hash == digest))
    return digest


async def change_password(engine: AsyncEngine, user_id: int, current: str, new: str) -> list[str]:
    """Check ``current``, store ``new`` and end every session of the user; returns the revoked
    tokens' digests. A wrong ``current`` is ``bad_credentials``."""
    async with engine.connect() as conn:
        stored = (
            await conn.execute(sa.select(users.c.password_hash).where(users.c.id == user_id))
        ).scalar_one_or_none()
    if stored is None or not await verify_password(stored, current):
        raise LiveCommerceError(ErrorCode.BAD_CREDENTIALS, "the current password is wrong")
    new_hash = await hash_password(new)
    async with engine.begin() as conn:
        await conn.execute(
            users.update().where(users.c.id == user_id).values(password_hash=new_hash)
        )
        revoked = await conn.execute(
            auth_tokens.delete()
            .where(auth_tokens.c.user_id == user_id)
            .returning(auth_tokens.c.token_hash)
        )
        return [str(digest) for digest in revoked.scalars()]


async def live_digests(engine: AsyncEngine, digests: list[str]) -> set[str]:
    """Which of these token digests are still valid (known and unexpired)."""
    alive: set[str] = set()
    for start in range(0, len(digests), 500):
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(auth_tokens.c.token_hash)
                .where(auth_tokens.c.token_hash.in_(digests[start : start + 500]))
                .where(auth_tokens.c.expires_at > utcnow())
            )
            alive.update(str(digest) for digest in rows.scalars())
    return alive


async def user_for_token(engine: AsyncEngine, token: str) -> User | None:
    """The user a live token belongs to, or ``None`` (unknown or expired)."""
    user, _left_s = await _user_and_lifetime(engine, token)
    return user


async def _user_and_lifetime(engine: AsyncEngine, token: str) -> tuple[User | None, float]:
    """The token's user and the seconds it has left (0 for no user)."""
    if not token or len(token) > 200:
        return None, 0.0
    now = utcnow()
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(*_USER_COLUMNS, auth_tokens.c.expires_at)
                .join(auth_tokens, auth_tokens.c.user_id == users.c.id)
                .where(auth_tokens.c.token_hash == token_digest(token))
                .where(auth_tokens.c.expires_at > now)
            )
        ).one_or_none()
    if row is None:
        return None, 0.0
    expires_at = row._mapping["expires_at"]
    if expires_at.tzinfo is None:  # SQLite hands datetimes back naive
        expires_at = expires_at.replace(tzinfo=now.tzinfo)
    return _user(row), (expires_at - now).total_seconds()


async def _users_and_lifetimes(
    engine: AsyncEngine, digests: list[str]
) -> dict[str, tuple[User | None, float]]:
    """Per token digest, its user and the seconds it has left; unknown or expired ones are
    left out. One query for them all."""
    now = utcnow()
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(*_USER_COLUMNS, auth_tokens.c.token_hash, auth_tokens.c.expires_at)
            .join(auth_tokens, auth_tokens.c.user_id == users.c.id)
            .where(auth_tokens.c.token_hash.in_(digests))
            .where(auth_tokens.c.expires_at > now)
        )
        found: dict[str, tuple[User | None, float]] = {}
        for row in rows:
            expires_at = row._mapping["expires_at"]
            if expires_at.tzinfo is None:  # SQLite hands datetimes back naive
                expires_at = expires_at.replace(tzinfo=now.tzinfo)
            found[row._mapping["token_hash"]] = (_user(row), (expires_at - now).total_seconds())
    return found


class TokenCache:
    """Who a token belongs to, remembered for ``ttl_s`` so a burst of buys costs no SQL read.

    Entries are keyed by the token's digest. A revoked token is forgotten at once on every
    process (``revoked`` hears ``TokensRevoked`` through the event bus); ``ttl_s`` only bounds
    how long a process that missed that event (cut off from Redis) could still believe it.
    Misses that arrive together (a crowd of first-time buyers) are looked up in one query, and
    an entry in use near its end is renewed in the background (the tokens renewed together in
    one query), so a crowd that keeps tapping never waits for SQL at its tokens' expiry.
    """

    def __init__(self, engine: AsyncEngine, ttl_s: float = 15.0, size: int = 100_000) -> None:
        self._engine = engine
        self._ttl = ttl_s
        self._size = size
        self._entries: OrderedDict[str, tuple[float, User | None]] = OrderedDict()
        self._lookups: BatchedLookups[str, tuple[User | None, float]] = BatchedLookups(
            functools.partial(_users_and_lifetimes, engine), (None, 0.0)
        )
        # Bumped by every revocation: a lookup that overlapped one does not cache its answer.
        self._revocations = 0
        # The digests of the tokens seen on the short path (``known``), not hashed again.
        self._digests: dict[str, str] = {}
        self._renewals: set[str] = set()  # digests of live entries to read again
        self._renewer: asyncio.Task[None] | None = None
        self.renewed = 0  # entries renewed ahead of their end (for tests)
        # Told of each signed-in user whose token this process reads (first seen or renewed):
        # what a buy reads can be made ready before they tap (set at composition).
        self.arrived: Callable[[int], None] | None = None

    async def close(self) -> None:
        """Finish the lookups under way; safe to call twice."""
        await self._lookups.close()
        if self._renewer is not None:
            await asyncio.gather(self._renewer, return_exceptions=True)

    async def user(self, token: str) -> User | None:
        if not token or len(token) > 200:
            return None
        now = time.monotonic()
        digest = token_digest(token)
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > now:
            self._renew_if_due(digest, entry, now)
            return entry[1]
        revocations = self._revocations
        user, left_s = await self._lookups.lookup(digest)
        if revocations != self._revocations:
            # A token revoked meanwhile may have been read before it was: read it again.
            user, _left_s = await _user_and_lifetime(self._engine, token)
            return user
        # Unknown tokens are remembered briefly too, so garbage cannot hammer SQL; a known one
        # never past its own expiry.
        self._entries[digest] = (now + (min(self._ttl, left_s) if user else 1.0), user)
        self._entries.move_to_end(digest)
        if user is not None and self.arrived is not None:
            self.arrived(user.id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return user

    def known(self, token: str) -> User | None:
        """The token's user if this process holds a live entry for it (no SQL, no await), else
        ``None`` (unknown here: ``user`` decides)."""
        if not token or len(token) > 200:
            return None
        digest = self._digests.get(token)
        remember = digest is None
        if digest is None:
            digest = token_digest(token)
        entry = self._entries.get(digest)
        now = time.monotonic()
        if entry is None or entry[0] <= now:
            return None
        if remember and entry[1] is not None:  # only a live token's: garbage is not kept
            if len(self._digests) >= self._size:
                self._digests.clear()
            self._digests[token] = digest
        self._renew_if_due(digest, entry, now)
        return entry[1]

    def _renew_if_due(self, digest: str, entry: tuple[float, User | None], now: float) -> None:
        if entry[1] is None or entry[0] - now > self._ttl * RENEW_AHEAD:
            return
        if digest in self._renewals:
            return
        self._renewals.add(digest)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew(), name="token renewals"
            )

    async def _renew(self) -> None:
        """Read the tokens due for renewal again, a batch a query, and keep what SQL says: a
        token revoked or expired meanwhile is forgotten here."""
        while self._renewals:
            digests = list(self._renewals)[:RENEW_BATCH]
            now, revocations = time.monotonic(), self._revocations
            try:
                found = await _users_and_lifetimes(self._engine, digests)
            except Exception:
                log.warning("token renewal failed; the entries expire", exc_info=True)
                self._renewals.difference_update(digests)
                return
            self._renewals.difference_update(digests)
            if revocations != self._revocations:
                continue  # a revocation overlapped the read: let these entries run out
            for digest in digests:
                if digest not in self._entries:
                    continue  # forgotten meanwhile
                user, left_s = found.get(digest, (None, 0.0))
                if user is None:
                    del self._entries[digest]
                else:
                    self._entries[digest] = (now + min(self._ttl, left_s), user)
                    self.renewed += 1
                    if self.arrived is not None:
                        self.arrived(user.id)

    def forget(self, token: str) -> None:
        self._entries.pop(token_digest(token), None)

    async def still_valid(self, digests: list[str]) -> set[str]:
        """Which of these digests are live tokens, asked of SQL (not the cache)."""
        return await live_digests(self._engine, digests)

    async def revoked(self, event: TokensRevoked) -> None:
        self._revocations += 1
        for digest in event.token_hashes:
            self._entries.pop(digest, None)


async def get_user(conn: AsyncConnection, user_id: int) -> User | None:
    row = (await conn.execute(sa.select(*_USER_COLUMNS).where(users.c.id == user_id))).one_or_none()
    return _user(row) if row is not None else None


async def display_names(conn: AsyncConnection, user_ids: list[int]) -> dict[int, str]:
    """The display names of those of ``user_ids`` that exist."""
    if not user_ids:
        return {}
    rows = await conn.execute(
        sa.select(users.c.id, users.c.display_name).where(users.c.id.in_(user_ids))
    )
    return {row.id: row.display_name for row in rows}


async def find_user_by_email(conn: AsyncConnection, email: str) -> User | None:
    row = (
        await conn.execute(sa.select(*_USER_COLUMNS).where(users.c.email == normalise_email(email)))
    ).one_or_none()
    return _user(row) if row is not None else None


TOKENS = web.AppKey("tokens", TokenCache)
