"""Who is at the other end of a connection: the peer, or behind trusted proxies the client they
name in ``X-Forwarded-For``.

Only a proxy listed in ``TRUSTED_PROXIES`` is believed; anyone else can write that header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(proxies: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address: walking ``X-Forwarded-For`` from the right (the hops our own
    proxies appended), the first address that is not a trusted proxy. A malformed entry ends the
    walk at the last hop we could trust to have written it."""
    address = peer
    if not forwarded_for or not _trusted(peer, trusted):
        return address
    for hop in reversed(forwarded_for.split(",")[-20:]):
        hop = hop.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address
        address = hop
        if not _trusted(hop, trusted):
            return address
    return address
