"""Email out: through a real SMTP server (aiosmtpd), or into DATA_DIR/outbox without one."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import pytest

from livecommerce.app import create_app
from livecommerce.config import ConfigError, Settings
from livecommerce.platform.mail import MAILER, Email, Mailer, SmtpServer
from tests.mailbox import Mailbox, body_text, smtp_settings


async def test_smtp_delivery_with_text_and_html(smtp_server: tuple[int, Mailbox]) -> None:
    port, mailbox = smtp_server
    mailer = Mailer(
        "Shop <shop@example.test>", smtp=SmtpServer("127.0.0.1", port, tls="none"), outbox=Path()
    )
    mailer.send_soon(
        Email("ana@example.test", "Your order #12", "Thanks for your order.", html="<p>Thanks</p>")
    )
    await mailer.drain()
    message = await mailbox.wait_for("ana@example.test", "Your order #12")
    assert message["From"] == "Shop <shop@example.test>"
    assert body_text(message) == "Thanks for your order.\n"
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "<p>Thanks</p>" in str(html.get_content())
    assert mailbox.envelopes == [("shop@example.test", ["ana@example.test"])]
    await mailer.close()


async def test_outbox_without_smtp(tmp_path: Path) -> None:
    mailer = Mailer("no-reply@localhost", smtp=None, outbox=tmp_path / "outbox")
    await mailer.send(Email("bo@example.test", "Hello", "Body text"))
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "bo@example.test" and message["Subject"] == "Hello"
    assert not list((tmp_path / "outbox").glob("*.part"))


async def test_a_refusing_server_is_retried_then_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 1: every attempt is refused; the caller is never raised into.
    mailer = Mailer("a@example.test", smtp=SmtpServer("127.0.0.1", 1, tls="none"), outbox=Path())
    mailer.send_soon(Email("c@example.test", "Hi", "x"))
    await mailer.close(grace_s=0.3)  # shutdown gives it a moment, then drops and says so
    assert "sending mail failed" in caplog.text
    assert "dropped" in caplog.text


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("no-at-sign", "s"),
        ("a@b.test\r\nBcc: x@y.test", "s"),
        ("a@b.test, c@d.test", "s"),
        ("a@b.test", "two\nlines"),
        ("a@b.test", ""),
    ],
)
def test_header_injection_and_bad_addresses_are_refused(to: str, subject: str) -> None:
    with pytest.raises(ValueError):
        Email(to, subject, "body")


def test_mail_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="SMTP_TLS"):
        Settings.from_env({"SMTP_TLS": "maybe"})
    with pytest.raises(ConfigError, match="MAIL_FROM"):
        Settings.from_env({"MAIL_FROM": "nobody"})
    assert Settings.from_env({"SMTP_TLS": "NONE"}).smtp_tls == "none"


async def test_the_app_sends_through_its_settings(
    aiohttp_client: Any, settings: Settings, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server

    app = create_app(smtp_settings(settings, port, mail_from="Shop <shop@example.test>"))
    client = await aiohttp_client(app)
    app[MAILER].send_soon(Email("dee@example.test", "Ping", "pong"))
    assert body_text(await mailbox.wait_for("dee@example.test", "Ping")) == "pong\n"
    await client.close()
