"""The embedded Stripe emulator's own process: one per ``DATA_DIR``, shared by every server.

``python -m livecommerce.payments.stripeemulator DIR`` serves localstripe on a loopback port,
keeps its store in ``DIR/store.pickle`` (so customers and saved cards survive restarts), and
publishes its address in ``DIR/emulator.json``. Locks under ``DIR`` make it one per directory:

* ``emulator.lock``: held (exclusively) by the running emulator for its whole life; a second
  emulator started meanwhile finds it taken and exits at once.
* ``clients.lock``: every server using the emulator holds it shared (``EmbeddedStripe``). When
  the emulator can take it exclusively, no server is left: it writes its store and exits. A
  server arriving then waits on its shared lock until the emulator is gone, and starts another.

So the emulator outlives the server that started it, as long as any server uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import IO

from aiohttp import web

from livecommerce.payments.localstripeseam import StoreFile, keep_store_in

log = logging.getLogger("livecommerce.stripeemulator")

EMULATOR_LOCK = "emulator.lock"
CLIENTS_LOCK = "clients.lock"
ADDRESS = "emulator.json"
SECRET = "webhook_secret"
STORE = "store.pickle"
FLUSH_S = 0.5


def webhook_secret(directory: Path) -> str:
    """The webhook signing secret of the emulator of ``directory``, made once and kept."""
    path = directory / SECRET
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = "whsec_" + secrets.token_hex(16)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret)
    with contextlib.suppress(FileExistsError):
        os.link(temporary, path)  # the first writer wins; the others read its secret
    temporary.unlink(missing_ok=True)
    return path.read_text().strip()


def _try_lock(file: IO[str], kind: int) -> bool:
    try:
        fcntl.flock(file, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def serve(directory: Path) -> int:
    """Serve ``directory``'s emulator until no server uses it (or a signal); exit status."""
    directory.mkdir(parents=True, exist_ok=True)
    own = (directory / EMULATOR_LOCK).open("a")
    if not _try_lock(own, fcntl.LOCK_EX):
        return 0  # another emulator serves this directory
    (directory / ADDRESS).unlink(missing_ok=True)
    webhook_secret(directory)
    store = keep_store_in(directory / STORE)
    log.info("loaded %d Stripe objects", store.load())
    clients = (directory / CLIENTS_LOCK).open("a")
    asyncio.run(_serve(directory, store, clients))
    # The locks go with the process, after the store is written: the next emulator reads it.
    del clients, own
    return 0


async def _serve(directory: Path, store: StoreFile, clients: IO[str]) -> None:
    from localstripe.server import app as localstripe_app

    runner = web.AppRunner(localstripe_app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    address = directory / ADDRESS
    temporary = address.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}))
    temporary.replace(address)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await _until_unused(clients, store, stopping)
    finally:
        address.unlink(missing_ok=True)
        await runner.cleanup()
        store.dirty = True
        store.flush()


async def _until_unused(clients: IO[str], store: StoreFile, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), FLUSH_S)
        store.flush()
        if _try_lock(clients, fcntl.LOCK_EX):
            # No server holds it shared: nobody uses us. Keep the lock until we exit, so a
            # server arriving now waits for us to be gone and starts a fresh emulator.
            return


def main() -> None:
    logging.basicConfig(level=logging.WARNING)  # the log file lives as long as DATA_DIR
    sys.exit(serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
