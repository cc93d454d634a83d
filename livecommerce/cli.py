"""Command line: ``livecommerce serve | migrate | demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from aiohttp import web

from livecommerce.config import ConfigError, Settings
from livecommerce.platform.logs import AccessLogger, configure_logging

if TYPE_CHECKING:
    from livecommerce.payments.embedded_stripe import EmbeddedStripe
    from livecommerce.platform.embedded_redis import EmbeddedRedis

log = logging.getLogger("livecommerce")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecommerce", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (settings from the environment)")
    serve.add_argument("--host", help="address to bind (default HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default PORT or 8080)")
    serve.add_argument("--demo", action="store_true", help="seed demo data first")
    serve.add_argument(
        "--workers",
        type=_worker_count,
        help="worker processes on the one port (default WEB_CONCURRENCY, or one per core)",
    )
    sub.add_parser("migrate", help="bring the database to the newest schema")
    sub.add_parser("demo", help="seed a demo shop: accounts, products and a shopstream")
    return parser


def _worker_count(raw: str) -> int:
    count = int(raw)
    if not 1 <= count <= 1024:
        raise argparse.ArgumentTypeError("must be between 1 and 1024")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides: dict[str, object] = {}
        if getattr(args, "host", None):
            overrides["host"] = args.host
        if getattr(args, "port", None) is not None:
            overrides["port"] = args.port
        if getattr(args, "workers", None) is not None:
            overrides["workers"] = args.workers
        settings = Settings.from_env(None, **overrides)
    except ConfigError as exc:
        print(f"livecommerce: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("database is at the newest schema")
        return 0
    if args.command == "demo" or getattr(args, "demo", False):
        from livecommerce.app import create_app
        from livecommerce.demo import seed_demo

        print(asyncio.run(seed_demo(settings, create_app)))
        if args.command == "demo":
            return 0
    from livecommerce.platform.workers import cpu_count

    workers = settings.workers or cpu_count()
    if workers == 1:
        return _serve(settings)
    return _serve_workers(settings, workers)


async def _migrate(settings: Settings) -> None:
    from livecommerce.platform.db.engine import create_engine, migrate

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): about twice the requests per core."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM (graceful shutdown); 1 if start-up fails, with the reason logged.

    Not ``web.run_app``: when a start-up step fails it cancels every task and waits for them
    without a bound, and under uvloop a background task cancelled mid-start-up was seen never to
    finish, so the process hung instead of exiting.
    """
    from livecommerce.app import create_app, fast_lane
    from livecommerce.platform.headertimeout import with_head_timeout
    from livecommerce.platform.heap import settle_heap

    url = settings.public_url or f"http://{settings.host}:{settings.port}"
    loop = _event_loop()
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(
        create_app(settings),
        # Our own handlers: aiohttp's raise GracefulExit out of the loop, which left the
        # clean-up below to run while every other task (aiortc's among them) was cancelled.
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log_class=AccessLogger,
        # An idle kept-alive connection, or one stuck halfway through a later request's head,
        # is closed as soon as a first request's head would be.
        keepalive_timeout=settings.header_read_timeout_s,
    )

    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async def run() -> None:
        listener: asyncio.Server | None = None
        try:
            await runner.setup()
            assert runner.server is not None
            # Not web.TCPSite: the listener puts each connection under the header-read timeout.
            listener = await loop.create_server(
                with_head_timeout(
                    runner.server, settings.header_read_timeout_s, fast_lane(runner.app)
                ),
                settings.host,
                settings.port,
                backlog=2048,
                reuse_address=True,
            )
            settle_heap()
            print(f"livecommerce is running at {url} (Ctrl+C to stop)", flush=True)
            await stop.wait()
        finally:
            # A second signal during the drain ends it at once (the finally below cancels).
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, _interrupt)
            if listener is not None:
                listener.close()
            await runner.cleanup()

    def _interrupt() -> None:
        raise KeyboardInterrupt

    status = 0
    try:
        loop.run_until_complete(run())
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    except Exception:
        log.exception("livecommerce could not start")
        status = 1
    finally:
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=2.0))
        loop.close()
    return status


class _SharedServices:
    """What the master starts once, before the workers, and stops after them: the embedded
    Valkey and Stripe emulator when none is configured; and the migrations it runs."""

    def __init__(self) -> None:
        self._redis: EmbeddedRedis | None = None
        self._stripe: EmbeddedStripe | None = None

    async def start(self, settings: Settings) -> Settings:
        """``settings`` as the workers get them: the services' URLs filled in, nothing left
        for a worker to start or migrate."""
        from livecommerce.payments.embedded_stripe import (
            EMBEDDED_PUBLISHABLE_KEY,
            EMBEDDED_SECRET_KEY,
            EmbeddedStripe,
        )
        from livecommerce.platform.embedded_redis import EmbeddedRedis

        changes: dict[str, object] = {}
        if settings.redis_url is None:
            self._redis = EmbeddedRedis(settings.data_dir)
            changes["redis_url"] = url = await self._redis.start()
            log.info("started embedded Redis", extra={"redis_url": url})
        if not settings.stripe_secret_key:
            self._stripe = stripe = EmbeddedStripe(settings.data_dir)
            api_base = await stripe.start()
            base = settings.public_url or f"http://127.0.0.1:{settings.port}"
            await stripe.deliver_webhooks_to(f"{base}/api/stripe/webhook")
            changes.update(
                stripe_secret_key=EMBEDDED_SECRET_KEY,
                stripe_publishable_key=EMBEDDED_PUBLISHABLE_KEY,
                stripe_webhook_secret=stripe.webhook_secret,
                stripe_api_base=api_base,
            )
            log.info("no STRIPE_SECRET_KEY: payments go to an embedded Stripe emulator")
        if settings.auto_migrate:
            await _migrate(settings)
            changes["auto_migrate"] = False
        return replace(settings, **changes)  # type: ignore[arg-type]

    async def stop(self) -> None:
        """Stop what ``start`` started; safe to call twice."""
        if self._stripe is not None:
            await self._stripe.stop()
        if self._redis is not None:
            await self._redis.stop()


def _serve_workers(settings: Settings, workers: int) -> int:
    """Run ``workers`` worker processes on one port under a master (platform/workers.py);
    the shared services start first, in the master. 1 if start-up fails, with the reason
    logged."""
    from livecommerce.app import create_app, fast_lane
    from livecommerce.platform.workers import (
        Plan,
        bind_media_ports,
        check_gunicorn,
        run_workers,
    )

    url = settings.public_url or f"http://{settings.host}:{settings.port}"
    shared = _SharedServices()
    media: tuple[socket.socket, ...] = ()
    try:
        check_gunicorn()
        # First: the embedded services below take ports of their own.
        media = bind_media_ports(settings, workers)
        resolved = asyncio.run(shared.start(settings))
    except Exception:
        log.exception("livecommerce could not start")
        asyncio.run(shared.stop())
        for sock in media:
            sock.close()
        return 1
    log.info("starting %s workers", workers)
    try:
        return run_workers(Plan(resolved, create_app, url, media, fast_lane), workers)
    finally:
        asyncio.run(shared.stop())
