"""redis-py's connection pool, filled before traffic arrives.

redis-py makes a pool's connections as they are first needed, and each one costs a read of
package metadata (``importlib.metadata``, for its client identity) besides the connect: made in
the middle of a burst, they stall the event loop while buyers wait. Made at start-up, they cost
nothing later.

Filling is an optimisation, not a condition of starting: a Redis slow to accept, or down for a
moment, is logged and the pool opens the rest as they are needed (the health check reports Redis
while it is unreachable).
"""

from __future__ import annotations

import logging

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


async def warm_pool(pool: ConnectionPool, count: int) -> int:
    """Open up to ``count`` connections now (at most the pool's size) and give them back idle.

    Returns how many were opened; stops at the first that fails."""
    taken: list[AbstractConnection] = []
    try:
        for _ in range(min(count, pool.max_connections)):
            taken.append(await pool.get_connection())  # type: ignore[no-untyped-call]
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        log.warning(
            "Redis pool warmed only in part; the rest open as needed",
            extra={"opened": len(taken), "wanted": count, "error": str(exc)},
        )
    finally:
        for connection in taken:
            await pool.release(connection)
    return len(taken)
