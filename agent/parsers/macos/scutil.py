"""`scutil --nc list`: VPN services configured in System Settings and their state.

    Available network connection services in the current set (*=enabled):
    * (Disconnected)   E3A8F336-... PPP --> L2TP       "My VPN"      [PPP:L2TP]
The bracket holds the kind ("PPP:L2TP", "IPSec", "VPN:com.wireguard.macos"); the quoted
name is the service's display name. The header alone means no service is configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_HEADER = "Available network connection services"
_SERVICE = re.compile(
    r"^(?P<enabled>\*)?\s*\((?P<status>[^)]*)\)\s+(?P<id>\S+)\s+(?P<type>.*?)\s+"
    r"\"(?P<name>.*)\"\s+\[(?P<kind>[^\]]+)\]\s*$"
)


@dataclass(frozen=True)
class VpnService:
    name: str
    status: str  # "Connected", "Disconnected", "Connecting", ...
    kind: str  # the bracket, lower case: "ppp:l2tp", "ipsec", "vpn:com.wireguard.macos"
    enabled: bool

    @property
    def connected(self) -> bool:
        return self.status == "Connected"


def parse_nc_list(text: str) -> list[VpnService]:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith(_HEADER):
        raise ParseError("scutil --nc list: no 'Available network connection services' header")
    services: list[VpnService] = []
    for line in lines[1:]:
        match = _SERVICE.match(line.strip())
        if not match:
            raise ParseError("scutil --nc list: a service line has an unknown shape")
        services.append(
            VpnService(
                name=match["name"],
                status=match["status"].strip(),
                kind=match["kind"].strip().lower(),
                enabled=bool(match["enabled"]),
            )
        )
    return services
