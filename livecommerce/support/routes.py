"""HTTP routes of customer service: an order's conversation, problem reports, case endings and
the seller's inbox."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from livecommerce.accounts.routes import current_user
from livecommerce.platform.messagetext import MAX_MESSAGE
from livecommerce.platform.openapi import Handler, Operation
from livecommerce.platform.payload import Payload, path_id, query, read_json
from livecommerce.support.cases import CaseState, Problem
from livecommerce.support.conversations import CustomerService

SUPPORT = web.AppKey("support", CustomerService)
ORDER = r"/api/orders/{id:\d+}"
CASE = r"/api/support/cases/{id:\d+}"
# The body may carry some surrounding whitespace; the text is checked once trimmed.
_TEXT = Field(
    min_length=1,
    max_length=MAX_MESSAGE * 4,
    description=f"1 to {MAX_MESSAGE} characters once trimmed; the stream's blocked words refused",
)


class NewMessage(Payload):
    """A message in the order's conversation, from its buyer or the seller's team."""

    text: str = _TEXT


class ProblemReport(Payload):
    """The buyer reports a problem with a paid order: it opens a case the seller must answer."""

    problem: Problem = Field(description="not_received, damaged or wrong_item")
    text: str = _TEXT


class InboxQuery(Payload):
    limit: int = Field(default=100, ge=1, le=200)


async def get_conversation(request: web.Request) -> web.Response:
    user = await current_user(request)
    order_id = path_id(request, what="order")
    return web.json_response(await request.app[SUPPORT].conversation(order_id, user))


async def post_message(request: web.Request) -> web.Response:
    user = await current_user(request)
    order_id = path_id(request, what="order")
    body = await read_json(request, NewMessage)
    message, case = await request.app[SUPPORT].post(order_id, user, body.text)
    service = request.app[SUPPORT]
    return web.json_response(
        {
            "message": message.to_dict(user.display_name),
            "case": case.to_dict(service.answer_within) if case else None,
        },
        status=201,
    )


async def post_case(request: web.Request) -> web.Response:
    user = await current_user(request)
    order_id = path_id(request, what="order")
    body = await read_json(request, ProblemReport)
    service = request.app[SUPPORT]
    case, message = await service.report(order_id, user, body.problem, body.text)
    return web.json_response(
        {
            "case": case.to_dict(service.answer_within),
            "message": message.to_dict(user.display_name),
        },
        status=201,
    )


def _ending(target: CaseState) -> Handler:
    async def end(request: web.Request) -> web.Response:
        user = await current_user(request)
        case_id = path_id(request, what="case")
        service = request.app[SUPPORT]
        case = await service.end(case_id, user, target)
        return web.json_response({"case": case.to_dict(service.answer_within)})

    return end


async def get_inbox(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = query(request, InboxQuery)
    return web.json_response(await request.app[SUPPORT].inbox(user, q.limit))


OPERATIONS = (
    Operation(
        "GET",
        f"{ORDER}/messages",
        get_conversation,
        "An order's conversation: its cases and messages (the buyer and the seller's team only)",
        "support",
        auth=True,
    ),
    Operation(
        "POST",
        f"{ORDER}/messages",
        post_message,
        "Write in an order's conversation; the other side is emailed; the seller's message "
        "answers an open case, the buyer's reopens an answered one",
        "support",
        body=NewMessage,
        auth=True,
        status=201,
    ),
    Operation(
        "POST",
        f"{ORDER}/cases",
        post_case,
        "Report a problem with a paid order (not_received, damaged, wrong_item): opens a case "
        "the seller must answer; the seller is emailed",
        "support",
        body=ProblemReport,
        auth=True,
        status=201,
    ),
    Operation(
        "POST",
        f"{CASE}/resolve",
        _ending(CaseState.RESOLVED),
        "Mark an answered case resolved (its buyer or the seller's team)",
        "support",
        auth=True,
    ),
    Operation(
        "POST",
        f"{CASE}/close",
        _ending(CaseState.CLOSED),
        "Close a case: the buyer (open or answered case) or the seller's team (answered case)",
        "support",
        auth=True,
    ),
    Operation(
        "GET",
        "/api/support/inbox",
        get_inbox,
        "The seller's inbox: cases first (late, then unanswered), then conversations",
        "support",
        query=InboxQuery,
        auth=True,
    ),
)
