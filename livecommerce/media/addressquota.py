"""A cap on the media sessions one client address holds at once on this process."""

from __future__ import annotations

from collections import Counter


class TooManySessions(Exception):
    """This address already holds as many sessions as allowed."""

    def __init__(self, address: str, limit: int) -> None:
        super().__init__(f"{address} holds {limit} media sessions already")
        self.address = address
        self.limit = limit


class AddressQuota:
    """Counts sessions per client address; :meth:`take` refuses the one over ``limit``.

    A slot is taken before the (costly) negotiation starts, so concurrent requests from one
    address cannot all slip under the cap, and given back exactly once when the session ends.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the limit must be at least 1")
        self.limit = limit
        self._held: Counter[str] = Counter()

    def held(self, address: str) -> int:
        return self._held[address]

    def take(self, address: str) -> None:
        if self._held[address] >= self.limit:
            raise TooManySessions(address, self.limit)
        self._held[address] += 1

    def give_back(self, address: str) -> None:
        self._held[address] -= 1
        if self._held[address] <= 0:
            del self._held[address]
