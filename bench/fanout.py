"""Pin fan-out to N websocket viewers: livecommerce beside the reference Node socket.io server.

    python -m bench.fanout [--viewers 10000] [--workers 1,2] [--storm 2000] [--pins 30]
                           [--swarms 4] [--burst 50] [--quick]

Viewers are the official ``socket.io-client`` in Node (``bench/fanout/viewers.mjs``), one
websocket each, spread over ``--swarms`` Node processes; each joins the stream's room on
``/live``. A moderator (``bench/fanout/moderator.mjs``, the stream's creator) pins through the
real path: ``pin`` on its socket, checked against SQL, written to Redis, broadcast through the
AsyncRedisManager. Measured, for livecommerce and then for the reference Node ``socket.io``
server (``bench/fanout/reference_server.mjs``, same swarm, same run):

- last-viewer latency: time from the moment the moderator sends a pin until the LAST viewer
  got ``product:pinned`` (one pin every ``--interval`` s, alternating two products), p50/p99;
- delivered messages/s: ``--burst`` pins back to back, cards delivered to all viewers divided
  by the time until the last one arrived (median of ``--burst-rounds``);
- RSS per idle viewer: the server's VmRSS with N idle joined viewers minus its VmRSS after a
  warm-up with none, divided by N (every process of the server, with workers);
- the CPU floor: what one paced pin cost the server and all swarms together (user and kernel
  time), divided by the CPUs: the soonest the last viewer could have it on this machine, since
  the swarms run beside the server;
- the departure: every viewer gone at once (the swarms closed), the server's CPU per leave
  and how long until it is quiet;
- a join storm: ``--storm`` more viewers arriving at once (every swarm opens all of its own
  together) once the others have left and the server is quiet, until the last has joined (a
  show's start).

livecommerce is measured once per ``--workers`` count (``serve --workers N``: the viewers land
on whichever worker the kernel gives them, the moderator on one; pins reach the others through
Redis), each in a fresh server; the Node server once.

All clocks are epoch milliseconds (``performance.timeOrigin + performance.now()`` in Node).
The swarms' event-loop utilisation is reported so a saturated client side shows. Uses
REDIS_URL / DATABASE_URL when set, else the local Redis on 6379 (or an embedded Valkey) and a
SQLite file in a temporary directory. ``--profile DIR`` records the livecommerce server with
py-spy during the pins and bursts (collapsed stacks, ``DIR/livecommerce-fanout.txt``) and
during the join storm (``DIR/livecommerce-storm.txt``), with one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.measure import (
    FiguresTable,
    Meter,
    background_cores,
    goal_mark,
    machine_shared,
    percentile,
    profile_summary,
    raise_fd_limit,
    rss_kb,
)
from bench.processes import ServerProcess, forget, free_port, redis_server, sign_up
from livecommerce.config import Settings
from livecommerce.platform.db.engine import create_engine, migrate

HERE = Path(__file__).resolve().parent / "fanout"
STREAM_EVENT = "product:pinned"


# -- Node helpers speaking JSON lines -------------------------------------------------------


class NodeProcess:
    """A helper under ``bench/fanout``: commands on stdin, JSON lines back on stdout."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pins: dict[int, dict[str, Any]] = {}  # viewers.mjs: k -> its "pin" report
        self.pin_arrived = asyncio.Event()
        self.progress: dict[str, Any] = {}
        self.errors: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, name: str, script: str, *args: str) -> NodeProcess:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(HERE / script),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        return cls(name, process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                print(f"[{self.name}] {raw.decode(errors='replace').rstrip()}", file=sys.stderr)
                continue
            kind = message.get("type")
            if kind == "pin":
                self.pins[int(message["k"])] = message
                self.pin_arrived.set()
            elif kind == "progress":
                self.progress = message
            elif kind == "error":
                self.errors.append(str(message.get("message")))
                print(f"[{self.name}] {message.get('message')}", file=sys.stderr)
            else:
                await self.inbox.put(message)

    def command(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())

    async def expect(self, kind: str, wait_s: float) -> dict[str, Any]:
        """The next message of type ``kind`` (others before it are dropped)."""
        deadline = time.monotonic() + wait_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self.process.returncode is not None and self.inbox.empty()):
                raise TimeoutError(f"{self.name}: no {kind!r} ({'; '.join(self.errors[-3:])})")
            try:
                message = await asyncio.wait_for(self.inbox.get(), min(left, 1.0))
            except TimeoutError:
                continue
            if message.get("type") == kind:
                return message

    async def request(self, kind: str, wait_s: float, **command: Any) -> dict[str, Any]:
        self.command(**command)
        return await self.expect(kind, wait_s)

    async def close(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                self.command(cmd="quit")
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()


# -- the two servers --------------------------------------------------------------------------


@dataclass
class Target:
    """A server under test: where it listens, its PID, who may pin, what, and how to stop."""

    name: str
    url: str
    pid: int
    token: str
    stream_id: int
    products: list[int]
    stop: Callable[[], None]
    log: Path | None = None
    pids: tuple[int, ...] = ()  # every process of the server (a master and its workers)

    @property
    def processes(self) -> list[int]:
        return list(self.pids) or [self.pid]


async def seed_livecommerce(url: str) -> tuple[str, int, list[int]]:
    """A creator with two products and a stream whose lineup holds both."""
    async with aiohttp.ClientSession() as session:
        token = await sign_up(session, url, "Creator")
        headers = {"Authorization": f"Bearer {token}"}
        products = []
        for title in ("Bench hoodie", "Bench tee"):
            body = {
                "title": title,
                "image_url": "https://example.com/hoodie.jpg",
                "variants": [
                    {"sku": f"F-{uuid.uuid4().hex[:8]}", "price_minor": 4900, "currency": "USD"}
                    | {"stock_on_hand": 20}
                ],
            }
            async with session.post(f"{url}/api/products", json=body, headers=headers) as r:
                created = await r.json()
                assert r.status == 201, created
                products.append(int(created["product"]["id"]))
        stream = {"title": "Fan-out bench", "lineup": products}
        async with session.post(f"{url}/api/streams", json=stream, headers=headers) as r:
            created = await r.json()
            assert r.status == 201, created
            return token, int(created["stream"]["id"]), products


@contextlib.asynccontextmanager
async def livecommerce_server(
    work: Path, redis_url: str, keep_log: str | None, workers: int = 1
) -> Any:
    database_url = os.environ.get("DATABASE_URL") or f"sqlite+aiosqlite:///{work / 'f.db'}"
    engine = create_engine(Settings(database_url=database_url).database_url)  # its driver
    await migrate(engine)
    await engine.dispose()
    namespace = f"fanout{uuid.uuid4().hex[:6]}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": namespace,
        "DATA_DIR": str(work),
        "AUTO_MIGRATE": "0",
        # Every bench viewer comes from 127.0.0.1: thousands of sockets from one address.
        "SOCKETS_PER_ADDRESS": "1000000",
        # The moderator's bursts are pins back to back, as the Node reference takes them.
        "SOCKET_EVENTS_PER_SECOND": "1000",
        "SOCKET_EVENT_BURST": "1000",
    }
    server = ServerProcess(env, work / "server.log", workers=workers)
    try:
        await asyncio.to_thread(server.wait_ready)
        token, stream_id, products = await seed_livecommerce(server.url)
        workers_pids = await asyncio.to_thread(worker_pids, server)

        def stop() -> None:
            server.kill()  # 10,000 graceful websocket closes would only slow the bench down
            server.stop()

        yield Target(
            "livecommerce" if workers == 1 else f"livecommerce x{workers}",
            *(server.url, server.process.pid, token, stream_id, products, stop),
            log=server.log_path,
            pids=(server.process.pid, *workers_pids) if workers > 1 else (),
        )
    finally:
        server.kill()
        server.stop()
        if keep_log:
            shutil.copy(server.log_path, keep_log)
        await forget(redis_url, namespace)


