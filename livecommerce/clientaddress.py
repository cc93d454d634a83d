"""Who is on the other end of a request: the peer, or the client a trusted proxy names.

Per-address limits must count people, not the proxy in front of them; but ``X-Forwarded-For``
is whatever the client wrote, so it is believed only when the peer is a listed proxy, and then
only from the right: the first address, from the end, that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from livecommerce.appkeys import SETTINGS

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: web.Request) -> str:
    """The client's IP address as text (``"unknown"`` when the transport has none)."""
    peer = request.remote or "unknown"
    networks = _networks(request.app[SETTINGS].trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    for hop in reversed(hops):
        if not hop:
            continue
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from the client: count it against the proxy's hop
    return peer
