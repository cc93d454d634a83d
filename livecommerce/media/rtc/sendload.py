"""How busy sending to viewers keeps this process: what admits one more viewer, or not."""

from __future__ import annotations

import time


class SendLoad:
    """How busy sending to viewers keeps this process: for admitting viewers, or not.

    Fed by every relay's fan-out. One more viewer is refused (:meth:`refusal`) at the hard cap
    ``max_viewers`` (0: none), while frames reach the viewers more than ``lag_s`` after they
    arrived (on average, lately), or when the process's CPU, scaled by one more viewer, would
    exceed ``target`` cores: a single event loop cannot use more than one.
    """

    def __init__(self, max_viewers: int = 0, *, target: float = 0.9, lag_s: float = 0.25):
        self.max_viewers = max_viewers
        self.target = target
        self.lag_s = lag_s
        self.overflows = 0
        self.frames = 0
        self.work_s = 0.0
        self.lag = 0.0
        """Recent time from a video frame's arrival to its last viewer's send (EWMA), s."""
        self._cpu = 0.0
        self._cpu_at = time.monotonic()
        self._cpu_then = time.process_time()

    def frame_sent(self, kind: str, work_s: float, lag_s: float) -> None:
        self.frames += 1
        self.work_s += work_s
        if kind == "video":
            self.lag = 0.9 * self.lag + 0.1 * lag_s
            self._sample_cpu()

    def cpu(self) -> float:
        """The process's recent CPU use, in cores (EWMA over about a second)."""
        self._sample_cpu()
        return self._cpu

    def _sample_cpu(self) -> None:
        now = time.monotonic()
        elapsed = now - self._cpu_at
        if elapsed < 0.25:
            return
        cpu = time.process_time()
        use = (cpu - self._cpu_then) / elapsed
        self._cpu = 0.5 * self._cpu + 0.5 * use
        self._cpu_at, self._cpu_then = now, cpu

    def refusal(self, viewers: int, live: int | None = None) -> str | None:
        """Why a viewer beyond ``viewers`` (this process's now, ``live`` of them being sent
        to already, the others connecting) could not be taken without slowing the others
        down; ``None`` if it can."""
        if self.max_viewers and viewers >= self.max_viewers:
            return f"this process serves its maximum of {self.max_viewers} viewers"
        if self.lag > self.lag_s:
            return f"frames reach this process's viewers {self.lag * 1000:.0f} ms late"
        cpu = self.cpu()
        live = viewers if live is None else live
        # The CPU is what the live viewers cost: those connecting will cost as much.
        if live >= 8 and cpu * (viewers + 1) / live > self.target:
            return f"this process's CPU is {cpu:.0%} busy with its viewers"
        return None
