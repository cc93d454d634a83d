"""What every bench measures with: CPU and memory from /proc, percentiles, the machine's load.

Also the figures table the benches print beside their baseline, py-spy's collapsed stacks summed
by what they do, and the open-files limit a bench with thousands of sockets needs. Only the
standard library: the relay bench's spawned children import this module too.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

SHARED_CORES = 0.25
"""Cores busy outside the bench above which its figures are marked as taken on a shared machine."""


# -- /proc --------------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_s() -> float:
    """CPU seconds all processors spent busy since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS), in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Meter:
    """CPU over a window, in cores: the server's, the bench's own processes', everyone else's.

    The machine may be shared: "other" is what processes outside the bench (Redis included)
    burnt meanwhile, so a figure taken beside a busy neighbour can be told apart.
    """

    def __init__(self, server: int | Sequence[int], helpers: list[int]) -> None:
        """``server``: its pid, or the pids of its processes (a master and its workers)."""
        self.servers = [server] if isinstance(server, int) else list(server)
        self.helpers = [*helpers, os.getpid()]
        self._start = self._now()

    def _now(self) -> tuple[float, float, float, float]:
        helpers = 0.0
        for pid in self.helpers:
            with contextlib.suppress(OSError):
                helpers += cpu_s(pid)
        server = 0.0
        for pid in self.servers:
            with contextlib.suppress(OSError):  # a worker that just left
                server += cpu_s(pid)
        return time.monotonic(), server, helpers, busy_s()

    def restart(self) -> None:
        self._start = self._now()

    def cores(self) -> tuple[float, float, float, float]:
        """(wall seconds, server cores, bench helpers' cores, other processes' cores)."""
        end = self._now()
        wall = end[0] - self._start[0]
        server, helpers, total = (end[i] - self._start[i] for i in (1, 2, 3))
        return wall, server / wall, helpers / wall, max(0.0, total - server - helpers) / wall


# -- the machine --------------------------------------------------------------------------------


def background_cores(seconds: float) -> float:
    """Cores the rest of the machine keeps busy before the bench starts; warns if it is shared."""
    before = busy_s()
    time.sleep(seconds)
    cores = (busy_s() - before) / seconds
    if machine_shared(cores):
        print(f"  warning: {cores:.2f} cores busy before the start", file=sys.stderr)
    return cores


def machine_shared(other_cores: float) -> bool:
    """Whether processes outside the bench were busy enough to make its figures pessimistic."""
    return other_cores > SHARED_CORES


def raise_fd_limit(need: int) -> None:
    """Allow ``need`` open files (root may raise the hard limit too); say so when it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, need)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if hard < need:
        print(f"  open files limited to {hard}; {need} wanted", file=sys.stderr)


# -- figures ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least ``p`` % of the values at or below it.

    NaN values (a figure a run could not take) are left out; NaN if none is left.
    """
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def inverse(x: float) -> float:
    return 1 / x if x > 0 else math.nan


def goal_mark(met: bool) -> str:
    return "met   " if met else "NOT met"


class FiguresTable:
    """Prints rows of figures, one column each, and optionally the first column over the second.

    A figure is a number formatted with the row's format, "-" for NaN, or a string as it is.
    """

    def __init__(self, label_width: int, widths: Sequence[int], ratio_width: int = 11) -> None:
        self.label_width = label_width
        self.widths = list(widths)
        self.ratio_width = ratio_width

    def header(self, names: Sequence[str], ratio: str | None = None) -> None:
        cells = "".join(f"{name:>{width}}" for name, width in zip(names, self.widths, strict=True))
        last = f"{ratio:>{self.ratio_width}}" if ratio else ""
        print(f"  {'':<{self.label_width}}{cells}{last}")

    def row(self, label: str, values: Sequence[float | str], fmt: str, ratio: bool = False) -> None:
        """One row; with ``ratio``, a last column: the first figure over the second."""
        cells = "".join(
            f"{_cell(value, fmt):>{width}}"
            for value, width in zip(values, self.widths, strict=True)
        )
        last = ""
        if ratio:
            first, second = values[0], values[1]
            assert not isinstance(first, str) and not isinstance(second, str)
            quotient = first / second if second else math.nan
            if not math.isnan(quotient):
                last = f"{quotient:{self.ratio_width}.2f}"
        print(f"  {label:<{self.label_width}}{cells}{last}")


def _cell(value: float | str, fmt: str) -> str:
    if isinstance(value, str):
        return value
    return "-" if math.isnan(value) else format(value, fmt)


# -- py-spy -------------------------------------------------------------------------------------

IDLE_LEAVES = (
    "_connection_worker_thread (aiosqlite/core.py",
    "_worker (concurrent/futures/thread.py",
)
"""Leaf frames (their start) of threads that wait for work: SQLite's and the default executor's."""

ProfileBuckets = tuple[tuple[str, tuple[str, ...]], ...]
"""(name, parts): the first rule whose every part is in a sample's stack names the sample.

A rule whose name starts with "event loop" is matched against the leaf frame only.
"""


def profile_summary(
    path: Path, buckets: ProfileBuckets, idle_leaves: tuple[str, ...] = IDLE_LEAVES
) -> list[tuple[str, float]]:
    """Share of py-spy's raw (collapsed) samples per bucket, largest first.

    Samples whose leaf frame starts with one of ``idle_leaves`` are left out: threads blocked
    there are idle, though py-spy may count them as active.
    """
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        if leaf.startswith(idle_leaves):
            continue
        for name, parts in buckets:
            where = leaf if name.startswith("event loop") else stack
            if all(part in where for part in parts):
                counts[name] += int(n)
                break
        else:
            counts["other"] += int(n)
    total = sum(counts.values()) or 1
    return [(name, n / total) for name, n in counts.most_common()]
