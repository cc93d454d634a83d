"""Who is on the other end of a request or connection: the peer, or the client a trusted proxy
names in ``X-Forwarded-For``.

Per-address limits must count people, not the proxy in front of them; but ``X-Forwarded-For`` is
whatever the client wrote, so it is believed only when the peer is a proxy listed in
``TRUSTED_PROXIES``, and then only from the right: the first address, walking back from the end,
that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from aiohttp import web

from livecommerce.platform.resources import SETTINGS

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_HOPS = 20


def networks(proxies: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


_cached_networks = lru_cache(maxsize=16)(lambda proxies: networks(proxies))


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def forwarded_client(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address: walking ``X-Forwarded-For`` from the right (the hops our own
    proxies appended), the first address that is not a trusted proxy. A malformed entry ends the
    walk at the last hop we could trust to have written it."""
    address = peer
    if not forwarded_for or not trusted or not _trusted(peer, trusted):
        return address
    for hop in reversed(forwarded_for.split(",")[-_MAX_HOPS:]):
        hop = hop.strip()
        try:
            hop = str(ipaddress.ip_address(hop))
        except ValueError:
            return address
        address = hop
        if not _trusted(hop, trusted):
            return address
    return address


def client_address(request: web.Request) -> str:
    """The client's IP address as text (``"unknown"`` when the transport has none)."""
    peer = request.remote or "unknown"
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", [])) or None
    trusted = _cached_networks(request.app[SETTINGS].trusted_proxies)
    return forwarded_client(peer, forwarded, trusted)
