"""Firewall on Windows: each profile's state as in force, and which profiles are active.

The profiles come from `Get-NetFirewallProfile -PolicyStore ActiveStore`: the active store is
the merged policy Windows enforces (local settings plus Group Policy), which is what "in force"
means; the plain cmdlet shows only local settings. Its property names are not translated. When
it cannot be read (no NetSecurity module before Windows 8, PowerShell missing, a failure), the
probe falls back to `netsh advfirewall show allprofiles`, whose labels are localized
(agent.parsers.windows.netsh_firewall). The active profiles are the categories of the connected
networks (`Get-NetConnectionProfile`: Public, Private, DomainAuthenticated).

`enabled` is true only when every active profile's firewall is on, or every profile's when the
active ones are unknown or no network is connected; false when one of those is off.

A profile printed twice alike is reported once (`_as_pb`): the parsers take only the three
profile names, on or off and three inbound actions, so the fact holds at most `MAX_PROFILES`
however many times a tool repeats itself, within the collector's 64. Two different states of
one profile are both kept: the firewall is then on only if both say so.
"""

from __future__ import annotations

from collections.abc import Sequence

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.firewall_profiles import (
    FirewallProfileState,
    parse_active_categories,
    parse_firewall_profiles,
)
from devposture.agent.parsers.windows.netsh_firewall import NetshProfile, parse_allprofiles
from devposture.agent.probes.commands import (
    CONNECTION_PROFILES,
    FIREWALL_PROFILES,
    NETSH_FIREWALL,
)
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, source_error
from devposture.agent.probes.windows.commands import run_text
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_FIREWALL
_PS_SOURCE = "Get-NetFirewallProfile"
_NETSH_SOURCE = "netsh advfirewall"
# domain, private, public; on or off; drop, allow or not configured ("").
MAX_PROFILES = 3 * 2 * 3


def _as_pb(
    profiles: Sequence[FirewallProfileState | NetshProfile], source: str
) -> list[pb.FirewallProfile]:
    distinct = dict.fromkeys((p.name, p.enabled, p.default_inbound_action) for p in profiles)
    return [
        pb.FirewallProfile(
            name=name, enabled=enabled, default_inbound_action=inbound, source=source
        )
        for name, enabled, inbound in distinct
    ]


def _profiles(ctx: ProbeContext, errors: list[pb.ProbeError]) -> list[pb.FirewallProfile]:
    """The cmdlet's profiles, else netsh's; [] when neither could be read."""
    try:
        return _as_pb(parse_firewall_profiles(run_text(ctx, FIREWALL_PROFILES)), _PS_SOURCE)
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, _PS_SOURCE, exc))
    try:
        return _as_pb(parse_allprofiles(run_text(ctx, NETSH_FIREWALL)), _NETSH_SOURCE)
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, _NETSH_SOURCE, exc))
    return []


def firewall_enabled(
    profiles: list[pb.FirewallProfile], active: frozenset[str] | None
) -> bool | None:
    """True when every profile in force is on (every profile, when which ones are in force is
    unknown or none is); None when an active profile's state was not printed."""
    if active and not active <= {p.name for p in profiles}:
        return None
    relevant = [p for p in profiles if not active or p.name in active]
    return all(p.enabled for p in relevant)


def probe(ctx: ProbeContext) -> FactOutcome:
    errors: list[pb.ProbeError] = []
    profiles = _profiles(ctx, errors)
    if not profiles:
        return FactOutcome(None, errors)
    active: frozenset[str] | None = None
    try:
        active = parse_active_categories(run_text(ctx, CONNECTION_PROFILES))
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "Get-NetConnectionProfile", exc))
    if active is not None:
        for profile in profiles:
            profile.active = profile.name in active
    fact = pb.FirewallFact(profiles=profiles)
    enabled = firewall_enabled(profiles, active)
    if enabled is not None:
        fact.enabled = enabled
    return FactOutcome(fact, errors)
