"""Buy attempts per second through the real HTTP path, beside the raw EVALSHA rate.

    python -m bench.buy [--connections 5000] [--seconds 8] [--rounds 3] [--workers 1,2]

``livecommerce serve`` takes ``POST /api/purchases`` from ``wrk`` (Debian package ``wrk``)
holding ``--connections`` open connections, one buyer token per request in rotation and a fresh
Idempotency-Key each time; with ``--workers 1,2`` the whole run is made once per worker count
(``serve --workers N``), each beside the same server's ``GET /healthz`` rate (the ceiling of
any request there: no auth, no Redis, no SQL) and with the server's CPU (master and workers) per
attempt. Two scenarios:

- rush: a small stock sells out in the first moments; nearly every attempt is refused "sold out"
  (the flash-sale case: thousands tap, few win). Cost: auth, validation, one EVALSHA.
- win: stock never runs out; every attempt holds a unit and writes a ``reserved`` order row.

Baseline in the same run: the same ``reserve`` script called by SHA, on a SKU in the same
state, (a) from redis-py's asyncio client with as many tasks as connections (the floor of any
Python path) and (b) from ``redis-benchmark`` (what the Redis server itself can do).
Figures are medians over ``--rounds`` rounds. Uses REDIS_URL / DATABASE_URL when set, else the
local Redis on 6379 (or an embedded Valkey) and ``--database``: a SQLite file in a temporary
directory, or a private PostgreSQL database (``bench/databases.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bench.crowd import make_buyers
from bench.databases import KINDS, bench_database
from bench.measure import background_cores, cpu_s
from bench.processes import ServerProcess, forget, redis_server, sign_up
from livecommerce.inventory.reservations import Reservations
from livecommerce.platform.db.engine import create_engine, migrate
from livecommerce.platform.pipelined import PipelinedRedis

WRK_SCRIPT = r"""
local tokens = {}
local counter = 0
local id = 0
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  body = '{"sku_id": ' .. args[2] .. ', "qty": 1, "pay_with_saved_card": false}'
  run = args[3]
  statuses = {}
end

