"""A Stripe stand-in for trying livecommerce without a Stripe account.

With no STRIPE_SECRET_KEY, the app uses ``localstripe`` (a stateful Stripe emulator, from PyPI)
on a loopback port and points the gateway at it: test cards work, webhooks arrive, and its
stand-in of Stripe.js is served at ``/js.stripe.com/v3/``. Nothing leaves the machine.

The emulator runs in a process of its own (``stripeemulator``), one per ``DATA_DIR`` (so one per
host for a deployment), shared by every server process using that directory, and keeps its
store under ``DATA_DIR/stripe-emulator``: a card saved through one process pays through another,
and after a restart. The first server to need it starts it; it outlives that server while any
other uses it, and exits once none does.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import aiohttp

from livecommerce.payments.stripeemulator import (
    ADDRESS,
    CLIENTS_LOCK,
    EMULATOR_LOCK,
    webhook_secret,
)

EMBEDDED_SECRET_KEY = "sk_test_embedded"
EMBEDDED_PUBLISHABLE_KEY = "pk_test_embedded"
START_TIMEOUT_S = 30.0


class EmbeddedStripe:
    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "stripe-emulator"
        self.url = ""
        self.webhook_secret = ""
        self._clients: IO[str] | None = None

    async def start(self) -> str:
        """Use this directory's emulator, starting it if none runs; returns its URL."""
        # Files, locks and a process to wait for: all blocking, so in a thread.
        self.url = await asyncio.to_thread(self._join)
        return self.url

    def _join(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.webhook_secret = webhook_secret(self.directory)
        clients = (self.directory / CLIENTS_LOCK).open("a")
        # Blocks only while an emulator that found itself unused is exiting.
        fcntl.flock(clients, fcntl.LOCK_SH)
        self._clients = clients
        return self._find_or_start()

    def _find_or_start(self) -> str:
        """Blocking (run in a thread): the running emulator's URL, after starting one if need be."""
        deadline = time.monotonic() + START_TIMEOUT_S
        started: subprocess.Popen[bytes] | None = None
        while time.monotonic() < deadline:
            url = self._running_url()
            if url is not None:
                return url
            if started is None and not self._emulator_alive():
                started = self._spawn()
            time.sleep(0.05)
        raise RuntimeError(f"the embedded Stripe emulator did not start; see {self._log_path}")

    @property
    def _log_path(self) -> Path:
        return self.directory / "emulator.log"

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self._log_path.open("ab") as log_file:
            # A session of its own: a Ctrl-C meant for this server does not stop the emulator
            # that other servers still use.
            return subprocess.Popen(
                [sys.executable, "-m", "livecommerce.payments.stripeemulator", str(self.directory)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _emulator_alive(self) -> bool:
        with (self.directory / EMULATOR_LOCK).open("a") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False

    def _running_url(self) -> str | None:
        try:
            address = json.loads((self.directory / ADDRESS).read_text())
            os.kill(int(address["pid"]), 0)  # a file left by a dead emulator does not count
        except (FileNotFoundError, ValueError, KeyError, ProcessLookupError):
            return None
        if not self._emulator_alive():
            return None
        return str(address["url"])

    async def deliver_webhooks_to(self, url: str) -> None:
        """Have the emulator send its webhooks to ``url`` too (one registration per URL)."""
        endpoint = "livecommerce-" + hashlib.sha256(url.encode()).hexdigest()[:16]
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{self.url}/_config/webhooks/{endpoint}",
                data={"url": url, "secret": self.webhook_secret},
            )
            response.raise_for_status()

    async def stop(self) -> None:
        """Stop using the emulator (it exits once no server uses it); safe to call twice."""
        clients, self._clients = self._clients, None
        if clients is not None:
            clients.close()  # releases the shared lock
