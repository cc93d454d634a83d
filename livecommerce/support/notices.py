"""The emails of customer service: the seller hears the buyer (with a link to the inbox), the
buyer hears the seller (with a link to the order's conversation). Plain text only: nothing a
person wrote is ever put into HTML."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from livecommerce.accounts.users import User
from livecommerce.platform.mail import Email
from livecommerce.support.cases import Case, Problem

if TYPE_CHECKING:
    from livecommerce.support.conversations import Message

PROBLEMS = {
    Problem.NOT_RECEIVED: "not received",
    Problem.DAMAGED: "damaged",
    Problem.WRONG_ITEM: "wrong item",
}


def _one_line(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True)
class Notices:
    """``base_url``: where people open the site (PUBLIC_URL), links are made from it."""

    base_url: str

    def order_link(self, order_id: int) -> str:
        return f"{self.base_url}/orders/{order_id}/messages"

    def inbox_link(self) -> str:
        return f"{self.base_url}/inbox"

    def to_seller(
        self,
        to: str,
        order_id: int,
        author: User,
        message: Message,
        case: Case | None,
        opened: bool = False,
    ) -> Email:
        """``opened``: the message opened ``case`` (a problem report)."""
        name = _one_line(author.display_name, 40)
        if case is not None and opened:
            subject = f"Order #{order_id}: problem reported ({PROBLEMS[case.problem]})"
            intro = f"{name} reports a problem with order #{order_id}: {PROBLEMS[case.problem]}."
        elif case is not None:
            subject = f"Order #{order_id}: the buyer is waiting for your answer"
            intro = f"{name} wrote about order #{order_id} (case #{case.id}, waiting for you)."
        else:
            subject = f"Order #{order_id}: a message from the buyer"
            intro = f"{name} wrote about order #{order_id}."
        text = (
            f"{intro}\n\n{message.text}\n\n"
            f"Answer from your inbox: {self.inbox_link()}\n"
            f"The conversation: {self.order_link(order_id)}\n"
        )
        return Email(to, subject, text)

    def to_buyer(
        self, to: str, order_id: int, author: User, message: Message, case: Case | None
    ) -> Email:
        subject = f"Order #{order_id}: the seller answered"
        about = f" about your case #{case.id}" if case is not None else ""
        text = (
            f"The seller answered{about} on order #{order_id}:\n\n{message.text}\n\n"
            f"Read and reply: {self.order_link(order_id)}\n"
        )
        return Email(to, subject, text)
