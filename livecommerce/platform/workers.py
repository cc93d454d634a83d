"""N worker processes on one port: gunicorn's arbiter as the process manager, each worker a
whole app on aiohttp.

The only module that knows gunicorn, and aiohttp's gunicorn worker: ``check_gunicorn()`` runs
before anything starts and refuses versions this was not checked against (gunicorn 27.x, pinned
in pyproject.toml). What it relies on:

- gunicorn 27 with ``reuse_port``: the master binds nothing, each worker binds its own listening
  socket with ``SO_REUSEPORT`` and the kernel spreads new connections over them;
- a worker that ends before it sets ``booted`` exits with ``WORKER_BOOT_ERROR``, and the master
  then halts (instead of starting workers that fail over and over);
- aiohttp's ``GunicornUVLoopWebWorker`` (uvloop, and signals through the event loop). Its serving
  loop is replaced here by the one ``livecommerce serve`` runs in a single process: the
  header-read timeout on every connection, our access log, and a graceful shutdown bounded by
  ``SHUTDOWN_TIMEOUT``.

A worker ends with ``os._exit``: it shares the master's memory image, so a normal interpreter
exit would run the master's ``atexit`` handlers and finalizers, such as the one that stops the
embedded Valkey every worker still uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.worker import GunicornUVLoopWebWorker
from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from livecommerce.config import Settings
from livecommerce.platform.fastlane import FastLane
from livecommerce.platform.headertimeout import with_head_timeout
from livecommerce.platform.heap import settle_heap
from livecommerce.platform.logs import AccessLogger, configure_logging

log = logging.getLogger("livecommerce")

CHECKED_GUNICORN = (27,)
BACKLOG = 2048  # connections waiting to be accepted, per listening socket (as one process has)
BOOT_ERROR = 3  # gunicorn's Arbiter.WORKER_BOOT_ERROR: the master halts on it
CLEANUP_MARGIN_S = 5.0
"""What the master adds to SHUTDOWN_TIMEOUT for a worker's cleanup before it kills the worker."""


def check_gunicorn() -> None:
    """Refuse a gunicorn or aiohttp this module was not checked against (raises RuntimeError)."""
    import gunicorn
    from gunicorn.arbiter import Arbiter

    if tuple(gunicorn.version_info[:1]) != CHECKED_GUNICORN:
        raise RuntimeError(
            f"gunicorn {gunicorn.__version__} is not the 27.x livecommerce was checked against"
        )
    if Arbiter.WORKER_BOOT_ERROR != BOOT_ERROR:
        raise RuntimeError("gunicorn's worker boot error status changed")
    for name in ("init_process", "init_signals", "handle_quit", "handle_exit", "notify"):
        if not callable(getattr(GunicornUVLoopWebWorker, name, None)):
            raise RuntimeError(f"aiohttp's gunicorn worker has no {name}")


def cpu_count() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def media_origin(settings: Settings, port: int) -> str:
    """Where a worker's media listener on ``port`` is reached: MEDIA_URL's scheme and host
    when it is set (other hosts reach this one there), else HOST (loopback for a wildcard)."""
    if settings.media_url:
        parts = urlsplit(settings.media_url)
        host = parts.hostname or "127.0.0.1"
        scheme = parts.scheme
    else:
        host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
        scheme = "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def bind_media_ports(settings: Settings, workers: int) -> tuple[socket.socket, ...]:
    """The workers' media listening sockets, one per slot (twice ``workers``), bound by the master
    before it starts anything that could take a port: WORKER_MEDIA_PORT and the ports after it,
    or free ports when it is unset; OSError names a port that is taken."""
    bound: list[socket.socket] = []
    try:
        for slot in range(2 * workers):
            port = settings.worker_media_port + slot if settings.worker_media_port else 0
            bound.append(_media_socket(settings.host, port))
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return tuple(bound)


def _media_socket(host: str, port: int) -> socket.socket:
    host = host or "0.0.0.0"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(
                exc.errno, f"WORKER_MEDIA_PORT: {host}:{port} is taken ({exc.strerror})"
            ) from None
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class Plan:
    """What every worker runs: the app ``factory`` on ``settings`` already resolved by the
    master (embedded services' URLs filled in, migrations done), and the media sockets the
    master bound (``bind_media_ports``), the one of its slot for each worker."""

    settings: Settings
    factory: Callable[[Settings], web.Application]
    url: str
    media_sockets: tuple[socket.socket, ...] = ()
    # The listener's fast lane of the started app (``fastlane``), if it has one.
    lane: Callable[[web.Application], FastLane | None] = lambda app: None

    def media_socket(self, slot: int) -> socket.socket:
        """The media listening socket of ``slot``: the master's, or (past the slots it bound:
        more reloads at once than it planned for) one bound now."""
        if slot < len(self.media_sockets):
            return self.media_sockets[slot]
        base = self.settings.worker_media_port
        return _media_socket(self.settings.host, base + slot if base else 0)

    def for_port(self, port: int) -> Settings:
        """The settings of the worker whose media listener is on ``port``: its MEDIA_URL, and its
        INTERNAL_URL (the address the other processes pull its streams from) on the same port,
        on INTERNAL_URL's scheme and host when that is set."""
        internal = ""
        if self.settings.internal_url:
            internal = media_origin(
                replace(self.settings, media_url=self.settings.internal_url), port
            )
        return replace(
            self.settings, media_url=media_origin(self.settings, port), internal_url=internal
        )


