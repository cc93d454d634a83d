"""ICE settings for the relay's peer connections: host addresses, and STUN/TURN servers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc import RTCConfiguration, RTCIceServer

from livecommerce.iceurls import check_host_addresses, parse_server_url
from livecommerce.media import aiortcseam

if TYPE_CHECKING:
    from livecommerce.config import Settings


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
        check_host_addresses(self.hosts)
        for url in self.servers:
            parse_server_url(url)  # raises on a malformed URL

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
    server = parse_server_url(url)
    return RTCIceServer(urls=server.url, username=server.username, credential=server.credential)
