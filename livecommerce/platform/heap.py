"""The collector's settings for a serving process, set once its app has started.

Under a crowd of buy taps the cyclic garbage collector was the largest single cost of a request
(14% of the rush on SQLite, 20% on PostgreSQL): each request allocates a few hundred objects,
so a young collection runs every few requests, and every so often a full one walks the whole
heap, hundreds of thousands of long-lived objects (modules, SQLAlchemy's and pydantic's
structures, caches) that will never be garbage. Freezing what exists once the app has started
takes those out of every later collection; a larger first threshold makes young collections
rarer (each then walks more, but the per-object cost is the same and the fixed cost is paid
less often). Reference counting still frees almost everything at once; only cycles wait.
"""

from __future__ import annotations

import gc

# Allocations (net of frees) between young collections; CPython's default is 700.
YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Collect once, freeze the survivors (the app as started) and raise the first threshold.

    Called by the serving process itself after start-up (never by a library or a test's app:
    it changes the whole interpreter)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
