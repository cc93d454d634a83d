"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives, for tests."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from bench.processes import free_port
from livecommerce.config import Settings


class Mailbox:
    """What the SMTP server received, parsed; `wait_for` polls until a message matches."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]

    async def wait_for(
        self, address: str, subject_contains: str = "", timeout_s: float = 10.0
    ) -> EmailMessage:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            for message in self.to(address):
                if subject_contains in str(message["Subject"]):
                    return message
            if asyncio.get_running_loop().time() > deadline:
                subjects = [str(m["Subject"]) for m in self.messages]
                raise AssertionError(f"no mail to {address} about {subject_contains!r}: {subjects}")
            await asyncio.sleep(0.02)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the message has no text part"
    return str(part.get_content()).replace("\r\n", "\n")


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """An SMTP server on 127.0.0.1 (plain, no auth): (port, mailbox). Point SMTP_HOST=127.0.0.1,
    SMTP_PORT=port, SMTP_TLS=none at it."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


def smtp_env(port: int) -> dict[str, str]:
    """A server process's environment pointed at the `smtp_server` on ``port``."""
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TLS": "none"}


def smtp_settings(settings: Settings, port: int, **more: Any) -> Settings:
    """``settings`` pointed at the `smtp_server` on ``port`` (and changed by ``more``)."""
    return replace(settings, smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none", **more)
