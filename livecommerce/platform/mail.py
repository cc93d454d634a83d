"""Email out: one `Mailer` for every domain that tells a person something (receipts, shipping,
returns, invitations, "the show is live").

With SMTP settings the mail goes through that server (aiosmtplib, STARTTLS or implicit TLS as set);
without them each message is written as an ``.eml`` file under ``DATA_DIR/outbox``, so the default
install still shows what it would have sent. Domains call `Mailer.send_soon`: a message is queued
and sent in the background (a slow or broken SMTP server never slows a checkout); a failure is
retried a few times, then logged with the recipient and subject, never raised into the caller.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
import secrets
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from aiohttp import web

from livecommerce.platform.backgroundtasks import BackgroundTasks

log = logging.getLogger(__name__)

MAX_SUBJECT = 200
MAX_BODY = 200_000
_RETRY_DELAYS_S = (1.0, 5.0, 30.0)


@dataclass(frozen=True)
class Email:
    """One message to one person. ``text`` is required (every client can read it); ``html`` is an
    optional alternative part, already escaped by the caller."""

    to: str
    subject: str
    text: str
    html: str | None = None
    reply_to: str | None = None

    def __post_init__(self) -> None:
        if "@" not in self.to or any(c in self.to for c in "\r\n,;<>"):
            raise ValueError(f"not one email address: {self.to!r}")
        if not self.subject or len(self.subject) > MAX_SUBJECT or "\n" in self.subject:
            raise ValueError("a subject is one line of 1 to 200 characters")
        if len(self.text) > MAX_BODY or (self.html is not None and len(self.html) > MAX_BODY):
            raise ValueError("an email body is at most 200,000 characters")


@dataclass(frozen=True)
class SmtpServer:
    """Where mail goes. ``tls``: "starttls" (port 587), "implicit" (465), "none" (a local relay)."""

    host: str
    port: int = 587
    username: str = ""
    password: str = ""
    tls: str = "starttls"
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.tls not in ("starttls", "implicit", "none"):
            raise ValueError("SMTP_TLS must be starttls, implicit or none")


class Mailer:
    """Builds RFC 5322 messages from `Email` and delivers them to SMTP or the outbox folder."""

    def __init__(self, sender: str, *, smtp: SmtpServer | None, outbox: Path) -> None:
        self.sender = sender
        self.smtp = smtp
        self.outbox = outbox
        self._tasks = BackgroundTasks("mail")

    def message(self, mail: Email) -> EmailMessage:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Date"] = email.utils.formatdate(localtime=False)
        domain = self.sender.rpartition("@")[2].strip(">") or "livecommerce.invalid"
        msg["Message-ID"] = email.utils.make_msgid(domain=domain)
        if mail.reply_to:
            msg["Reply-To"] = mail.reply_to
        msg.set_content(mail.text)
        if mail.html is not None:
            msg.add_alternative(mail.html, subtype="html")
        return msg

    async def send(self, mail: Email) -> None:
        """Deliver now; raises on failure (`send_soon` is what domains call)."""
        msg = self.message(mail)
        if self.smtp is None:
            await asyncio.to_thread(self._write_eml, msg)  # file I/O off the loop
            return
        await aiosmtplib.send(
            msg,
            hostname=self.smtp.host,
            port=self.smtp.port,
            username=self.smtp.username or None,
            password=self.smtp.password or None,
            start_tls=self.smtp.tls == "starttls",
            use_tls=self.smtp.tls == "implicit",
            timeout=self.smtp.timeout_s,
        )

    def send_soon(self, mail: Email) -> None:
        """Queue ``mail``; it is sent in the background, retried, and a final failure logged."""
        self._tasks.spawn(self._deliver(mail), f"to {mail.to}")

    async def _deliver(self, mail: Email) -> None:
        for attempt, delay in enumerate((0.0, *_RETRY_DELAYS_S)):
            await asyncio.sleep(delay)
            try:
                await self.send(mail)
                return
            except (OSError, aiosmtplib.SMTPException) as exc:
                log.warning(
                    "sending mail failed",
                    extra={"to": mail.to, "subject": mail.subject, "attempt": attempt + 1},
                    exc_info=exc,
                )
        log.error("mail not sent", extra={"to": mail.to, "subject": mail.subject})

    def _write_eml(self, msg: EmailMessage) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{secrets.token_hex(4)}.eml"
        partial = self.outbox / (name + ".part")
        partial.write_bytes(msg.as_bytes())
        partial.rename(self.outbox / name)  # readers never see half a message

    async def drain(self) -> None:
        """Wait until every queued message has been sent or given up on (tests, shutdown)."""
        await self._tasks.join()

    async def close(self, grace_s: float = 5.0) -> None:
        """Give queued mail ``grace_s`` to go out, then cancel what is left (logged)."""
        try:
            await asyncio.wait_for(self.drain(), grace_s)
        except TimeoutError:
            log.error(
                "mail still queued at shutdown was dropped", extra={"count": len(self._tasks)}
            )
        await self._tasks.close()


MAILER = web.AppKey("mailer", Mailer)
