"""VPN on macOS: services configured in System Settings (`scutil --nc list`) and utun tunnels.

Rule for utun interfaces: macOS always creates utun0..utun3 (and more) for iCloud Private
Relay, Continuity and Back to My Mac, with IPv6 link-local addresses only, so a utun by its
name proves nothing. A utun counts as a VPN tunnel only when it carries a routable IPv4
address (not 169.254/16): that is what OpenVPN, WireGuard and Tailscale clients assign.
Services from scutil count when they are "(Connected)". No VPN at all is a fact, not an
error; scutil missing or failing is an error for its source while the utun rule still runs.
"""

from __future__ import annotations

import ipaddress

from devposture.agent.host import HostError, NetInterface
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.macos.scutil import parse_nc_list
from devposture.agent.probes.commands import SCUTIL_VPNS
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_VPN


def _routable_ipv4(addresses: tuple[str, ...]) -> bool:
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("/", 1)[0])
        except ValueError:
            continue
        if ip.version == 4 and not ip.is_link_local and not ip.is_loopback:
            return True
    return False


def is_vpn_utun(iface: NetInterface) -> bool:
    """Whether a utun is a VPN tunnel by the rule in the module docstring. Pure, for tests."""
    return iface.name.startswith("utun") and _routable_ipv4(iface.addresses)


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.VpnFact()
    errors: list[pb.ProbeError] = []
    try:
        result = ctx.host.run(SCUTIL_VPNS, ctx.config.command_timeout)
        for service in parse_nc_list(result.stdout_text()):
            fact.interfaces.add(name=service.name, kind=service.kind, up=service.connected)
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "scutil", exc))
    try:
        for iface in ctx.host.net_interfaces():
            if is_vpn_utun(iface):
                fact.interfaces.add(name=iface.name, kind="utun", up=iface.is_up)
    except HostError as exc:
        errors.append(source_error(FACT, "interfaces", exc))
    fact.active = any(i.up for i in fact.interfaces)
    if len(errors) == 2:
        return FactOutcome(None, errors)
    return FactOutcome(fact, errors)