@contextlib.asynccontextmanager
async def node_server(viewer_counts: bool) -> Any:
    token = uuid.uuid4().hex
    server = await NodeProcess.start(
        "node-server",
        "reference_server.mjs",
        *("--port", str(free_port()), "--token", token),
        *("--viewer-counts", "1" if viewer_counts else "0"),
    )
    try:
        listening = await server.expect("listening", 30)
        url = f"http://127.0.0.1:{listening['port']}"
        yield Target(
            "node socket.io", url, server.process.pid, token, 1, [1, 2], server.process.kill
        )
    finally:
        if server.process.returncode is None:
            server.process.kill()
        await server.process.wait()
        await server.close()


# -- one server, measured -----------------------------------------------------------------


@dataclass
class Result:
    name: str
    viewers: int = 0
    failed: int = 0
    ramp_s: float = math.nan
    ramp_events: int = 0  # server events other than pins the viewers got while joining
    ramp_cut: bool = False  # the ramp hit --ramp-deadline before every viewer had joined
    ramp_curve: list[tuple[float, int]] = field(default_factory=list)  # (s, joined so far)
    cpu_ramp: float = math.nan  # server CPU share while viewers joined
    other_ramp: float = math.nan  # cores burnt by processes outside the bench meanwhile
    other_pins: float = math.nan
    other_burst: float = math.nan
    swarm_cpu_ramp: float = math.nan  # all swarms' CPU seconds / wall seconds while joining
    settle_s: float = 0.0
    rss_base_kb: int = 0
    rss_idle_kb: int = 0
    latency_ms: list[float] = field(default_factory=list)  # last viewer, per pin
    first_ms: list[float] = field(default_factory=list)  # first viewer, per pin
    ack_ms: list[float] = field(default_factory=list)
    incomplete: int = 0  # pins some live viewer never got in time
    mismatched: int = 0  # pins whose k-th card was not the product pinned k-th
    rates: list[float] = field(default_factory=list)
    burst_delivered: int = 0
    burst_expected: int = 0
    burst_ack_ms: list[float] = field(default_factory=list)
    cpu_pins: float = math.nan  # server CPU share during the paced pins
    cpu_burst: float = math.nan
    us_per_card_pins: float = math.nan  # server CPU per card delivered, contention-proof-ish
    us_per_card_burst: float = math.nan
    swarm_us_per_card_pins: float = math.nan  # all swarms' CPU per card delivered, paced pins
    elu_pins: float = math.nan  # the busiest swarm's event-loop utilisation
    elu_burst: float = math.nan
    lag_p99_ms: float = math.nan
    swarm_cpu_burst: float = math.nan  # all swarms' CPU seconds / wall seconds
    leave_s: float = math.nan  # the viewers gone (swarms closed): until the server is quiet
    leave_cpu_ms: float = math.nan  # the server's CPU meanwhile
    storm_s: float = math.nan  # --storm viewers arriving at once: until the last joined
    storm_joined: int = 0
    storm_cpu_ms: float = math.nan  # the server's CPU meanwhile
    disconnects: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def per_viewer_kb(self) -> float:
        return (self.rss_idle_kb - self.rss_base_kb) / self.viewers if self.viewers else math.nan


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.deflate = "1" if args.client_deflate == "on" else "0"

    async def measure(self, target: Target, profile: Path | None) -> Result:
        args = self.args
        result = Result(target.name)
        common = ("--url", target.url, "--stream", str(target.stream_id), "--deflate", self.deflate)
        moderator = await NodeProcess.start(
            "moderator", "moderator.mjs", *common, "--token", target.token
        )
        swarms: list[NodeProcess] = []
        try:
            await moderator.expect("connected", 30)
            await self.warm_up(target, moderator, common)
            await asyncio.sleep(2)
            result.rss_base_kb = server_rss_kb(target)

            per = [
                args.viewers // args.swarms + (i < args.viewers % args.swarms)
                for i in range(args.swarms)
            ]
            started = time.monotonic()
            swarms = [
                await NodeProcess.start(
                    f"swarm{i}",
                    "viewers.mjs",
                    *common,
                    *("--count", str(n), "--id", str(i), "--batch", str(args.batch)),
                )
                for i, n in enumerate(per)
                if n
            ]
            meter = Meter(
                target.processes, [moderator.process.pid, *(s.process.pid for s in swarms)]
            )
            readies = await self.ramp(swarms, started, target, result)
            result.ramp_s = time.monotonic() - started
            _wall, result.cpu_ramp, _helpers, result.other_ramp = meter.cores()
            joining = [await s.request("usage", 60, cmd="usage") for s in swarms]
            result.swarm_cpu_ramp = sum(u["cpu_ms"] for u in joining) / 1000 / result.ramp_s
            result.viewers = sum(r["joined"] for r in readies)
            result.failed = sum(r["failed"] for r in readies)
            for r in readies:
                if r["errors"]:
                    result.notes.append(f"join errors ({r['swarm']}): {r['errors'][:2]}")
            settle_started = time.monotonic()
            usage = await self.settle(swarms)
            result.settle_s = time.monotonic() - settle_started
            result.ramp_events = sum(sum(u["events"].values()) for u in usage)
            await asyncio.sleep(2)
            result.rss_idle_kb = server_rss_kb(target)
            print(
                f"  {target.name}: {result.viewers} viewers joined in {result.ramp_s:.1f} s "
                f"(+{result.settle_s:.1f} s until quiet, {result.ramp_events} room events "
                f"while joining), RSS {result.rss_base_kb // 1024} -> "
                f"{result.rss_idle_kb // 1024} MB",
                file=sys.stderr,
            )
            live = sum(u["live"] for u in usage)

            # py-spy follows one process: the single server (a worker's share is half the picture)
            spy = start_py_spy(target.pid, profile) if profile and not target.pids else None
            try:
                await self.paced_pins(target, meter, moderator, swarms, live, result)
                await self.bursts(target, meter, moderator, swarms, live, result)
            finally:
                if spy is not None:
                    stop_py_spy(spy)
            final = [await s.request("usage", 30, cmd="usage") for s in swarms]
            result.disconnects = sum(u["disconnects"] for u in final)
            for u in final:
                if u["disconnect_reasons"]:
                    result.notes.append(f"swarm{u['swarm']} lost: {u['disconnect_reasons']}")
            if args.storm:
                leaving = Meter(target.processes, [])
                for swarm in swarms:
                    await swarm.close()
                swarms = []
                # The crowd of the next show arrives once this one's departure is over: the
                # storm measures joins, not joins beside thousands of leaves.
                result.leave_s = await self.until_quiet(target)
                wall, cores, _helpers, _other = leaving.cores()
                result.leave_cpu_ms = cores * wall * 1000
                await self.storm(target, common, result, profile)
        finally:
            target.stop()
            for node in (*swarms, moderator):
                await node.close()
            if target.log is not None:
                result.notes.extend(log_errors(target.log))
        return result

    async def storm(
        self, target: Target, common: tuple[str, ...], result: Result, profile: Path | None
    ) -> None:
        """``--storm`` viewers arrive at once (a show's start): every swarm opens all of its
        viewers together; the time until the last one has joined (its ``room:state`` and the
        join's ack), as the swarms measure it from their start. With ``profile``, py-spy
        records the single server meanwhile (``livecommerce-storm.txt``)."""
        args = self.args
        per = [
            args.storm // args.swarms + (i < args.storm % args.swarms) for i in range(args.swarms)
        ]
        spy = (
            start_py_spy(target.pid, profile, "livecommerce-storm.txt")
            if profile and not target.pids
            else None
        )
        if spy is not None:
            await asyncio.sleep(1.0)  # py-spy has attached
        crowd = [
            await NodeProcess.start(
                f"storm{i}",
                "viewers.mjs",
                *common,
                *("--count", str(n), "--id", str(100 + i), "--batch", str(n)),
            )
            for i, n in enumerate(per)
            if n
        ]
        meter = Meter(target.processes, [c.process.pid for c in crowd])
        try:
            readies = [await c.expect("ready", 300) for c in crowd]
            wall, cores, _helpers, _other = meter.cores()
            result.storm_s = max(r["ramp_ms"] for r in readies) / 1000
            result.storm_joined = sum(r["joined"] for r in readies)
            result.storm_cpu_ms = cores * wall * 1000
            print(
                f"  {target.name}: {result.storm_joined} of {args.storm} arriving at once "
                f"joined in {result.storm_s:.2f} s",
                file=sys.stderr,
            )
        finally:
            if spy is not None:
                stop_py_spy(spy)
            for c in crowd:
                await c.close()

    async def warm_up(
        self, target: Target, moderator: NodeProcess, common: tuple[str, ...]
    ) -> None:
        """A handful of viewers join, get two pins and leave; the second product stays pinned."""
        warm = await NodeProcess.start("warm-up", "viewers.mjs", *common, "--count", "20")
        try:
            await warm.expect("ready", 60)
            for seq, product in enumerate(target.products):
                ack = await moderator.request("ack", 30, cmd="pin", seq=seq, product_id=product)
                if not ack["ok"]:
                    raise RuntimeError(f"{target.name} refused the pin: {ack}")
            await asyncio.sleep(0.5)
        finally:
            await warm.close()

    async def ramp(
        self, swarms: list[NodeProcess], started: float, target: Target, result: Result
    ) -> list[dict[str, Any]]:
        """Every swarm connects and joins, batch by batch; progress on stderr. Past
        ``--ramp-deadline`` the swarms stop opening viewers and the bench goes on with those
        that joined."""
        waiting = {
            s.name: asyncio.ensure_future(s.expect("ready", self.args.ramp_timeout)) for s in swarms
        }
        last_note = time.monotonic()
        while not all(w.done() for w in waiting.values()):
            await asyncio.wait(list(waiting.values()), timeout=1.0)
            elapsed = time.monotonic() - started
            if not result.ramp_cut and elapsed > self.args.ramp_deadline:
                result.ramp_cut = True
                for s in swarms:
                    s.command(cmd="stop-ramp")
                print(
                    f"    ramp deadline ({self.args.ramp_deadline:.0f} s): no more viewers",
                    file=sys.stderr,
                )
            if time.monotonic() - last_note > 30:
                last_note = time.monotonic()
                joined = sum(s.progress.get("joined", 0) for s in swarms)
                failed = sum(s.progress.get("failed", 0) for s in swarms)
                result.ramp_curve.append((elapsed, joined))
                print(
                    f"    ... {joined} joined, {failed} failed after "
                    f"{time.monotonic() - started:.0f} s; "
                    f"server RSS {server_rss_kb(target) // 1024} MB",
                    file=sys.stderr,
                )
        return [w.result() for w in waiting.values()]

    async def until_quiet(self, target: Target, limit_s: float = 120.0) -> float:
        """Seconds until the server has used under 5% of a core for a whole second."""
        started = time.monotonic()
        while time.monotonic() - started < limit_s:
            meter = Meter(target.processes, [])
            await asyncio.sleep(1.0)
            _wall, cores, _helpers, _other = meter.cores()
            if cores < 0.05:
                return time.monotonic() - started - 1.0
        return math.nan

    async def settle(self, swarms: list[NodeProcess]) -> list[dict[str, Any]]:
        """Wait until the viewers hear nothing for a second (join broadcasts drained)."""
        previous = -1
        deadline = time.monotonic() + self.args.ramp_timeout
        while True:
            usage = [await s.request("usage", 60, cmd="usage") for s in swarms]
            total = sum(sum(u["events"].values()) for u in usage)
            if total == previous or time.monotonic() > deadline:
                return usage
            previous = total
            await asyncio.sleep(1.0)

    async def collect(
        self, swarms: list[NodeProcess], ks: range, wait_s: float
    ) -> dict[int, dict[str, Any]]:
        """Every swarm's report on cards ``ks``, summed; partial ones after ``wait_s``."""
        deadline = time.monotonic() + wait_s

        def complete() -> bool:
            return all(k in s.pins for s in swarms for k in ks)

        while not complete() and time.monotonic() < deadline:
            for s in swarms:
                s.pin_arrived.clear()
            if complete():
                break
            waits = [asyncio.ensure_future(s.pin_arrived.wait()) for s in swarms]
            await asyncio.wait(
                waits, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
            )
            for w in waits:
                w.cancel()
        if not complete():
            for s in swarms:
                await s.request("flushed", 30, cmd="flush")
        merged: dict[int, dict[str, Any]] = {}
        for k in ks:
            reports = [s.pins[k] for s in swarms if k in s.pins]
            if not reports:
                continue
            merged[k] = {
                "n": sum(r["n"] for r in reports),
                "first": min(r["first"] for r in reports),
                "last": max(r["last"] for r in reports),
                "products": {p for r in reports for p in r["products"]},
                "partial": len(reports) < len(swarms) or any(r["partial"] for r in reports),
            }
        return merged

    async def reset(self, swarms: list[NodeProcess]) -> None:
        """Forget the swarms' pin reports and start their usage figures afresh."""
        for s in swarms:
            s.pins.clear()
            await s.request("reset", 30, cmd="reset")
        for s in swarms:
            await s.request("usage", 30, cmd="usage")

    async def paced_pins(
        self,
        target: Target,
        meter: Meter,
        moderator: NodeProcess,
        swarms: list[NodeProcess],
        live: int,
        result: Result,
    ) -> None:
        args = self.args
        await self.reset(swarms)
        meter.restart()
        busy = 0.0
        delivered = 0
        for seq in range(args.pins):
            product = target.products[seq % 2]  # the warm-up left the other one pinned
            t0 = time.monotonic()
            ack, cards = await asyncio.gather(
                moderator.request("ack", 60, cmd="pin", seq=seq, product_id=product),
                self.collect(swarms, range(seq, seq + 1), args.pin_timeout),
            )
            busy += time.monotonic() - t0
            card = cards.get(seq)
            if not ack["ok"]:
                result.notes.append(f"pin {seq} refused: {ack.get('error')}")
            if card is None or card["n"] < live:
                result.incomplete += 1
            if card is not None:
                delivered += card["n"]
                if card["products"] != {product}:
                    result.mismatched += 1
                result.latency_ms.append(card["last"] - ack["t_send"])
                result.first_ms.append(card["first"] - ack["t_send"])
            result.ack_ms.append(ack["t_ack"] - ack["t_send"])
            await asyncio.sleep(args.interval)
        wall, result.cpu_pins, _helpers, result.other_pins = meter.cores()
        result.us_per_card_pins = result.cpu_pins * wall / max(delivered, 1) * 1e6
        usage = [await s.request("usage", 30, cmd="usage") for s in swarms]
        result.swarm_us_per_card_pins = sum(u["cpu_ms"] for u in usage) * 1e3 / max(delivered, 1)
        # event-loop utilisation over the whole phase, pauses included, so scaled to busy time
        result.elu_pins = max(u["elu"] for u in usage) * wall / max(busy, 1e-9)
        result.lag_p99_ms = max(u["lag_p99_ms"] for u in usage)
        print(
            f"  {target.name}: {len(result.latency_ms)} pins, last viewer p50 "
            f"{percentile(result.latency_ms, 50):.0f} ms, p99 "
            f"{percentile(result.latency_ms, 99):.0f} ms",
            file=sys.stderr,
        )

    async def bursts(
        self,
        target: Target,
        meter: Meter,
        moderator: NodeProcess,
        swarms: list[NodeProcess],
        live: int,
        result: Result,
    ) -> None:
        args = self.args
        cpu_total = wall_total = swarm_cpu = other = 0.0
        elu: list[float] = []
        for _ in range(args.burst_rounds):
            await asyncio.sleep(1.0)
            await self.reset(swarms)
            meter.restart()
            sent, cards = await asyncio.gather(
                moderator.request(
                    "burst", 120, cmd="burst", count=args.burst, products=target.products
                ),
                # at least 2,000 cards a second, or the round is cut short
                self.collect(
                    swarms, range(args.burst), args.pin_timeout + args.burst * live / 2000
                ),
            )
            wall, server, _helpers, others = meter.cores()
            cpu_total += server * wall
            other += others * wall
            wall_total += wall
            usage = [await s.request("usage", 30, cmd="usage") for s in swarms]
            elu.append(max(u["elu"] for u in usage))
            swarm_cpu += sum(u["cpu_ms"] for u in usage) / 1000
            delivered = sum(c["n"] for c in cards.values())
            last = max((c["last"] for c in cards.values()), default=math.nan)
            result.burst_delivered += delivered
            result.burst_expected += args.burst * live
            result.burst_ack_ms.append(sent["t_last_ack"] - sent["t_first"])
            if sent["ok"] != args.burst:
                result.notes.append(f"burst: {args.burst - sent['ok']} pins refused")
            result.rates.append(delivered / ((last - sent["t_first"]) / 1000))
            print(
                f"  {target.name}: burst of {args.burst}, {delivered} cards in "
                f"{last - sent['t_first']:.0f} ms: {result.rates[-1]:.0f}/s",
                file=sys.stderr,
            )
        result.cpu_burst = cpu_total / wall_total
        result.us_per_card_burst = cpu_total / max(result.burst_delivered, 1) * 1e6
        result.other_burst = other / wall_total
        result.elu_burst = max(elu)
        result.swarm_cpu_burst = swarm_cpu / wall_total


