"""ICE settings for the relay's peer connections: host addresses, and STUN/TURN servers."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc import RTCConfiguration, RTCIceServer

from livecommerce.media.rtc import aiortcseam

if TYPE_CHECKING:
    from livecommerce.config import Settings

# stun:host[:port], turn:[user:password@]host[:port][?transport=udp|tcp], and the -s variants.
_SERVER_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):(?:(?P<user>[^:@/?]+):(?P<password>[^@/?]*)@)?"
    r"(?P<host>[^:?/@\[\]]+)(?::(?P<port>\d{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?"
)


@dataclass(frozen=True)
class IceConfig:
    """Where the relay's peer connections gather ICE candidates.

    ``hosts``: the only IP addresses to offer host candidates on; empty means every non-loopback
    interface (aioice's default). ``servers``: STUN/TURN URLs; TURN credentials go in the URL
    (``turn:user:password@host:3478?transport=udp``). There is no default server: with none
    configured, no STUN query ever leaves the machine.
    """

    hosts: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for host in self.hosts:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"ICE host address is not an IP address: {host!r}") from None
        for url in self.servers:
            _ice_server(url)  # raises on a malformed URL

    @classmethod
    def from_settings(cls, settings: Settings) -> IceConfig:
        return cls(hosts=settings.ice_hosts, servers=settings.ice_servers)

    def rtc_configuration(self) -> RTCConfiguration:
        """An RTCConfiguration with an explicit server list: aiortc's default is Google's STUN."""
        return RTCConfiguration(iceServers=[_ice_server(url) for url in self.servers])

    def apply_host_addresses(self) -> None:
        """Make every peer connection in this process offer host candidates on :attr:`hosts`."""
        aiortcseam.pin_host_addresses(self.hosts)


def _ice_server(url: str) -> RTCIceServer:
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
    return RTCIceServer(urls=bare, username=user, credential=password)
