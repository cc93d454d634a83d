"""An order's conversation, and the seller's inbox: who may read and write, what a message may
say, which case it belongs to, and who is told by email.

Who takes part: the order's buyer on one side; on the other the seller and, for an order bought
in a shopstream, that stream's team (its creator and moderators), who read and answer for the
seller. Nobody else sees a conversation. Buyer texts obey the live chat's rule
(``platform.messagetext``): 1 to 300 characters and none of the stream's blocked words; the
seller's side, like a room's team, is not filtered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.accounts.roles import Role, role_in_stream
from livecommerce.accounts.users import User, get_user
from livecommerce.errors import ErrorCode, Forbidden, LiveCommerceError
from livecommerce.orders.orders import SOLD, Order, get_order
from livecommerce.platform.db.tables import (
    orders,
    stream_moderators,
    streams,
    support_cases,
    support_messages,
    users,
    utcnow,
)
from livecommerce.platform.mail import Email, Mailer
from livecommerce.platform.messagetext import check_blocked, message_text
from livecommerce.support import cases
from livecommerce.support.cases import ACTIVE, Case, CaseState, Problem, Side
from livecommerce.support.notices import Notices

MAX_MESSAGES_PER_ORDER = 500  # a conversation is bounded; past this, write to the shop otherwise
QUIET = timedelta(minutes=10)  # a run of messages from one side mails the other side once

BlockedWords = Callable[[int], Awaitable[Sequence[str]]]
"""``stream_id`` -> that stream's blocked words (the live chat's list, cleaned). Given by the
composition root: support does not import the live rooms."""


@dataclass(frozen=True)
class Message:
    id: int
    order_id: int
    author_id: int
    side: Side
    case_id: int | None
    text: str
    created_at: datetime

    def to_dict(self, author_name: str = "") -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "author": {"id": self.author_id, "display_name": author_name},
            "side": self.side.value,
            "case_id": self.case_id,
            "text": self.text,
            "created_at": self.created_at.isoformat(),
        }


def _message(row: sa.Row[Any]) -> Message:
    m = row._mapping
    return Message(
        id=m["id"],
        order_id=m["order_id"],
        author_id=m["author_id"],
        side=Side(m["side"]),
        case_id=m["case_id"],
        text=m["text"],
        created_at=m["created_at"],
    )


async def side_in_order(conn: AsyncConnection, order: Order, user: User) -> Side:
    """The caller's side in the order's conversation, or a 403."""
    if user.id == order.seller_id:
        return Side.SELLER
    if user.id == order.buyer_id:
        return Side.BUYER
    if (
        order.stream_id is not None
        and await role_in_stream(conn, order.stream_id, user.id) is not Role.VIEWER
    ):
        return Side.SELLER
    raise Forbidden("only the buyer and the seller's team may see this conversation")


def _team_orders(user_id: int) -> sa.ColumnElement[bool]:
    """Orders whose seller side ``user_id`` is on: their own, or bought in a stream they run."""
    moderated = sa.select(stream_moderators.c.stream_id).where(
        stream_moderators.c.user_id == user_id
    )
    created = sa.select(streams.c.id).where(streams.c.creator_id == user_id)
    return sa.or_(
        orders.c.seller_id == user_id,
        orders.c.stream_id.in_(moderated),
        orders.c.stream_id.in_(created),
    )


class CustomerService:
    def __init__(
        self,
        engine: AsyncEngine,
        mailer: Mailer,
        blocked_words: BlockedWords,
        notices: Notices,
        answer_within: timedelta,
    ) -> None:
        self._engine = engine
        self._mailer = mailer
        self._blocked_words = blocked_words
        self.notices = notices
        self.answer_within = answer_within

    async def conversation(self, order_id: int, user: User) -> dict[str, Any]:
        """The order (as its conversation shows it), its cases and its messages, oldest first."""
        async with self._engine.connect() as conn:
            order = await get_order(conn, order_id)
            side = await side_in_order(conn, order, user)
            found = await cases.cases_of_order(conn, order_id)
            rows = await conn.execute(
                sa.select(support_messages)
                .where(support_messages.c.order_id == order_id)
                .order_by(support_messages.c.id)
            )
            messages = [_message(r) for r in rows]
            names = await self._names(conn, {m.author_id for m in messages})
        return {
            "order": _order_summary(order),
            "you_are": side.value,
            "cases": [c.to_dict(self.answer_within) for c in found],
            "messages": [m.to_dict(names.get(m.author_id, "")) for m in messages],
            "problems": [p.value for p in Problem],
        }

    async def post(self, order_id: int, user: User, text: str) -> tuple[Message, Case | None]:
        """Write in the order's conversation; the message joins the order's active case, if
        any, and moves it (the seller's answer: open -> answered; the buyer's reply: answered
        -> open). The other side is emailed, once per run of messages."""
        text = message_text(text)
        async with self._engine.begin() as conn:
            order = await self._locked_order(conn, order_id)
            side = await side_in_order(conn, order, user)
            await self._check_text(order, side, text)
            previous = await self._last_message(conn, order_id)
            case = await cases.active_case(conn, order_id)
            reopened = False
            if case is not None:
                if side is Side.SELLER:
                    case = await cases.answered(conn, case)
                else:
                    reopened = case.state is CaseState.ANSWERED
                    case = await cases.buyer_wrote(conn, case)
            message = await self._insert(conn, order, user, side, case, text)
        # The seller owes a new answer (reopened): always said; otherwise once per run.
        if (
            reopened
            or previous is None
            or previous.side is not side
            or message.created_at - previous.created_at > QUIET
        ):
            await self._tell_other_side(order, side, user, message, case)
        return message, case

    async def report(
        self, order_id: int, user: User, problem: Problem, text: str
    ) -> tuple[Case, Message]:
        """The buyer reports a problem: a new open case with its first message; the seller is
        emailed. Only the buyer, and only on a sold order (paid and on)."""
        text = message_text(text)
        async with self._engine.begin() as conn:
            order = await self._locked_order(conn, order_id)
            side = await side_in_order(conn, order, user)
            if side is not Side.BUYER:
                raise Forbidden("only the order's buyer may report a problem with it")
            if order.status not in SOLD:
                raise LiveCommerceError(
                    ErrorCode.INVALID_TRANSITION,
                    f"a problem can be reported on a paid order, not a {order.status.value} one",
                    status=order.status.value,
                )
            await self._check_text(order, side, text)
            case = await cases.open_case(conn, order_id, order.seller_id, problem)
            message = await self._insert(conn, order, user, side, case, text)
        await self._tell_other_side(order, side, user, message, case, opened=True)
        return case, message

    async def end(self, case_id: int, user: User, target: CaseState) -> Case:
        """Resolve or close a case (see ``cases.ENDINGS`` for who may, from which state)."""
        async with self._engine.begin() as conn:
            case = await cases.get_case(conn, case_id)
            order = await get_order(conn, case.order_id)
            side = await side_in_order(conn, order, user)
            return await cases.end_case(conn, case, side, target)

    async def inbox(self, user: User, limit: int = 100) -> dict[str, Any]:
        """The seller side's work: cases first (late, then open oldest first, then answered,
        then recently ended), then the conversations, newest first, each with whether the
        buyer spoke last (a reply is due)."""
        now = utcnow()
        async with self._engine.connect() as conn:
            case_rows = await conn.execute(
                sa.select(support_cases)
                .join(orders, orders.c.id == support_cases.c.order_id)
                .where(_team_orders(user.id))
                # the active cases first, however many ended cases changed since
                .order_by(
                    sa.case((support_cases.c.state.in_([s.value for s in ACTIVE]), 0), else_=1),
                    support_cases.c.updated_at.desc(),
                )
                .limit(limit)
            )
            found = [cases._case(r) for r in case_rows]
            last_ids = (
                sa.select(sa.func.max(support_messages.c.id).label("id"))
                .join(orders, orders.c.id == support_messages.c.order_id)
                .where(_team_orders(user.id))
                .group_by(support_messages.c.order_id)
                .subquery()
            )
            rows = await conn.execute(
                sa.select(support_messages)
                .where(support_messages.c.id.in_(sa.select(last_ids.c.id)))
                .order_by(support_messages.c.id.desc())
                .limit(limit)
            )
            last = [_message(r) for r in rows]
            names = await self._names(conn, {m.author_id for m in last})

        def rank(case: Case) -> tuple[int, float]:
            if case.late(self.answer_within, now):
                return (0, case.waiting_since.timestamp() if case.waiting_since else 0)
            if case.state is CaseState.OPEN:
                return (1, case.waiting_since.timestamp() if case.waiting_since else 0)
            if case.state is CaseState.ANSWERED:
                return (2, -case.opened_at.timestamp())
            return (3, -(case.ended_at or case.opened_at).timestamp())

        found.sort(key=rank)
        active = [c for c in found if c.state in ACTIVE]
        return {
            "cases": [c.to_dict(self.answer_within) for c in found],
            "unanswered": sum(1 for c in active if c.state is CaseState.OPEN),
            "late": sum(1 for c in active if c.late(self.answer_within, now)),
            "answer_within_s": int(self.answer_within.total_seconds()),
            "conversations": [
                {
                    "order_id": m.order_id,
                    "last_message": m.to_dict(names.get(m.author_id, "")),
                    "reply_due": m.side is Side.BUYER,
                }
                for m in last
            ],
        }

    # -- helpers ------------------------------------------------------------------------------

    async def _locked_order(self, conn: AsyncConnection, order_id: int) -> Order:
        # Lock the order row (PostgreSQL): two writers of one conversation take turns, so
        # two reports cannot both see "no active case" and the message cap holds.
        await conn.execute(sa.select(orders.c.id).where(orders.c.id == order_id).with_for_update())
        order = await get_order(conn, order_id)
        count = (
            await conn.execute(
                sa.select(sa.func.count()).where(support_messages.c.order_id == order_id)
            )
        ).scalar_one()
        if count >= MAX_MESSAGES_PER_ORDER:
            raise LiveCommerceError(
                ErrorCode.LIMIT_EXCEEDED,
                f"a conversation holds at most {MAX_MESSAGES_PER_ORDER} messages",
            )
        return order

    async def _check_text(self, order: Order, side: Side, text: str) -> None:
        if side is Side.BUYER and order.stream_id is not None:
            check_blocked(text, await self._blocked_words(order.stream_id))

    async def _last_message(self, conn: AsyncConnection, order_id: int) -> Message | None:
        row = (
            await conn.execute(
                sa.select(support_messages)
                .where(support_messages.c.order_id == order_id)
                .order_by(support_messages.c.id.desc())
                .limit(1)
            )
        ).first()
        return _message(row) if row else None

    async def _insert(
        self,
        conn: AsyncConnection,
        order: Order,
        user: User,
        side: Side,
        case: Case | None,
        text: str,
    ) -> Message:
        row = (
            await conn.execute(
                sa.insert(support_messages)
                .values(
                    order_id=order.id,
                    seller_id=order.seller_id,
                    author_id=user.id,
                    side=side.value,
                    case_id=case.id if case is not None else None,
                    text=text,
                    created_at=utcnow(),
                )
                .returning(*support_messages.c)
            )
        ).one()
        return _message(row)

    async def _names(self, conn: AsyncConnection, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = await conn.execute(
            sa.select(users.c.id, users.c.display_name).where(users.c.id.in_(sorted(ids)))
        )
        return {int(user_id): str(name) for user_id, name in rows}

    async def _tell_other_side(
        self,
        order: Order,
        side: Side,
        author: User,
        message: Message,
        case: Case | None,
        opened: bool = False,
    ) -> None:
        to_id = order.seller_id if side is Side.BUYER else order.buyer_id
        async with self._engine.connect() as conn:
            to = await get_user(conn, to_id)
        if to is None or to.id == author.id:
            return
        mail: Email = (
            self.notices.to_seller(to.email, order.id, author, message, case, opened)
            if side is Side.BUYER
            else self.notices.to_buyer(to.email, order.id, author, message, case)
        )
        self._mailer.send_soon(mail)


def _order_summary(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "status": order.status.value,
        "qty": order.qty,
        "sku_id": order.sku_id,
        "stream_id": order.stream_id,
        "amount": {"amount": order.amount_minor, "currency": order.currency},
        "created_at": order.created_at.isoformat(),
    }
