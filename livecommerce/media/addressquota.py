"""A cap on the media sessions one client address holds at once on this process."""

from __future__ import annotations

import ipaddress
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
        return self._held[holder(address)]

    def take(self, address: str) -> None:
        key = holder(address)
        if self._held[key] >= self.limit:
            raise TooManySessions(address, self.limit)
        self._held[key] += 1

    def give_back(self, address: str) -> None:
        key = holder(address)
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]


def holder(address: str) -> str:
    """Who an address belongs to: itself for IPv4, its /64 for IPv6 (one subscriber gets a
    whole /64 and could otherwise take the quota once per address in it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # a Unix socket, or no address at all: one holder
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
