"""A crowd of buyers with bearer tokens, written straight to SQL (sign-up hashes are slow).

Shared by the benchmarks and the multi-process tests, so both rush with the same crowd.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from livecommerce.platform.db.engine import create_engine
from livecommerce.platform.db.tables import auth_tokens, users, utcnow


async def make_buyers(database_url: str, count: int, chunk: int = 2000) -> list[str]:
    """Create ``count`` accounts that cannot log in with a password; return their tokens."""
    tokens = [secrets.token_urlsafe(24) for _ in range(count)]
    now = utcnow()
    tag = uuid.uuid4().hex[:6]
    engine = create_engine(database_url)
    try:
        for start in range(0, count, chunk):
            part = tokens[start : start + chunk]
            async with engine.begin() as conn:
                rows = [
                    {
                        "email": f"crowd-{tag}-{start + i}@example.com",
                        "display_name": f"buyer {start + i}",
                        "password_hash": "!",
                        "created_at": now,
                    }
                    for i in range(len(part))
                ]
                ids = (
                    (await conn.execute(users.insert().returning(users.c.id), rows)).scalars().all()
                )
                await conn.execute(
                    auth_tokens.insert(),
                    [
                        {
                            "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                            "user_id": user_id,
                            "created_at": now,
                            "expires_at": now + timedelta(hours=6),
                        }
                        for token, user_id in zip(part, ids, strict=True)
                    ],
                )
    finally:
        await engine.dispose()
    return tokens
