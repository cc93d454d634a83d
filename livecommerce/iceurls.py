"""ICE host addresses and STUN/TURN server URLs, read without aiortc.

Settings check them at start-up (``config`` imports no domain); the media relay turns them into
aiortc's ``RTCIceServer`` (``media/rtc/iceconfig.py``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

# stun:host[:port], turn:[user:password@]host[:port][?transport=udp|tcp], and the -s variants.
_SERVER_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):(?:(?P<user>[^:@/?]+):(?P<password>[^@/?]*)@)?"
    r"(?P<host>[^:?/@\[\]]+)(?::(?P<port>\d{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?"
)


@dataclass(frozen=True)
class IceServerUrl:
    """A STUN or TURN server: its URL without credentials, and the TURN credentials."""

    url: str
    username: str | None = None
    credential: str | None = None


def parse_server_url(url: str) -> IceServerUrl:
    """Read ``url``; ValueError says what is wrong with a malformed one."""
    match = _SERVER_URL.fullmatch(url.strip())
    if match is None:
        raise ValueError(f"not a STUN/TURN URL: {url!r}")
    scheme, user, password = match["scheme"], match["user"], match["password"]
    if scheme.startswith("stun") and (user is not None or match["transport"]):
        raise ValueError(f"a STUN URL takes no credentials or transport: {url!r}")
    if scheme.startswith("turn") and user is None:
        raise ValueError(f"a TURN URL needs user:password@: {url!r}")
    bare = f"{scheme}:{match['host']}"
    if match["port"]:
        bare += f":{match['port']}"
    if match["transport"]:
        bare += f"?transport={match['transport']}"
    return IceServerUrl(bare, user, password)


def check_host_addresses(hosts: Iterable[str]) -> None:
    """ValueError unless every one of ``hosts`` is an IP address."""
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"ICE host address is not an IP address: {host!r}") from None
