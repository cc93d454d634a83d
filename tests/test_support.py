"""Customer service: order conversations, problem cases and their states, the blocked words and
length limits of the live chat, who may see what, and the emails both ways (a real SMTP server)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.platform.messagetext import MAX_MESSAGE
from tests.conftest import Account, accept_invitation, hoodie, sign_up
from tests.mailbox import Mailbox, body_text, smtp_settings
from tests.orderdesk import open_show
from tests.shopping import OK_CARD, buy, card


@pytest.fixture
async def shop(
    aiohttp_client: Any, settings: Settings, smtp_server: tuple[int, Mailbox]
) -> TestClient[Any, Any]:
    port, _mailbox = smtp_server
    app = create_app(
        smtp_settings(
            settings,
            port,
            public_url="https://shop.example.test",
            support_answer_s=1.0,  # a case unanswered for a second is late
        )
    )
    return await aiohttp_client(app)  # type: ignore[no-any-return]


class Stage:
    def __init__(
        self, seller: Account, moderator: Account, buyer: Account, stream: int, sku: int
    ) -> None:
        self.seller, self.moderator, self.buyer = seller, moderator, buyer
        self.stream, self.sku = stream, sku


async def _stage(client: TestClient[Any, Any], settings: Settings) -> Stage:
    seller = await sign_up(client, "seller")
    moderator = await sign_up(client, "moderator")
    buyer = await sign_up(client, "buyer")
    product = (
        await seller.call(
            "POST", "/api/products", hoodie(f"S-{uuid.uuid4().hex[:6]}", 20), status=201
        )
    )["product"]
    stream = (
        await seller.call(
            "POST", "/api/streams", {"title": "Drop", "lineup": [product["id"]]}, status=201
        )
    )["stream"]["id"]
    await seller.call(
        "POST", f"/api/streams/{stream}/moderators", {"user_id": moderator.id}, status=202
    )
    await accept_invitation(moderator)
    pm = await card(settings, OK_CARD)
    await buyer.call("POST", "/api/cards", {"payment_method_id": pm}, status=201)
    return Stage(seller, moderator, buyer, stream, product["variants"][0]["id"])


async def _paid_order(stage: Stage) -> int:
    status, body = await buy(stage.buyer, stage.sku, stream_id=stage.stream)
    assert status == 201 and body["order"]["status"] == "paid", body
    return int(body["order"]["id"])


async def test_a_damaged_item_case_from_report_to_resolved_with_emails_both_ways(
    shop: TestClient[Any, Any], settings: Settings, smtp_server: tuple[int, Mailbox]
) -> None:
    _port, mailbox = smtp_server
    stage = await _stage(shop, settings)
    order = await _paid_order(stage)
    buyer, seller, moderator = stage.buyer, stage.seller, stage.moderator

    opened = await buyer.call(
        "POST",
        f"/api/orders/{order}/cases",
        {"problem": "damaged", "text": "  The zip is torn.  "},
        status=201,
    )
    case = opened["case"]
    assert (case["problem"], case["state"], case["late"]) == ("damaged", "open", False)
    assert opened["message"]["text"] == "The zip is torn."
    assert opened["message"]["case_id"] == case["id"]
    mail = await mailbox.wait_for(seller.email, f"Order #{order}: problem reported (damaged)")
    text = body_text(mail)
    assert "The zip is torn." in text and "https://shop.example.test/inbox" in text

    # A second report while this one is active is refused: the buyer writes in it instead.
    again = await buyer.call(
        "POST", f"/api/orders/{order}/cases", {"problem": "wrong_item", "text": "x"}, status=409
    )
    assert again["error"]["code"] == "conflict"

    inbox = await seller.call("GET", "/api/support/inbox", status=200)
    assert [c["id"] for c in inbox["cases"]] == [case["id"]]
    assert inbox["unanswered"] == 1
    assert inbox["conversations"][0]["order_id"] == order
    assert inbox["conversations"][0]["reply_due"] is True

    # The stream's moderator answers for the seller: the case is answered, the buyer told.
    answer = await moderator.call(
        "POST", f"/api/orders/{order}/messages", {"text": "Sorry! A new one ships today."}, 201
    )
    assert answer["message"]["side"] == "seller"
    assert answer["case"]["state"] == "answered" and answer["case"]["answered_at"]
    mail = await mailbox.wait_for(buyer.email, f"Order #{order}: the seller answered")
    text = body_text(mail)
    assert "A new one ships today." in text
    assert f"https://shop.example.test/orders/{order}/messages" in text

    # The buyer's reply opens the case again; the seller hears it is their turn.
    reply = await buyer.call(
        "POST", f"/api/orders/{order}/messages", {"text": "Which carrier?"}, status=201
    )
    assert reply["case"]["state"] == "open"
    await mailbox.wait_for(seller.email, "waiting for your answer")
    await seller.call("POST", f"/api/orders/{order}/messages", {"text": "DHL."}, status=201)

    seen = await buyer.call("GET", f"/api/orders/{order}/messages", status=200)
    assert seen["you_are"] == "buyer" and seen["order"]["id"] == order
    assert [m["text"] for m in seen["messages"]] == [
        "The zip is torn.",
        "Sorry! A new one ships today.",
        "Which carrier?",
        "DHL.",
    ]
    assert [m["side"] for m in seen["messages"]] == ["buyer", "seller", "buyer", "seller"]
    assert seen["cases"][0]["state"] == "answered"

    resolved = await buyer.call("POST", f"/api/support/cases/{case['id']}/resolve", status=200)
    assert resolved["case"]["state"] == "resolved" and resolved["case"]["ended_at"]
    for verb in ("resolve", "close"):
        refused = await seller.call("POST", f"/api/support/cases/{case['id']}/{verb}", status=409)
        assert refused["error"]["code"] == "invalid_transition"
    # After the case, the conversation goes on without one; a new problem opens a new case.
    later = await buyer.call("POST", f"/api/orders/{order}/messages", {"text": "Thanks"}, 201)
    assert later["case"] is None and later["message"]["case_id"] is None
    await buyer.call(
        "POST", f"/api/orders/{order}/cases", {"problem": "wrong_item", "text": "Blue?"}, 201
    )


async def test_case_states_who_may_end_them_and_late_cases(
    shop: TestClient[Any, Any], settings: Settings
) -> None:
    stage = await _stage(shop, settings)
    buyer, seller = stage.buyer, stage.seller
    first, second, third = [await _paid_order(stage) for _ in range(3)]

    late = (
        await buyer.call(
            "POST", f"/api/orders/{first}/cases", {"problem": "not_received", "text": "?"}, 201
        )
    )["case"]
    # The seller may not close a case they never answered; only the buyer may withdraw it.
    refused = await seller.call("POST", f"/api/support/cases/{late['id']}/close", status=409)
    assert refused["error"]["code"] == "invalid_transition"
    refused = await seller.call("POST", f"/api/support/cases/{late['id']}/resolve", status=409)
    assert refused["error"]["code"] == "invalid_transition"
    # Only the buyer reports problems.
    refused = await seller.call(
        "POST", f"/api/orders/{second}/cases", {"problem": "damaged", "text": "x"}, status=403
    )
    assert refused["error"]["code"] == "forbidden"

    answered = (
        await buyer.call(
            "POST", f"/api/orders/{second}/cases", {"problem": "damaged", "text": "dented"}, 201
        )
    )["case"]
    await seller.call("POST", f"/api/orders/{second}/messages", {"text": "Refund?"}, 201)
    withdrawn = (
        await buyer.call(
            "POST", f"/api/orders/{third}/cases", {"problem": "wrong_item", "text": "red"}, 201
        )
    )["case"]
    closed = await buyer.call("POST", f"/api/support/cases/{withdrawn['id']}/close", status=200)
    assert closed["case"]["state"] == "closed"

    await asyncio.sleep(1.3)  # past the answer deadline (1 s here)
    inbox = await seller.call("GET", "/api/support/inbox", status=200)
    assert [c["id"] for c in inbox["cases"]] == [late["id"], answered["id"], withdrawn["id"]]
    assert [c["late"] for c in inbox["cases"]] == [True, False, False]
    assert (inbox["unanswered"], inbox["late"]) == (1, 1)
    assert inbox["cases"][0]["answer_due_at"] is not None
    # The seller closes the answered case; the late one stays until answered.
    ended = await seller.call("POST", f"/api/support/cases/{answered['id']}/close", status=200)
    assert ended["case"]["state"] == "closed"
    await seller.call("POST", f"/api/orders/{first}/messages", {"text": "On its way"}, 201)
    inbox = await seller.call("GET", "/api/support/inbox", status=200)
    assert inbox["late"] == 0 and inbox["cases"][0]["state"] == "answered"

    bad = await buyer.call(
        "POST", f"/api/orders/{first}/cases", {"problem": "lost_in_space", "text": "x"}, 422
    )
    assert bad["error"]["code"] == "invalid_input"

    # No card saved: the order waits for payment, and nothing was received to complain about.
    newcomer = await sign_up(shop, "newcomer")
    status, body = await buy(newcomer, stage.sku, stream_id=stage.stream)
    assert status == 201 and body["order"]["status"] == "reserved", body
    unpaid = body["order"]["id"]
    refused = await newcomer.call(
        "POST", f"/api/orders/{unpaid}/cases", {"problem": "not_received", "text": "?"}, 409
    )
    assert refused["error"]["code"] == "invalid_transition"
    # A question before paying is fine.
    await newcomer.call("POST", f"/api/orders/{unpaid}/messages", {"text": "Ships fast?"}, 201)


async def test_blocked_words_and_length_limits_are_the_live_chats(
    shop: TestClient[Any, Any], settings: Settings
) -> None:
    stage = await _stage(shop, settings)
    order = await _paid_order(stage)
    buyer, moderator = stage.buyer, stage.moderator
    await moderator.call(
        "PUT", f"/api/streams/{stage.stream}/chat/blocklist", {"words": ["Scam"]}, status=200
    )
    path = f"/api/orders/{order}/messages"
    refused = await buyer.call("POST", path, {"text": "what a SCAMMER"}, status=422)
    assert refused["error"] == {
        "code": "invalid_input",
        "message": "that message is not allowed here",
    }
    refused = await buyer.call(
        "POST", f"/api/orders/{order}/cases", {"problem": "damaged", "text": "scam"}, 422
    )
    assert refused["error"]["code"] == "invalid_input"
    for text in ("", "   ", "x" * (MAX_MESSAGE + 1), "x" * 5000):
        refused = await buyer.call("POST", path, {"text": text}, status=422)
        assert refused["error"]["code"] == "invalid_input"
    ok = await buyer.call("POST", path, {"text": "y" * MAX_MESSAGE}, status=201)
    assert len(ok["message"]["text"]) == MAX_MESSAGE
    # The seller's side is not filtered, as a room's team is not.
    await moderator.call("POST", path, {"text": "that was no scam"}, status=201)

    for body in ({}, {"text": 5}, {"text": "x", "extra": 1}):
        response = await shop.post(path, json=body, headers=buyer.headers)
        assert response.status == 422, await response.text()
    response = await shop.post(path, data="text=hi", headers=buyer.headers)
    assert response.status == 415
    response = await shop.post(
        path, data=b"{" * 5000, headers={**buyer.headers, "Content-Type": "application/json"}
    )
    assert response.status == 400


async def test_only_the_buyer_and_the_sellers_team_see_a_conversation(
    shop: TestClient[Any, Any], settings: Settings
) -> None:
    stage = await _stage(shop, settings)
    order = await _paid_order(stage)
    stranger = await sign_up(shop, "stranger")
    case = (
        await stage.buyer.call(
            "POST", f"/api/orders/{order}/cases", {"problem": "damaged", "text": "torn"}, 201
        )
    )["case"]
    path = f"/api/orders/{order}/messages"
    for method, url, body in (
        ("GET", path, None),
        ("POST", path, {"text": "hello"}),
        ("POST", f"/api/support/cases/{case['id']}/close", None),
    ):
        refused = await stranger.call(method, url, body, status=403)
        assert refused["error"]["code"] == "forbidden"
    assert (await stranger.call("GET", "/api/support/inbox", status=200))["cases"] == []
    assert (await stage.buyer.call("GET", "/api/support/inbox", status=200))["cases"] == []
    team = await stage.moderator.call("GET", "/api/support/inbox", status=200)
    assert [c["id"] for c in team["cases"]] == [case["id"]]
    assert (await stage.moderator.call("GET", path, status=200))["you_are"] == "seller"

    for url in (
        "/api/orders/999999/messages",
        "/api/orders/0/messages",
        "/api/orders/99999999999/messages",
        "/api/support/cases/999999/resolve",
    ):
        method = "GET" if url.endswith("messages") else "POST"
        missing = await stage.buyer.call(method, url, status=404)
        assert missing["error"]["code"] == "not_found"
    response = await shop.get(path)
    assert response.status == 401
    response = await shop.get("/api/support/inbox?limit=5000", headers=stage.seller.headers)
    assert response.status == 422


async def test_a_problem_may_be_reported_on_a_packed_or_return_approved_order(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    show = await open_show(client, settings)
    packed = await show.paid()
    await show.seller.call("POST", "/api/parcels", {"order_ids": [packed["id"]]}, status=201)
    assert (await show.order(packed["id"]))["status"] == "packed"
    body = await show.buyer.call(
        "POST",
        f"/api/orders/{packed['id']}/cases",
        {"problem": "wrong_item", "text": "It says blue on the box"},
        status=201,
    )
    assert body["case"]["state"] == "open"

    approved = await show.delivered()
    asked = await show.buyer.call(
        "POST", f"/api/orders/{approved['id']}/returns", {"qty": 1, "reason": "too small"}, 201
    )
    await show.seller.call("POST", f"/api/returns/{asked['return']['id']}/approve", {}, 200)
    assert (await show.order(approved["id"]))["status"] == "return_approved"
    await show.buyer.call(
        "POST",
        f"/api/orders/{approved['id']}/cases",
        {"problem": "damaged", "text": "The label you sent is unreadable"},
        status=201,
    )
