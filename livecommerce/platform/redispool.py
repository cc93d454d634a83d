"""redis-py's connection pool, filled before traffic arrives.

redis-py makes a pool's connections as they are first needed, and each one costs a read of
package metadata (``importlib.metadata``, for its client identity) besides the connect: made in
the middle of a burst, they stall the event loop while buyers wait. Made at start-up, they cost
nothing later.
"""

from __future__ import annotations

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection


async def warm_pool(pool: ConnectionPool, count: int) -> None:
    """Open ``count`` connections now (at most the pool's size) and give them back idle."""
    taken: list[AbstractConnection] = []
    try:
        for _ in range(min(count, pool.max_connections)):
            taken.append(await pool.get_connection())  # type: ignore[no-untyped-call]
    finally:
        for connection in taken:
            await pool.release(connection)
