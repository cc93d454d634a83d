"""ICE settings for the relay's peer connections: host addresses, and STUN/TURN servers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer

from livecommerce.config import Settings
from livecommerce.iceurls import check_host_addresses, parse_server_url
from livecommerce.media.rtc import aiortcseam


@dataclass(frozen=True)
class IceConfig:
    """Where the relay's peer connections gather ICE candidates.

    ``hosts``: the only IP addresses to offer host candidates on; empty means every non-loopback
    interface (aioice's default). ``servers``: STUN/TURN URLs; TURN credentials go in the URL
    (``turn:user:password@host:3478?transport=udp``). There is no default server: with none
    configured, no STUN query ever leaves the machine. ``announced``: behind 1:1 NAT (a cloud
    VM), the public address to put in answers instead of the local one. The settings check the
    same rules (:mod:`livecommerce.iceurls`).
    """

    hosts: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    announced: str = ""

    def __post_init__(self) -> None:
        check_host_addresses(self.hosts)  # raises on anything but an IP address
        for url in self.servers:
            parse_server_url(url)  # raises on a malformed URL
        if self.announced:
            check_host_addresses((self.announced,))

    @classmethod
    def from_settings(cls, settings: Settings) -> IceConfig:
        return cls(
            hosts=settings.ice_hosts,
            servers=settings.ice_servers,
            announced=settings.ice_announced_address,
        )

    def rtc_configuration(self) -> RTCConfiguration:
        """An RTCConfiguration with an explicit server list: aiortc's default is Google's STUN."""
        return RTCConfiguration(iceServers=[_ice_server(url) for url in self.servers])

    def apply_host_addresses(self) -> None:
        """Make every peer connection in this process offer host candidates on :attr:`hosts`."""
        aiortcseam.pin_host_addresses(self.hosts)

    def reachable(self, offer_sdp: str) -> str:
        """The offer without the candidates we must not try: when every ICE host is a loopback
        address, only its loopback candidates are kept.

        The others cannot be reached from loopback anyway, and trying would send traffic off the
        machine (an mDNS ``.local`` name would even be looked up by multicast). Tests and
        benches run so.
        """
        if not self.hosts or not all(ipaddress.ip_address(h).is_loopback for h in self.hosts):
            return offer_sdp
        kept = []
        for line in offer_sdp.splitlines():
            if line.startswith("a=candidate:"):
                parts = line.split()
                try:
                    if not ipaddress.ip_address(parts[4]).is_loopback:
                        continue
                except (IndexError, ValueError):
                    continue
            kept.append(line)
        return "\r\n".join(kept) + "\r\n"

    def announce(self, answer_sdp: str) -> str:
        """The answer with :attr:`announced` in place of the local address, if one is set.

        The relay listens on its local address; peers send to the public one, which the NAT
        maps back, and our replies go out through the same mapping.
        """
        address = self.announced
        if not address:
            return answer_sdp
        lines = []
        for line in answer_sdp.splitlines():
            parts = line.split()
            if line.startswith("a=candidate:") and len(parts) > 7 and parts[7] == "host":
                parts[4] = address
                line = " ".join(parts)
            elif line.startswith("c=IN IP"):
                line = f"c=IN IP{6 if ':' in address else 4} {address}"
            lines.append(line)
        return "\r\n".join(lines) + "\r\n"


def _ice_server(url: str) -> RTCIceServer:
    server = parse_server_url(url)
    return RTCIceServer(urls=server.url, username=server.username, credential=server.credential)