def cpu_floor_ms(result: Result, viewers: int) -> float:
    """The soonest the last viewer could have a pin on this machine: the CPU one pin costs the
    server and the swarms together (kernel time included: on loopback the receiving side's TCP
    work runs in the sender's send()), spread perfectly over every CPU. A latency near it is
    bound by the machine, not by either server."""
    per_card = result.us_per_card_pins + result.swarm_us_per_card_pins
    return per_card * min(result.viewers, viewers) / 1000 / (os.cpu_count() or 1)


def per_busy_core(result: Result) -> float:
    """Delivered messages per second in bursts, per core the server kept busy meanwhile."""
    if not result.rates or not result.cpu_burst:
        return math.nan
    return statistics.median(result.rates) / result.cpu_burst


def worker_pids(server: ServerProcess) -> list[int]:
    """The server's worker processes (not the embedded services it started)."""
    return [
        pid
        for pid in sorted(server.children())
        if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def server_rss_kb(target: Target) -> int:
    """Resident memory of every process of the server, in KB."""
    total = 0
    for pid in target.processes:
        with contextlib.suppress(OSError, RuntimeError):  # a worker that just left
            total += rss_kb(pid)
    return total


def log_errors(log: Path) -> list[str]:
    """The exceptions a server logged, most frequent first (the line that names each)."""
    lines = log.read_text(errors="replace").splitlines()
    found: Counter[str] = Counter()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            if j < len(lines):
                found[lines[j][:160]] += 1
    return [f"server logged {n} x {what}" for what, n in found.most_common(3)]


# Where the livecommerce server's CPU goes, from py-spy's collapsed stacks: the first rule
# whose every part is in a sample's stack names it. Time in C (a syscall, zlib, uvloop) counts
# against the Python line that called it.
PROFILE_BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("permessage-deflate: zlib per frame, per socket", ("compression_utils",)),
    ("websocket frame write + send() syscall (aiohttp)", ("WebSocketWriter",)),
    ("emit: a Task per recipient (create_task)", ("AsyncManager.emit", "create_task")),
    ("emit: asyncio.wait over those Tasks", ("AsyncManager.emit", "tasks.py:5")),
    ("emit: other (participants, packet encode)", ("AsyncManager.emit",)),
    ("per-recipient Task: engine.io socket.send", ("_send_eio_packet",)),
    ("engine.io writer Task wake-up (wait_for)", ("AsyncSocket.poll",)),
    ("engine.io writer Task: rest", ("_websocket_handler.<locals>.writer",)),
    ("fan-out: frames written to each socket (socketioseam)", ("LiveRedisManager._uncork",)),
    ("engine.io pings (a task per socket per ping)", ("_send_ping",)),
    ("engine.io pings (a task per socket per ping)", ("AsyncSocket.schedule_ping",)),
    ("pings from the seam's ping wheel", ("Fanout.ping_due", "_schedule_ping")),
    ("pin handler: SQL, Redis, validation", ("LiveNamespace._pin",)),
    ("join handler", ("LiveNamespace._join",)),
    ("engine.io receive loop", ("_websocket_handler",)),
    ("engine.io writer Task wake-up (wait_for)", ("Queue.get",)),
    ("per-recipient Task: engine.io socket.send", ("Queue.put",)),
    ("SQLite worker threads (aiosqlite)", ("_connection_worker_thread",)),
    ("Redis pub/sub listener", ("AsyncPubSubManager._thread",)),
    ("event loop itself (uvloop, C)", ("_serve (livecommerce/cli.py",)),
)