class Worker(GunicornUVLoopWebWorker):
    """One worker: the whole app, on the shared port and on a media port of its own."""

    media_slot = 0  # set by the master before the fork (see ``_pick_slot``)
    _stopping: asyncio.Event | None = None

    def init_process(self) -> None:
        status = 0
        try:
            super().init_process()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
            if status and not self.booted:
                # Also a start-up the master cut short (SIGABRT past its timeout): the master
                # then halts instead of starting workers that hang over and over.
                status = BOOT_ERROR
        except BaseException:
            log.exception("worker %s failed", os.getpid())
            status = 1 if self.booted else BOOT_ERROR
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def run(self) -> None:
        # gunicorn marks the worker booted before run(); it is booted only once it serves.
        self.booted = False
        loop = self.loop
        status = 0
        try:
            loop.run_until_complete(self._serve())
        except Exception:
            if self.booted:
                log.exception("worker %s failed", os.getpid())
                status = 1
            else:
                log.exception("livecommerce could not start")
                status = BOOT_ERROR
        finally:
            # Bounded: a task cancelled mid-start-up was seen never to finish under uvloop.
            leftover = asyncio.all_tasks(loop)
            for task in leftover:
                task.cancel()
            if leftover:
                loop.run_until_complete(asyncio.wait(leftover, timeout=2.0))
            loop.close()
        sys.exit(status)

    async def _serve(self) -> None:
        plan: Plan = self.wsgi
        media_socket = plan.media_socket(self.media_slot)
        settings = plan.for_port(media_socket.getsockname()[1])
        configure_logging(settings.log_level, settings.log_json, worker=os.getpid())
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        runner = web.AppRunner(
            plan.factory(settings),
            shutdown_timeout=settings.shutdown_timeout_s,
            access_log_class=AccessLogger,
            keepalive_timeout=settings.header_read_timeout_s,
        )
        listeners: list[asyncio.Server] = []
        try:
            await runner.setup()
            assert runner.server is not None
            protocol = with_head_timeout(
                runner.server, settings.header_read_timeout_s, plan.lane(runner.app)
            )
            for listener in self.sockets:
                listeners.append(
                    await loop.create_server(protocol, sock=listener.sock, backlog=BACKLOG)
                )
            listeners.append(await loop.create_server(protocol, sock=media_socket, backlog=BACKLOG))
            settle_heap()
            self.booted = True
            log.info("worker %s serves, media at %s", os.getpid(), settings.media_url)
            if self.age == 1:  # the first worker the master started: said once per master
                print(f"livecommerce is running at {plan.url} (Ctrl+C to stop)", flush=True)
            await self._until_told_to_stop()
        finally:
            for listener in listeners:
                listener.close()
            await runner.cleanup()

    async def _until_told_to_stop(self) -> None:
        assert self._stopping is not None
        while self.alive:
            self.notify()  # the master's liveness check
            if self.ppid != os.getppid():
                log.warning("the master is gone: worker %s stops", os.getpid())
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=1.0)

    def _wake(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._wake()

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_quit(sig, frame)
        self._wake()


class _Logs(glogging.Logger):  # type: ignore[misc]
    """gunicorn's own lines go through the root logger: the same JSON lines as ours."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True


def _pick_slot(arbiter: Any, worker: Worker) -> None:
    """Before the fork, in the master: the lowest media slot no live worker has (a reload
    starts the new workers before the old ones have stopped, so up to 2N are taken)."""
    taken = {getattr(w, "media_slot", None) for w in arbiter.WORKERS.values()}
    worker.media_slot = next(slot for slot in itertools.count() if slot not in taken)


class _Master(BaseApplication):  # type: ignore[misc]
    def __init__(self, plan: Plan, options: dict[str, object]) -> None:
        self._plan = plan
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Plan:
        return self._plan


def run_workers(plan: Plan, workers: int) -> int:
    """Run ``workers`` workers under one master until SIGTERM or SIGINT; SIGHUP replaces them
    gracefully; a worker that dies is replaced. 1 if the workers could not start, else 0."""
    # The pages may follow a WHEP redirect to any worker's media listener: a reload starts
    # the new workers before the old ones stop, so 2N slots may be in use.
    origins = tuple(
        media_origin(plan.settings, sock.getsockname()[1]) for sock in plan.media_sockets
    )
    settings = replace(
        plan.settings,
        media_origins=plan.settings.media_origins + origins,
        # A ceiling for the whole server, shared out among its workers.
        stripe_max_rps=plan.settings.stripe_max_rps / workers,
    )
    plan = replace(plan, settings=settings)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    graceful = settings.shutdown_timeout_s + CLEANUP_MARGIN_S
    options: dict[str, object] = {
        "bind": [f"{host}:{settings.port}"],
        "workers": workers,
        "worker_class": Worker,
        "reuse_port": True,
        "backlog": BACKLOG,
        "graceful_timeout": math.ceil(graceful),
        # A worker that has not said it is alive for this long is killed and replaced; its
        # loop says so every second, and a graceful stop may take the whole graceful time.
        "timeout": max(30, math.ceil(graceful) + 10),
        "keepalive": math.ceil(settings.header_read_timeout_s),
        "logger_class": _Logs,
        "loglevel": settings.log_level.lower(),
        "pre_fork": _pick_slot,
        "proc_name": "livecommerce",
        "control_socket_disable": True,
    }
    try:
        _Master(plan, options).run()
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 1
    return 0