function request()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("POST", "/api/purchases", {
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = run .. "-" .. id .. "-" .. counter,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[tostring(status)] = (counts[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do parts[#parts + 1] = '"' .. status .. '": ' .. n end
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, "errors": %d, '
    .. '"statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    table.concat(parts, ", ")))
end
"""


async def seed(url: str, stock: int) -> int:
    """A seller and one product with one SKU; returns the SKU id."""
    async with aiohttp.ClientSession() as session:
        token = await sign_up(session, url, "Seller")
        product = {
            "title": "Bench hoodie",
            "variants": [
                {"sku": f"B-{uuid.uuid4().hex[:8]}", "price_minor": 4900, "currency": "USD"}
                | {"stock_on_hand": stock}
            ],
        }
        async with session.post(
            f"{url}/api/products", json=product, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            body = await response.json()
            assert response.status == 201, body
            return int(body["product"]["variants"][0]["id"])


def run_wrk(
    url: str, script: Path, tokens: Path, sku: int, connections: int, seconds: int
) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
            "--",
            str(tokens),
            str(sku),
            uuid.uuid4().hex[:8],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    result["rate"] = result["requests"] / result["seconds"]
    return result


async def raw_python_rate(
    redis_url: str, sold_out: bool, concurrency: int, seconds: float, client: str
) -> float:
    """EVALSHA of the reserve script from Python, ``concurrency`` tasks calling in a loop.

    ``client`` "hot": the auto-pipelined connection the server's buy path uses;
    "redis-py": redis-py's Script over a pool of 64 connections (the usual way).
    """
    from redis.asyncio import BlockingConnectionPool

    pool = BlockingConnectionPool.from_url(redis_url, max_connections=64, decode_responses=True)
    redis = Redis(connection_pool=pool)
    hot = PipelinedRedis(redis_url)
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    ledger = Reservations(redis, namespace, hot)
    await ledger.preload_scripts()
    await ledger.load(1, available=0 if sold_out else 10**9, price=4900, currency="USD", holds=[])
    script = redis.register_script(ledger._reserve.script)  # the very same script
    tag = "{sku1}"
    keys = [f"{namespace}:{part}:{tag}" for part in ("stock", "holds", "hold")]
    done = 0
    stop_at = time.perf_counter() + seconds

    async def buyer(n: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            now = int(time.time() * 1000)
            call_keys = [
                *keys,
                f"{namespace}:idem:{tag}:{n}:{i}",
                f"{namespace}:sale:{tag}",
                f"{namespace}:salebuyers:{tag}",
                f"{namespace}:unpaid:{tag}",
            ]
            # no stream, no bound on unpaid units: the script's own cost
            args = [uuid.uuid4().hex, n, 1, now, now + 600_000, 60, "", 0]
            if client == "hot":
                await hot.evalsha(str(script.script), script.sha, call_keys, args)
            else:
                await script(keys=call_keys, args=args)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(buyer(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    await forget(redis_url, namespace)
    await hot.close()
    await redis.aclose()
    return done / elapsed


def raw_server_rate(redis_url: str, sold_out: bool) -> float:
    """EVALSHA of the same script from redis-benchmark (C client, 50 connections)."""
    if shutil.which("redis-benchmark") is None:
        return float("nan")

    async def prepare() -> tuple[str, list[str], str]:
        redis = Redis.from_url(redis_url, decode_responses=True)
        ns = f"bench{uuid.uuid4().hex[:6]}"
        ledger = Reservations(redis, ns, PipelinedRedis(redis_url))
        await ledger.preload_scripts()
        await ledger.load(
            1, available=0 if sold_out else 10**9, price=4900, currency="USD", holds=[]
        )
        sha = str(ledger._reserve.sha)  # the very same script
        await redis.aclose()
        tag = "{sku1}"
        keys = [
            f"{ns}:stock:{tag}",
            f"{ns}:holds:{tag}",
            f"{ns}:hold:{tag}",
            f"{ns}:idem:{tag}:7:__rand_int__",
            f"{ns}:sale:{tag}",
            f"{ns}:salebuyers:{tag}",
            f"{ns}:unpaid:{tag}",
        ]
        return sha, keys, ns

    sha, keys, ns = asyncio.run(prepare())
    host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    now = int(time.time() * 1000)
    out = subprocess.run(
        [
            *("redis-benchmark", "-h", host, "-p", port, "-c", "50", "-n", "200000"),
            *("-r", "100000000", "--csv", "EVALSHA", sha, "7", *keys),
            *("h__rand_int__", "7", "1", str(now), str(now + 600_000), "60", "0", "0"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(out.strip().splitlines()[-1].split(",")[1].strip('"'))

    asyncio.run(forget(redis_url, ns))
    return rate


def server_cpu_s(server: ServerProcess) -> float:
    """CPU seconds so far of the server: its process and its workers (not the emulator)."""
    total = cpu_s(server.process.pid)
    for pid in server.children():
        try:
            if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
                total += cpu_s(pid)
        except OSError:
            continue  # a worker that just left
    return total


def healthz_rate(url: str, connections: int, seconds: int) -> float:
    """``GET /healthz`` per second from wrk with as many connections."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", f"{url}/healthz"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("Requests/sec:"))
    return float(line.split()[1])


def report(
    scenario: str,
    args: argparse.Namespace,
    server: ServerProcess,
    script: Path,
    tokens_file: Path,
    redis_url: str,
) -> None:
    sold_out = scenario == "rush"
    http: list[dict[str, Any]] = []
    cpu = 0.0
    for _ in range(args.rounds):
        sku = asyncio.run(seed(server.url, 200 if sold_out else 10**7))
        before = server_cpu_s(server)
        http.append(run_wrk(server.url, script, tokens_file, sku, args.connections, args.seconds))
        cpu += server_cpu_s(server) - before
    raw: dict[str, float] = {}
    for client in ("hot", "redis-py"):
        raw[client] = statistics.median(
            asyncio.run(
                raw_python_rate(redis_url, sold_out, args.connections, args.seconds / 2, client)
            )
            for _ in range(args.rounds)
        )
    raw["C"] = statistics.median(raw_server_rate(redis_url, sold_out) for _ in range(args.rounds))
    rate = statistics.median(r["rate"] for r in http)
    p50 = statistics.median(r["p50_us"] for r in http) / 1000
    p99 = statistics.median(r["p99_us"] for r in http) / 1000
    statuses: dict[str, int] = {}
    for r in http:
        for status, n in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    errors = sum(r["errors"] for r in http)
    print(f"\n[{scenario}] medians of {args.rounds} rounds of {args.seconds} s")
    print(f"  HTTP buy attempts/s             {rate:8.0f}   p50 {p50:.1f} ms   p99 {p99:.1f} ms")
    print(f"  answers by status               {statuses}   socket errors {errors}")
    attempts = sum(r["requests"] for r in http)
    print(f"  server CPU per attempt          {cpu / max(attempts, 1) * 1e6:8.0f} µs")
    labels = {
        "hot": "raw EVALSHA/s, server's conn.",
        "redis-py": "raw EVALSHA/s, redis-py",
        "C": "raw EVALSHA/s, redis-benchmark",
    }
    for client, label in labels.items():
        print(f"  {label:<31} {raw[client]:8.0f}   HTTP/raw {rate / raw[client]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--buyers", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", choices=["rush", "win", "both"], default="both")
    parser.add_argument(
        "--workers", default="1", help="worker counts to run the bench with, e.g. 1,2"
    )
    parser.add_argument("--database", choices=KINDS, default="sqlite")
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",")]
    if shutil.which("wrk") is None:
        print("bench/buy.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2

    background = background_cores(1.0)
    with (
        tempfile.TemporaryDirectory() as tmp,
        redis_server() as redis_url,
        bench_database(args.database, Path(tmp)) as database_url,
    ):
        work = Path(tmp)

        async def prepare_db() -> list[str]:
            engine = create_engine(database_url)
            await migrate(engine)
            await engine.dispose()
            return await make_buyers(database_url, args.buyers)

        tokens = asyncio.run(prepare_db())
        tokens_file = work / "tokens.txt"
        tokens_file.write_text("\n".join(tokens) + "\n")
        script = work / "buy.lua"
        script.write_text(WRK_SCRIPT)
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": f"bench{uuid.uuid4().hex[:6]}",
            "DATA_DIR": str(work),
            "AUTO_MIGRATE": "0",
            # wrk's buyers never pay: lift the bounds on unpaid units so "win" keeps winning
            "MAX_UNPAID_PER_SKU": "10000",
            "MAX_UNPAID_PER_BUYER": "100000",
        }
        db = "PostgreSQL" if "postgres" in database_url else "SQLite"
        print(f"buy bench: {db}, {args.connections} connections (wrk)")
        print(
            f"  {os.cpu_count()} CPUs shared by wrk, the server and Redis; "
            f"{background:.2f} cores busy before the start"
        )
        for workers in worker_counts:
            server = ServerProcess(env, work / f"server-{workers}.log", workers=workers)
            try:
                server.wait_ready()
                kind = "1 server process" if workers == 1 else f"{workers} workers on one port"
                print(f"\n== {kind}")
                scenarios = ["rush", "win"] if args.scenario == "both" else [args.scenario]
                warm = asyncio.run(seed(server.url, 10))
                run_wrk(server.url, script, tokens_file, warm, args.connections, 3)  # warm caches
                ceiling = healthz_rate(server.url, args.connections, args.seconds)
                print(f"  GET /healthz/s (the ceiling)    {ceiling:8.0f}")
                for scenario in scenarios:
                    report(scenario, args, server, script, tokens_file, redis_url)
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
