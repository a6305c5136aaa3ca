"""PowerShell's NetSecurity cmdlets: `Get-NetFirewallProfile` (is each profile's firewall on)
and `Get-NetConnectionProfile` (which profile each connected network is in).

Property names and enum values are not translated, so these read the same on every locale.
DefaultInboundAction "NotConfigured" means this store does not set it (the effective default
comes from elsewhere), so it is reported as "" rather than as the usual Block.
"""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows.connection_profiles import parse_connection_profiles
from devposture.agent.parsers.windows.listformat import parse_bool, parse_list

_INBOUND = {"Block": "drop", "Allow": "allow", "NotConfigured": ""}
_CATEGORIES = {"Public": "public", "Private": "private", "DomainAuthenticated": "domain"}


@dataclass(frozen=True)
class FirewallProfileState:
    name: str  # "domain", "private" or "public"
    enabled: bool
    default_inbound_action: str


def parse_firewall_profiles(text: str) -> list[FirewallProfileState]:
    profiles = []
    for record in parse_list(text):
        name = record.get("Name", "").lower()
        enabled = parse_bool(record, "Enabled")
        if name not in ("domain", "private", "public") or enabled is None:
            raise ParseError("Get-NetFirewallProfile: an object without Name or Enabled")
        inbound = record.get("DefaultInboundAction", "NotConfigured")
        if inbound not in _INBOUND:
            raise ParseError("Get-NetFirewallProfile: DefaultInboundAction not understood")
        profiles.append(FirewallProfileState(name, enabled, _INBOUND[inbound]))
    if not profiles:
        raise ParseError("Get-NetFirewallProfile: no profile printed")
    return profiles


def parse_active_categories(text: str) -> frozenset[str]:
    """The firewall profiles in force: the categories of the connected networks. Empty when
    the machine has no connected network (the cmdlet then prints nothing)."""
    return frozenset(_CATEGORIES[p.category] for p in parse_connection_profiles(text))
