"""The one module that reaches into localstripe's internals (the embedded Stripe emulator).

localstripe keeps every object in one module-level dict, ``localstripe.resources.store`` (a
``Store``), and pickles the whole of it to a fixed ``/tmp/localstripe.pickle`` on every write
(``Store.dump_to_disk``, called by ``__setitem__``, ``__delitem__`` and a middleware after each
POST/PUT/DELETE); it reads that file back only from its own command line. So every emulator on a
host wrote the same file, and ours never read it: a restart forgot every customer and card.

:func:`keep_store_in` replaces ``Store.dump_to_disk`` process-wide by "mark dirty"; the emulator
process then calls :meth:`StoreFile.flush` on a timer and at exit, which writes the pickle to a
file under ``DATA_DIR`` atomically (temporary file, then rename), and :meth:`StoreFile.load`
reads it back at start. Checked by :func:`check_localstripe` against localstripe 1.15.x only.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import localstripe
import localstripe.resources

LOCALSTRIPE_VERSIONS = (">=1.15", "<1.16")
"""The localstripe releases whose internals this module was checked against (1.15.x)."""

_VERIFIED_MINOR = "1.15."


def check_localstripe() -> None:
    """Fail loudly if localstripe is not a release whose store this module knows."""
    version = str(getattr(localstripe, "__version__", ""))
    if not version.startswith(_VERIFIED_MINOR):
        raise RuntimeError(
            f"localstripe {version} is not a checked release {LOCALSTRIPE_VERSIONS}: "
            "see livecommerce/payments/localstripeseam.py"
        )
    store_class = getattr(localstripe.resources, "Store", None)
    store = getattr(localstripe.resources, "store", None)
    if store_class is None or not isinstance(store, dict) or not isinstance(store, store_class):
        raise RuntimeError("localstripe.resources.store is no longer a Store dict")
    if not callable(getattr(store_class, "dump_to_disk", None)):
        raise RuntimeError("localstripe's Store.dump_to_disk is gone")


class StoreFile:
    """localstripe's store, kept in one file of ours."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dirty = False

    @property
    def _store(self) -> dict[str, Any]:
        store: dict[str, Any] = localstripe.resources.store
        return store

    def load(self) -> int:
        """Read the store back; returns how many objects it holds (0 for a first start)."""
        try:
            with self.path.open("rb") as file:
                saved = pickle.load(file)  # our own file, under DATA_DIR
        except FileNotFoundError:
            return 0
        # dict's own methods: the Store's would mark it dirty for nothing
        dict.clear(self._store)
        dict.update(self._store, saved)
        return len(saved)

    def flush(self) -> bool:
        """Write the store if it changed since the last write; True if written. Blocking."""
        if not self.dirty:
            return False
        self.dirty = False
        snapshot = dict(self._store)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("wb") as file:
            pickle.dump(snapshot, file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.path)
        return True


def keep_store_in(path: Path) -> StoreFile:
    """Make localstripe's writes mark ``path``'s store dirty instead of writing /tmp."""
    check_localstripe()
    store_file = StoreFile(path)

    def mark_dirty(self: Any) -> None:
        store_file.dirty = True

    localstripe.resources.Store.dump_to_disk = mark_dirty
    return store_file
