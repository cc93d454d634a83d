"""Buy at a fixed arrival rate: how long winners wait for "reserved" while the crowd is refused.

    python -m bench.openloop [--database sqlite|postgres] [--connections 1000] [--seconds 10]
                             [--rounds 3] [--units 200] [--load 0.5]

One ``livecommerce serve`` process, driven by autocannon (npm, ``bench/openloop.mjs``; run
``npm ci`` first). Each round, in this order, on the same connection count:

- ``/healthz`` as fast as it answers: the ceiling of any request on this server, this run;
- rush, closed loop: ``POST /api/purchases`` as fast as answers come, on a SKU of ``--units``
  units that sells out at once (attempts/s, the ratio to ``/healthz``);
- open loop: purchases arriving at ``--load`` times the ``/healthz`` rate whatever the answers
  do, in a show whose SKU of ``--units`` units was just pinned (the pin warms the server): every
  answer's p50/p99, and the winners' (201) apart from the refusals (409). Its connections are
  opened before the clock starts, as autocannon and wrk open theirs (``bench/openloop.mjs``).

Figures are medians over ``--rounds``. The database is a SQLite file or a private PostgreSQL
database (``bench/databases.py``); Redis as in ``bench/buy.py``.
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
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.buy import seed
from bench.crowd import make_buyers
from bench.databases import KINDS, bench_database
from bench.measure import background_cores
from bench.processes import ServerProcess, redis_server, sign_up
from livecommerce.platform.db.engine import create_engine, migrate

ROOT = Path(__file__).resolve().parent.parent
BUY_BODY = '{"sku_id": %d, "qty": 1, "pay_with_saved_card": false}'
STREAM_BUY_BODY = '{"sku_id": %d, "qty": 1, "stream_id": %d, "pay_with_saved_card": false}'


async def seed_pinned(url: str, units: int) -> tuple[int, int]:
    """A product of ``units`` units in a stream's lineup, pinned there (as a show does before
    its flash sale: the pin warms every process); returns (SKU id, stream id)."""
    async with aiohttp.ClientSession() as session:
        token = await sign_up(session, url, "Creator")
        auth = {"Authorization": f"Bearer {token}"}
        variant = {"sku": f"O-{uuid.uuid4().hex[:8]}", "price_minor": 4900, "currency": "USD"}
        product = {"title": "Open-loop hoodie", "variants": [variant | {"stock_on_hand": units}]}
        async with session.post(f"{url}/api/products", json=product, headers=auth) as response:
            body = await response.json()
            assert response.status == 201, body
        product_id, sku = body["product"]["id"], body["product"]["variants"][0]["id"]
        show = {"title": "Open-loop show", "lineup": [product_id]}
        async with session.post(f"{url}/api/streams", json=show, headers=auth) as response:
            body = await response.json()
            assert response.status == 201, body
        stream = body["stream"]["id"]
        pin = {"product_id": product_id, "sku_id": sku}
        async with session.post(f"{url}/api/streams/{stream}/pin", json=pin, headers=auth) as r:
            assert r.status == 201, await r.text()
        return int(sku), int(stream)


def autocannon(url: str, connections: int, seconds: int, **request: Any) -> dict[str, Any]:
    """One autocannon run (``bench/openloop.mjs``); returns its RESULT line, parsed."""
    args = {"url": url, "connections": connections, "seconds": seconds, **request}
    out = subprocess.run(
        ["node", str(ROOT / "bench" / "openloop.mjs"), json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    result["rate"] = result["answered"] / max(result["seconds"], 1e-9)
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(result: dict[str, Any]) -> dict[str, float]:
    """Rate, and p50/p99 (ms) of every answer, of the winners (201) and of the refusals (409)."""
    statuses: dict[str, list[float]] = result["statuses"]
    every = [t for times in statuses.values() for t in times]
    won, refused = statuses.get("201", []), statuses.get("409", [])
    return {
        "rate": result["rate"],
        "p50": percentile(every, 50),
        "p99": percentile(every, 99),
        "won": len(won),
        "won_p50": percentile(won, 50),
        "won_p99": percentile(won, 99),
        "refused": len(refused),
        "refused_p99": percentile(refused, 99),
        "other": len(every) - len(won) - len(refused),
        "errors": result["errors"] + result["timeouts"],
        "unsent": result.get("unsent", 0),
        "opened": result.get("opened", 0),
    }


def one_round(url: str, args: argparse.Namespace, tokens: Path) -> dict[str, dict[str, float]]:
    healthz = autocannon(url, args.connections, args.seconds, path="/healthz")
    buy = {"method": "POST", "path": "/api/purchases", "tokens": str(tokens)}
    sku = asyncio.run(seed(url, args.units))
    rush = autocannon(
        url, args.connections, args.seconds, body=BUY_BODY % sku, run=uuid.uuid4().hex[:8], **buy
    )
    sku, stream = asyncio.run(seed_pinned(url, args.units))
    rate = max(1, int(healthz["rate"] * args.load))
    paced = autocannon(
        url,
        args.connections,
        args.seconds,
        rate=rate,
        body=STREAM_BUY_BODY % (sku, stream),
        run=uuid.uuid4().hex[:8],
        **buy,
    )
    return {
        "healthz": {"rate": healthz["rate"]},
        "rush": summary(rush),
        "open": {**summary(paced), "offered": rate},
    }


def median(rounds: list[dict[str, dict[str, float]]], part: str, key: str) -> float:
    return statistics.median(r[part][key] for r in rounds)


def report(rounds: list[dict[str, dict[str, float]]], args: argparse.Namespace) -> None:
    healthz = median(rounds, "healthz", "rate")

    def m(part: str, key: str) -> float:
        return median(rounds, part, key)

    print(f"\nmedians of {len(rounds)} rounds of {args.seconds} s, {args.connections} connections")
    print(f"  /healthz answers/s               {healthz:8.0f}")
    print(
        f"  rush attempts/s (closed loop)    {m('rush', 'rate'):8.0f}   "
        f"x{m('rush', 'rate') / healthz:.2f} of /healthz   p50 {m('rush', 'p50'):.1f} ms   "
        f"p99 {m('rush', 'p99'):.1f} ms   won {m('rush', 'won'):.0f}"
    )
    print(
        f"  open loop at {args.load:.2f}x /healthz       offered {m('open', 'offered'):.0f}/s, "
        f"answered {m('open', 'rate'):.0f}/s"
    )
    print(
        f"    every answer                   p50 {m('open', 'p50'):.1f} ms   "
        f"p99 {m('open', 'p99'):.1f} ms"
    )
    print(
        f"    winners' ack (201)             p50 {m('open', 'won_p50'):.1f} ms   "
        f"p99 {m('open', 'won_p99'):.1f} ms   ({m('open', 'won'):.0f} a round)"
    )
    print(
        f"    refusals (409)                 p99 {m('open', 'refused_p99'):.1f} ms   "
        f"({m('open', 'refused'):.0f} a round)"
    )
    others = sum(r["open"]["other"] + r["rush"]["other"] for r in rounds)
    errors = sum(r["open"]["errors"] + r["rush"]["errors"] for r in rounds)
    unsent = sum(r["open"]["unsent"] for r in rounds)
    opened = sum(r["open"]["opened"] for r in rounds)
    print(
        f"  other statuses {others:.0f}, socket errors/timeouts {errors:.0f}, open-loop "
        f"arrivals not sent for want of a free connection {unsent:.0f}, connections opened "
        f"while measuring {opened:.0f} (all rounds; the {args.connections} are opened first)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=KINDS, default="sqlite")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--buyers", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--load", type=float, default=0.5, help="arrival rate / the /healthz rate")
    args = parser.parse_args()
    if shutil.which("node") is None or not (ROOT / "node_modules" / "autocannon").is_dir():
        print("bench/openloop.py needs Node.js and autocannon: npm ci", file=sys.stderr)
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

        tokens_file = work / "tokens.txt"
        tokens_file.write_text("\n".join(asyncio.run(prepare_db())) + "\n")
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": f"bench{uuid.uuid4().hex[:6]}",
            "DATA_DIR": str(work),
            "AUTO_MIGRATE": "0",
            "MAX_UNPAID_PER_SKU": "10000",
            "MAX_UNPAID_PER_BUYER": "100000",
        }
        server = ServerProcess(env, work / "server.log")
        try:
            server.wait_ready()
            db = "PostgreSQL" if "postgres" in database_url else "SQLite"
            print(f"open-loop buy bench: 1 server process, {db}, autocannon")
            print(
                f"  {os.cpu_count()} CPUs shared by autocannon, the server and Redis; "
                f"{background:.2f} cores busy before the start"
            )
            warm = asyncio.run(seed(server.url, 10))
            autocannon(
                server.url,
                args.connections,
                2,
                method="POST",
                path="/api/purchases",
                tokens=str(tokens_file),
                body=BUY_BODY % warm,
                run=uuid.uuid4().hex[:8],
            )
            rounds = [one_round(server.url, args, tokens_file) for _ in range(args.rounds)]
            report(rounds, args)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
