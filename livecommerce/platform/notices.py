"""Notices sent at most once: each (kind, subject, user) is claimed by one unique SQL row
before its email goes out, so several processes (or a repeated event) never send it twice."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.platform.db.tables import sent_notices, utcnow


async def claim_notice(engine: AsyncEngine, kind: str, subject_id: int, user_id: int) -> bool:
    """True if this call is the one to send it; False if it was claimed already."""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sent_notices.insert().values(
                    kind=kind, subject_id=subject_id, user_id=user_id, sent_at=utcnow()
                )
            )
    except IntegrityError:
        return False
    return True
