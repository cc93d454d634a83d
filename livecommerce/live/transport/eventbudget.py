"""How many events one socket may send: a token bucket, and a hard line for abusers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

ABUSE_WINDOW_S = 10.0


class Verdict(Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # answered with a rate_limited ack
    DROP = "drop"  # past the abuse limit: the socket is disconnected


@dataclass(frozen=True)
class SocketLimits:
    """``rate`` events a second with bursts of ``burst``; more than ``abuse`` refused events
    within ``ABUSE_WINDOW_S`` is no client of ours. ``per_address``: sockets of one client
    address on this process."""

    rate: float = 10.0
    burst: int = 30
    abuse: int = 300
    per_address: int = 20

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.abuse < 1 or self.per_address < 1:
            raise ValueError("socket limits are positive")


class EventBudget:
    """One socket's budget; ``take`` is called once per event, with a monotonic clock."""

    def __init__(self, limits: SocketLimits, now: float) -> None:
        self._limits = limits
        self._tokens = float(limits.burst)
        self._at = now
        self._refused = 0
        self._window_start = now

    def take(self, now: float) -> Verdict:
        limits = self._limits
        self._tokens = min(float(limits.burst), self._tokens + (now - self._at) * limits.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return Verdict.ALLOW
        if now - self._window_start > ABUSE_WINDOW_S:
            self._window_start, self._refused = now, 0
        self._refused += 1
        return Verdict.DROP if self._refused > limits.abuse else Verdict.REFUSE

    def retry_after_ms(self) -> int:
        """When the next event would be allowed."""
        return max(1, int((1 - self._tokens) / self._limits.rate * 1000) + 1)
