"""VPN on macOS: services configured in System Settings (`scutil --nc list`) and tunnels.

Rule for tunnel interfaces: macOS always creates utun0..utun3 (and more) for iCloud Private
Relay, Continuity and Back to My Mac, with IPv6 link-local addresses only, so a utun by its
name proves nothing. A utun counts as a VPN tunnel only when it carries a routable IPv4
address (not 169.254/16): that is what OpenVPN, WireGuard and Tailscale clients assign. The
same rule holds for tun interfaces, which only a third-party tun driver creates (Tunnelblick's,
and VPN clients that ship their own): a real Tunnelblick connection is a tun0 with the address
its server pushed (tests/fixtures/macos/ifconfig), and only utun counted. A tap interface is
not counted: the same driver's Ethernet-level device is also what a virtual machine (QEMU) is
plugged into, and no real VPN's tap on a Mac was found.
Services from scutil count when they are "(Connected)", except PPP services that are no VPN.
`scutil --nc list` lists every connection-oriented service, and a PPP one's bracket is
"[PPP:<the interface it runs on>]" (configd's scutil.tproj/nc.c, nc_print_VPN_service, public
source, index id 1053671162): "PPP:L2TP" and "PPP:PPTP" are VPNs (real listings in
tests/fixtures/macos), while a PPPoE dial-up runs on a network card ("PPP:Ethernet", or the Wi-Fi
card's "PPP:IEEE80211") and a modem's on "Modem", "Bluetooth" or "WWAN": not VPNs, and counted
as one a Mac on PPPoE passed clause 6.3.2 on public Wi-Fi. So a PPP service counts only on L2TP
or PPTP. No real listing with a PPPoE service was found; the rule rests on the source.
No VPN at all is a fact, not an error; scutil missing or failing is an error for its source
while the tunnel rule still runs.
"""

from __future__ import annotations

import ipaddress

from devposture.agent.host import HostError, NetInterface
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.macos.scutil import parse_nc_list
from devposture.agent.probes.commands import SCUTIL_VPNS
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, source_error
from devposture.agent.probes.vpn_room import fitted
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


# Interface name prefixes of tunnels, each the kind it is reported as ("utun" before "tun").
_TUNNELS = ("utun", "tun")


def tunnel_kind(iface: NetInterface) -> str:
    """The kind of VPN tunnel an interface is by the rule in the module docstring ("utun" or
    "tun"), or "" when it is none. Pure, for tests."""
    kind = next((prefix for prefix in _TUNNELS if iface.name.startswith(prefix)), "")
    return kind if kind and _routable_ipv4(iface.addresses) else ""


# The PPP services' interfaces that make a VPN (the bracket's part after "ppp:").
_PPP_VPNS = frozenset({"l2tp", "pptp"})


def is_vpn_service(kind: str) -> bool:
    """Whether a service of this bracket (lower case, "ppp:l2tp") is a VPN: every kind but a
    PPP one on no VPN protocol (a PPPoE dial-up, a modem). Pure, for tests."""
    family, _, carrier = kind.partition(":")
    return family != "ppp" or carrier in _PPP_VPNS


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.VpnFact()
    errors: list[pb.ProbeError] = []
    try:
        result = ctx.host.run(SCUTIL_VPNS, ctx.config.command_timeout)
        for service in parse_nc_list(result.stdout_text()):
            if not is_vpn_service(service.kind):
                continue
            fact.interfaces.add(name=service.name, kind=service.kind, up=service.connected)
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, "scutil", exc))
    try:
        for iface in ctx.host.net_interfaces():
            if kind := tunnel_kind(iface):
                fact.interfaces.add(name=iface.name, kind=kind, up=iface.is_up)
    except HostError as exc:
        errors.append(source_error(FACT, "interfaces", exc))
    fact.active = any(i.up for i in fact.interfaces)
    if len(errors) == 2:
        return FactOutcome(None, errors)
    return FactOutcome(fitted(fact), errors)
