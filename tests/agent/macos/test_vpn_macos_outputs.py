"""macOS VPN tunnels (agent.probes.macos.vpn) on what real Macs' `ifconfig` printed.

The probe reads psutil's interface list; these tests build it from a recorded `ifconfig`
(tests/fixtures/macos/README.md, "ifconfig"): each interface's name, UP flag and addresses,
IPv6 ones with their "%interface" scope as psutil gives them."""

from __future__ import annotations

import re

from devposture.agent.host import NetInterface
from devposture.agent.probes.macos import vpn
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import MacReplayHost, fixture, out
from tests.agent.test_vpn_linux_outputs import vpn_fact

_HEADER = re.compile(r"^(?P<name>[a-z]+\d+): flags=[0-9a-f]+<(?P<flags>[^>]*)> mtu (?P<mtu>\d+)")
_ADDRESS = re.compile(r"^\s+inet6? (?P<address>\S+)")


def interfaces_from_ifconfig(relative: str) -> list[NetInterface]:
    found: list[tuple[str, tuple[str, ...], int, list[str]]] = []
    for line in fixture(relative).decode("utf-8").splitlines():
        if header := _HEADER.match(line):
            flags = tuple(f.lower() for f in header["flags"].split(",") if f)
            found.append((header["name"], flags, int(header["mtu"]), []))
        elif address := _ADDRESS.match(line):
            found[-1][3].append(address["address"])
    return [NetInterface(n, "up" in f, mtu, f, tuple(a)) for n, f, mtu, a in found]


def mac_vpn_fact(interfaces: list[NetInterface]) -> pb.VpnFact:
    """The VPN fact of a Mac with these interfaces and no VPN service in System Settings."""
    host = MacReplayHost(interfaces=interfaces).with_tool("scutil")
    host.commands[("scutil", "--nc", "list")] = out("scutil/nc-list-empty-alfred-19.out")
    return vpn_fact(host, vpn.probe)


def test_openvpn_s_tun0_on_a_mac_is_an_active_vpn() -> None:
    # Tunnelblick (OpenVPN) connected through the tun kernel extension: tun0, not utun, with
    # the address the server pushed. Only utun counted, so this Mac read "no VPN" on public
    # Wi-Fi. Clients that bring their own tun driver (EasyConnect's macOS scripts look for
    # tun0) are recognised by the same rule.
    interfaces = interfaces_from_ifconfig(
        "ifconfig/ifconfig-tun0-en0-tunnelblick-connected-ddwrt-2014.out"
    )
    assert [(i.name, i.is_up, i.addresses[:1]) for i in interfaces] == [
        ("tun0", True, ("10.8.0.14",)),
        ("en0", True, ("fe80::7a31:c1ff:feb7:7d52%en0",)),
    ]
    fact = mac_vpn_fact(interfaces)
    assert fact.active and [(i.name, i.kind, i.up) for i in fact.interfaces] == [
        ("tun0", "tun", True)
    ]


def test_a_tun0_with_ipv6_only_is_no_vpn() -> None:
    # Contiki-NG's native target opens tun0 for its simulated IPv6 network: a tunnel, but one
    # that carries no IPv4 route out, as the utun rule asks of every tunnel.
    interfaces = interfaces_from_ifconfig("ifconfig/ifconfig-tun0-ipv6-only-contiki-ng-coap.out")
    assert [(i.name, i.is_up) for i in interfaces] == [("tun0", True)]
    fact = mac_vpn_fact(interfaces)
    assert not fact.active and len(fact.interfaces) == 0


def test_a_ppp_service_is_a_vpn_only_on_l2tp_or_pptp() -> None:
    # scutil --nc list prints a PPP service's bracket as "PPP:<the interface it runs on>"
    # (configd's scutil.tproj/nc.c). The L2TP and PPTP services of the real listings stay
    # VPNs; a PPPoE dial-up on a network card or the Wi-Fi card, and a modem's PPP, are none.
    # No real listing with one was found: these are the brackets the source prints for them.
    for kind in ("ppp:l2tp", "ppp:pptp", "ipsec", "vpn:com.wireguard.macos"):
        assert vpn.is_vpn_service(kind), kind
    for kind in ("ppp:ethernet", "ppp:ieee80211", "ppp:modem", "ppp:bluetooth", "ppp:wwan"):
        assert not vpn.is_vpn_service(kind), kind
