"""A Stripe stand-in for trying livecommerce without a Stripe account.

With no STRIPE_SECRET_KEY, the app serves ``localstripe`` (a stateful Stripe emulator, from
PyPI) on a loopback port and points the gateway at it: test cards work, webhooks arrive,
and its stand-in of Stripe.js is served at ``/js.stripe.com/v3/``. Nothing leaves the machine.
"""

from __future__ import annotations

import secrets
import socket

import aiohttp
from aiohttp import web

EMBEDDED_SECRET_KEY = "sk_test_embedded"
EMBEDDED_PUBLISHABLE_KEY = "pk_test_embedded"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedStripe:
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.webhook_secret = "whsec_" + secrets.token_hex(16)

    async def start(self) -> str:
        # localstripe keeps its store in module globals: one emulator per process.
        from localstripe.server import app as localstripe_app

        port = _free_port()
        runner = web.AppRunner(localstripe_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._runner = runner
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def deliver_webhooks_to(self, url: str) -> None:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{self.url}/_config/webhooks/livecommerce",
                data={"url": url, "secret": self.webhook_secret},
            )
            response.raise_for_status()

    async def stop(self) -> None:
        """Stop serving; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
