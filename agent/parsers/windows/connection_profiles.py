"""`Get-NetConnectionProfile`: the network each connected interface is on, and its category.

One object per connected network, in PowerShell's list format: Name (for Wi-Fi, the SSID,
sometimes with " 2" appended), InterfaceAlias (the adapter's name, which is what
`netsh wlan show interfaces` prints as the interface's name), NetworkCategory (Public,
Private or DomainAuthenticated: the firewall profile in force on it), IPv4Connectivity and
IPv6Connectivity (Disconnected, NoTraffic, Subnet, LocalNetwork, Internet), and on newer
Windows DomainAuthenticationKind. Property names and enum values are never translated; Name
and InterfaceAlias are in the machine's language ("WLAN", "网络 3", "イーサネット 2").

IPv4Connectivity says nothing about a captive portal: "LocalNetwork" is also what an isolated
lab network or a VPN adapter shows (recorded fixtures), so it is kept but never read as one.
The machine prints nothing at all when no network is connected.
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows.listformat import parse_list

CATEGORIES = ("Public", "Private", "DomainAuthenticated")


@dataclass(frozen=True)
class ConnectionProfile:
    name: str
    interface_alias: str
    category: str  # one of CATEGORIES
    ipv4_connectivity: str
    ipv6_connectivity: str


def parse_connection_profiles(text: str) -> list[ConnectionProfile]:
    profiles = []
    for record in parse_list(text):
        category = record.get("NetworkCategory", "")
        if category not in CATEGORIES:
            raise ParseError("Get-NetConnectionProfile: NetworkCategory not understood")
        alias = record.get("InterfaceAlias", "")
        if not alias:
            raise ParseError("Get-NetConnectionProfile: an object without InterfaceAlias")
        profiles.append(
            ConnectionProfile(
                name=record.get("Name", ""),
                interface_alias=alias,
                category=category,
                ipv4_connectivity=record.get("IPv4Connectivity", ""),
                ipv6_connectivity=record.get("IPv6Connectivity", ""),
            )
        )
    return profiles


def categories_by_interface(text: str) -> dict[str, str]:
    """{InterfaceAlias: NetworkCategory} for the connected networks."""
    return {p.interface_alias: p.category for p in parse_connection_profiles(text)}