def start_py_spy(
    pid: int, profile: Path, name: str = "livecommerce-fanout.txt"
) -> subprocess.Popen[bytes] | None:
    if shutil.which("py-spy") is None:
        print("  --profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return None
    profile.mkdir(parents=True, exist_ok=True)
    out = profile / name
    print(f"  py-spy recording the server ({pid}) to {out}", file=sys.stderr)
    return subprocess.Popen(
        [
            *("py-spy", "record", "--pid", str(pid), "--rate", "100", "--format", "raw"),
            *("--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_py_spy(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()


# -- report -------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: list[Result], background: float) -> None:
    ours = next((r for r in results if r.name == "livecommerce"), None)
    node = next((r for r in results if not r.name.startswith("livecommerce")), None)
    more = [r for r in results if r.name.startswith("livecommerce x")]  # more workers
    columns = [ours, node, *more]
    print(
        f"\nfan-out bench: {args.viewers} viewers in {args.swarms} Node swarms, "
        f"{args.pins} pins every {args.interval} s, bursts of {args.burst} x {args.burst_rounds}"
    )
    print(
        f"  {os.cpu_count()} CPUs shared by the server, the swarms and Redis; "
        f"client permessage-deflate {args.client_deflate}; {background:.2f} cores busy "
        "before the start"
    )

    table = FiguresTable(38, (14, 16, *(18 for _ in more)))

    def row(label: str, pick: Callable[[Result], float], fmt: str, ratio: bool = True) -> None:
        table.row(label, [pick(r) if r else math.nan for r in columns], fmt, ratio)

    table.header(("livecommerce", "node socket.io", *(r.name for r in more)), ratio="ours/node")
    row("viewers joined", lambda r: r.viewers, ".0f", ratio=False)
    row("  failed to join", lambda r: r.failed, ".0f", ratio=False)
    row("ramp: connect + join, s", lambda r: r.ramp_s, ".1f")
    row("  then until quiet, s", lambda r: r.settle_s, ".1f", ratio=False)
    row("  room events heard while joining", lambda r: r.ramp_events, ".0f")
    row("  server CPU while joining, %", lambda r: 100 * r.cpu_ramp, ".0f", ratio=False)
    row("  all swarms' CPU while joining, cores", lambda r: r.swarm_cpu_ramp, ".2f", ratio=False)
    row("last-viewer latency p50, ms", lambda r: statistics.median(r.latency_ms), ".1f")
    row("last-viewer latency p99, ms", lambda r: percentile(r.latency_ms, 99), ".1f")
    row("first-viewer latency p50, ms", lambda r: statistics.median(r.first_ms), ".1f")
    row("pin ack p50, ms", lambda r: statistics.median(r.ack_ms), ".1f")
    row("pins not seen by every viewer", lambda r: r.incomplete, ".0f", ratio=False)
    row("delivered msgs/s (burst, median)", lambda r: statistics.median(r.rates), ".0f")
    row("  per busy server core", per_busy_core, ".0f")
    row(
        "  delivered / expected, %",
        lambda r: 100 * r.burst_delivered / r.burst_expected,
        ".1f",
        ratio=False,
    )
    row("RSS per idle viewer, KB", lambda r: r.per_viewer_kb, ".1f")
    row("  server RSS idle with N viewers, MB", lambda r: r.rss_idle_kb / 1024, ".0f")
    row("server CPU, paced pins, %", lambda r: 100 * r.cpu_pins, ".0f", ratio=False)
    row("server CPU, bursts, %", lambda r: 100 * r.cpu_burst, ".0f", ratio=False)
    row("server CPU per card, paced pins, us", lambda r: r.us_per_card_pins, ".1f")
    row("server CPU per card, bursts, us", lambda r: r.us_per_card_burst, ".1f")
    row("all swarms' CPU per card, paced pins, us", lambda r: r.swarm_us_per_card_pins, ".1f")
    row("CPU floor for the last viewer, ms", lambda r: cpu_floor_ms(r, args.viewers), ".1f")
    row("other processes' CPU, ramp, cores", lambda r: r.other_ramp, ".2f", ratio=False)
    row("other processes' CPU, pins, cores", lambda r: r.other_pins, ".2f", ratio=False)
    row("other processes' CPU, bursts, cores", lambda r: r.other_burst, ".2f", ratio=False)
    row("busiest swarm event loop, bursts, %", lambda r: 100 * r.elu_burst, ".0f", ratio=False)
    row("all swarms' CPU, bursts, cores", lambda r: r.swarm_cpu_burst, ".2f", ratio=False)
    row("viewers lost during the run", lambda r: r.disconnects, ".0f", ratio=False)
    row(f"{args.viewers} leaving at once: server busy, s", lambda r: r.leave_s, ".1f")
    row(
        "  server CPU per leave, ms",
        lambda r: r.leave_cpu_ms / r.viewers if r.viewers else math.nan,
        ".2f",
    )
    row(f"{args.storm} arriving at once: joined in, s", lambda r: r.storm_s, ".2f")
    row("  of them joined", lambda r: r.storm_joined, ".0f", ratio=False)
    row(
        "  server CPU per join, ms",
        lambda r: r.storm_cpu_ms / r.storm_joined if r.storm_joined else math.nan,
        ".2f",
    )
    for r in results:
        if r.ramp_cut:
            r.notes.append(
                f"ramp stopped at --ramp-deadline {args.ramp_deadline:.0f} s with {r.viewers} "
                "viewers joined: the server did not keep up"
            )
        if r.ramp_curve:
            marks = r.ramp_curve[:: max(1, len(r.ramp_curve) // 6)]
            r.notes.append(
                "joined over time: " + ", ".join(f"{n} after {t:.0f} s" for t, n in marks)
            )
        if r.mismatched:
            r.notes.append(f"{r.mismatched} pins arrived out of order")
        if machine_shared(max(r.other_pins, r.other_burst)):
            r.notes.append(
                "processes outside the bench (Redis included) were busy during the measurement: "
                "the machine was shared, figures are pessimistic"
            )
        if r.elu_burst > 0.9:
            r.notes.append("a swarm's event loop was >90% busy: the client side may be the limit")
        for note in r.notes:
            print(f"  note ({r.name}): {note}")
    if args.profile and (Path(args.profile) / "livecommerce-fanout.txt").exists():
        out = Path(args.profile) / "livecommerce-fanout.txt"
        print(f"  where the livecommerce server's CPU went (py-spy, pins + bursts; {out}):")
        for name, share in profile_summary(out, PROFILE_BUCKETS):
            print(f"    {100 * share:5.1f} %  {name}")
    if ours:
        p99 = percentile(ours.latency_ms, 99)
        rate = per_busy_core(ours)
        node_rate = per_busy_core(node) if node else math.nan
        print("  goals (livecommerce):")
        print(
            f"    {args.viewers} viewers on one process      "
            f"{goal_mark(ours.viewers >= args.viewers)}"
        )
        print(f"    last-viewer p99 <= 150 ms            {goal_mark(p99 <= 150)} ({p99:.0f} ms)")
        print(
            f"    msgs/s per busy core >= node's       {goal_mark(rate >= node_rate)} "
            f"({rate:.0f} vs {node_rate:.0f})"
        )
        print(
            f"    <= 30 KB per idle viewer             {goal_mark(ours.per_viewer_kb <= 30)} "
            f"({ours.per_viewer_kb:.1f} KB)"
        )
        for label, mine, theirs in (
            ("paced", ours.us_per_card_pins, node.us_per_card_pins if node else math.nan),
            ("bursts", ours.us_per_card_burst, node.us_per_card_burst if node else math.nan),
        ):
            print(
                f"    CPU per card <= node's, {label:<7}      {goal_mark(mine <= theirs)} "
                f"({mine:.1f} vs {theirs:.1f} us)"
            )
        if args.storm:
            print(
                f"    {args.storm} arriving at once in <= 3 s     "
                f"{goal_mark(ours.storm_s <= 3 and ours.storm_joined == args.storm)} "
                f"({ours.storm_s:.2f} s)"
            )
        for other in more:
            growth = other.us_per_card_burst / ours.us_per_card_burst
            print(
                f"    {other.name}: CPU per card <= 1.15x   {goal_mark(growth <= 1.15)} "
                f"({growth:.2f}x in bursts, "
                f"{other.us_per_card_pins / ours.us_per_card_pins:.2f}x paced)"
            )


async def run(args: argparse.Namespace) -> list[Result]:
    bench = Bench(args)
    results = []
    profile = Path(args.profile) if args.profile else None
    if args.only in ("both", "livecommerce"):
        for workers in [int(n) for n in args.workers.split(",")]:
            with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
                async with livecommerce_server(
                    Path(tmp), redis_url, args.keep_log, workers
                ) as target:
                    results.append(await bench.measure(target, profile))
    if args.only in ("both", "node"):
        async with node_server(args.node_viewer_counts) as target:
            results.append(await bench.measure(target, None))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--pins", type=int, default=30)
    parser.add_argument("--swarms", type=int, default=4)
    parser.add_argument("--burst", type=int, default=50, help="pins back to back per round")
    parser.add_argument("--burst-rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.4, help="seconds between pins")
    parser.add_argument("--batch", type=int, default=10, help="joins in flight per swarm")
    parser.add_argument("--pin-timeout", type=float, default=15.0)
    parser.add_argument(
        "--ramp-deadline",
        type=float,
        default=900.0,
        help="seconds of ramp after which no more viewers join; the rest is measured with those",
    )
    parser.add_argument("--ramp-timeout", type=float, default=3600.0)
    parser.add_argument("--only", choices=["both", "livecommerce", "node"], default="both")
    parser.add_argument(
        "--workers", default="1,2", help="livecommerce worker counts to measure, e.g. 1,2"
    )
    parser.add_argument(
        "--storm", type=int, default=2000, help="viewers arriving at once at the end (0: none)"
    )
    parser.add_argument(
        "--client-deflate",
        choices=["on", "off"],
        default="on",
        help="viewers offer permessage-deflate (socket.io-client's default, as browsers do)",
    )
    parser.add_argument(
        "--node-viewer-counts",
        action="store_true",
        help="the Node server also tells the room its viewer count on every join",
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy the livecommerce server")
    parser.add_argument("--keep-log", metavar="PATH", help="copy the livecommerce server's log")
    parser.add_argument("--quick", action="store_true", help="500 viewers, 10 pins: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.pins, args.burst, args.burst_rounds = 500, 10, 20, 2
        args.workers, args.storm = "1", 500
    if shutil.which("node") is None:
        print("bench/fanout.py needs Node.js (node) and `npm ci` at the root", file=sys.stderr)
        return 2
    raise_fd_limit(args.viewers + 1024)  # the server holds one per viewer; a swarm fewer
    print(
        f"fan-out: {args.viewers} viewers, {args.swarms} swarms; ramping (progress on stderr)",
        file=sys.stderr,
    )
    background = background_cores(2.0)
    results = asyncio.run(run(args))
    report(args, results, background)
    return 0


if __name__ == "__main__":
    sys.exit(main())
