"""A case: a buyer's problem with an order that the seller must answer.

States: ``open`` (waiting for the seller) -> ``answered`` (the seller replied) -> ``resolved``
or ``closed``. A buyer's new message on an answered case opens it again (the seller owes another
answer). An open case waiting longer than the answer deadline is *late*. At most one case per
order is active (open or answered) at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.errors import ErrorCode, LiveCommerceError, NotFound
from livecommerce.platform.db.tables import support_cases, utcnow


class Problem(StrEnum):
    NOT_RECEIVED = "not_received"
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"


class CaseState(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE = frozenset({CaseState.OPEN, CaseState.ANSWERED})


class Side(StrEnum):
    """Who wrote or acts: the order's buyer, or the seller (the seller or their stream's team)."""

    BUYER = "buyer"
    SELLER = "seller"


# What each side may make of a case in each state; anything else is ``invalid_transition``.
# The seller cannot close a case they have not answered: an open case waits for an answer.
ENDINGS: dict[tuple[Side, CaseState], frozenset[CaseState]] = {
    (Side.BUYER, CaseState.OPEN): frozenset({CaseState.CLOSED}),
    (Side.BUYER, CaseState.ANSWERED): frozenset({CaseState.RESOLVED, CaseState.CLOSED}),
    (Side.SELLER, CaseState.ANSWERED): frozenset({CaseState.RESOLVED, CaseState.CLOSED}),
}


@dataclass(frozen=True)
class Case:
    id: int
    order_id: int
    seller_id: int
    problem: Problem
    state: CaseState
    opened_at: datetime
    waiting_since: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None

    def late(self, deadline: timedelta, now: datetime | None = None) -> bool:
        """Open and waiting for the seller's answer for longer than ``deadline``."""
        if self.state is not CaseState.OPEN or self.waiting_since is None:
            return False
        return (now or utcnow()) - self.waiting_since > deadline

    def to_dict(self, deadline: timedelta) -> dict[str, Any]:
        due = (
            self.waiting_since + deadline
            if self.state is CaseState.OPEN and self.waiting_since is not None
            else None
        )
        return {
            "id": self.id,
            "order_id": self.order_id,
            "problem": self.problem.value,
            "state": self.state.value,
            "opened_at": self.opened_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "answer_due_at": due.isoformat() if due else None,
            "late": self.late(deadline),
        }


def _case(row: sa.Row[Any]) -> Case:
    m = dict(row._mapping)
    return Case(
        id=m["id"],
        order_id=m["order_id"],
        seller_id=m["seller_id"],
        problem=Problem(m["problem"]),
        state=CaseState(m["state"]),
        opened_at=m["opened_at"],
        waiting_since=m["waiting_since"],
        answered_at=m["answered_at"],
        ended_at=m["ended_at"],
    )


async def get_case(conn: AsyncConnection, case_id: int) -> Case:
    row = (
        await conn.execute(sa.select(support_cases).where(support_cases.c.id == case_id))
    ).first()
    if row is None:
        raise NotFound("case")
    return _case(row)


async def cases_of_order(conn: AsyncConnection, order_id: int) -> list[Case]:
    rows = await conn.execute(
        sa.select(support_cases)
        .where(support_cases.c.order_id == order_id)
        .order_by(support_cases.c.id)
    )
    return [_case(r) for r in rows]


async def active_case(conn: AsyncConnection, order_id: int) -> Case | None:
    row = (
        await conn.execute(
            sa.select(support_cases).where(
                support_cases.c.order_id == order_id,
                support_cases.c.state.in_([s.value for s in ACTIVE]),
            )
        )
    ).first()
    return _case(row) if row else None


async def open_case(conn: AsyncConnection, order_id: int, seller_id: int, problem: Problem) -> Case:
    """A new open case; ``conflict`` if the order already has an active one."""
    if await active_case(conn, order_id) is not None:
        raise LiveCommerceError(
            ErrorCode.CONFLICT, "this order already has an open case: write in it instead"
        )
    now = utcnow()
    case_id = (
        await conn.execute(
            sa.insert(support_cases)
            .values(
                order_id=order_id,
                seller_id=seller_id,
                problem=problem.value,
                state=CaseState.OPEN.value,
                opened_at=now,
                waiting_since=now,
                updated_at=now,
            )
            .returning(support_cases.c.id)
        )
    ).scalar_one()
    return await get_case(conn, case_id)


async def _set(conn: AsyncConnection, case: Case, expect: CaseState, **values: Any) -> Case:
    """Move ``case`` from ``expect``; a concurrent move in between is a ``conflict``."""
    done = await conn.execute(
        sa.update(support_cases)
        .where(support_cases.c.id == case.id, support_cases.c.state == expect.value)
        .values(updated_at=utcnow(), **values)
    )
    if done.rowcount != 1:
        raise LiveCommerceError(ErrorCode.CONFLICT, "the case changed meanwhile: reload it")
    return await get_case(conn, case.id)


async def answered(conn: AsyncConnection, case: Case) -> Case:
    """The seller wrote in the case: an open case becomes answered (others stay as they are)."""
    if case.state is not CaseState.OPEN:
        return case
    now = utcnow()
    return await _set(
        conn,
        case,
        CaseState.OPEN,
        state=CaseState.ANSWERED.value,
        answered_at=now,
        waiting_since=None,
    )


async def buyer_wrote(conn: AsyncConnection, case: Case) -> Case:
    """The buyer wrote in the case: an answered case is open again and waits for the seller."""
    if case.state is not CaseState.ANSWERED:
        return case
    return await _set(
        conn, case, CaseState.ANSWERED, state=CaseState.OPEN.value, waiting_since=utcnow()
    )


async def end_case(conn: AsyncConnection, case: Case, side: Side, target: CaseState) -> Case:
    """``resolved`` or ``closed``, if ``side`` may do that from the case's state (see ENDINGS)."""
    if target not in ENDINGS.get((side, case.state), frozenset()):
        raise LiveCommerceError(
            ErrorCode.INVALID_TRANSITION,
            f"the {side.value} cannot make an {case.state.value} case {target.value}",
            state=case.state.value,
        )
    return await _set(
        conn, case, case.state, state=target.value, ended_at=utcnow(), waiting_since=None
    )
