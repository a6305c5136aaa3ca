"""Linux VPN interfaces (agent.probes.linux.vpn) on what real machines printed for them.

The probe reads psutil's interface list and /sys/class/net; these tests build both from a
recorded `ip addr` or `ifconfig` (tests/fixtures/linux/README.md, "interfaces/"), so that the
names, flags and link types are the ones a real client left, not ones a test made up. `ip
addr` names the kernel's link type (`link/ipip` is ARPHRD_TUNNEL, 768, in iproute2's
lib/ll_types.c); that number is what /sys/class/net/<name>/type holds."""

from __future__ import annotations

import re

from devposture.agent.host import NetInterface
from devposture.agent.probes.linux import vpn
from devposture.agent.probes.outcome import Probe
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost, fixture_text
from tests.agent.test_probes_linux import run

# iproute2's names for the link types in these recordings (lib/ll_types.c).
_LINK_TYPES = {"loopback": 772, "ether": 1, "ipip": 768, "tunnel6": 769, "none": 65534}
_IP_ADDR_HEADER = re.compile(
    r"^\d+: (?P<name>[^:@]+)(?:@\S+)?: <(?P<flags>[^>]*)> mtu (?P<mtu>\d+)"
)
_IP_ADDR_LINK = re.compile(r"^\s+link/(?P<type>\S+)")


def host_from_ip_addr(relative: str) -> ReplayHost:
    """A host whose interfaces and sysfs link types are the ones `ip addr` printed."""
    host = ReplayHost()
    name = ""
    for line in fixture_text(relative).splitlines():
        if header := _IP_ADDR_HEADER.match(line):
            name = header["name"]
            flags = tuple(f.lower() for f in header["flags"].split(",") if f)
            host.interfaces.append(NetInterface(name, "up" in flags, int(header["mtu"]), flags))
        elif link := _IP_ADDR_LINK.match(line):
            host.files[f"/sys/class/net/{name}/type"] = f"{_LINK_TYPES[link['type']]}\n".encode()
    return host


_IFCONFIG_HEADER = re.compile(r"^(?P<name>\S+)\s+Link encap:")
_IFCONFIG_FLAGS = re.compile(r"^\s+(?P<flags>(?:[A-Z]+ )+) MTU:(?P<mtu>\d+)")


def interfaces_from_ifconfig(relative: str) -> list[NetInterface]:
    """The interfaces of a net-tools/busybox `ifconfig`. Its "Link encap" is no sysfs link
    type (busybox calls every type it has no name for UNSPEC), so none is given."""
    found: list[NetInterface] = []
    name = ""
    for line in fixture_text(relative).splitlines():
        if header := _IFCONFIG_HEADER.match(line):
            name = header["name"]
        elif flags_line := _IFCONFIG_FLAGS.match(line):
            flags = tuple(f.lower() for f in flags_line["flags"].split())
            found.append(NetInterface(name, "up" in flags, int(flags_line["mtu"]), flags))
    return found


def vpn_fact(host: ReplayHost, probe: Probe = vpn.probe) -> pb.VpnFact:
    """The VPN fact a probe (Linux's unless told) makes of the host, which must hold no error."""
    outcome = run(probe, pb.FACT_VPN, host)
    assert isinstance(outcome.fact, pb.VpnFact) and outcome.errors == []
    return outcome.fact


def test_the_kernels_ipip_device_tunl0_is_no_vpn() -> None:
    # A real container (Sangfor EasyConnect's, before it connected) with the ipip module
    # loaded: the kernel gives every network namespace the IP-in-IP fallback device tunl0,
    # which shares OpenVPN's "tun" prefix. It was listed as a VPN of kind "tun" (down here;
    # up on a Calico node, where IP-in-IP carries the pods' traffic unencrypted, it made
    # public Wi-Fi pass). ip6tnl0 and eth0 are no VPN either.
    host = host_from_ip_addr(
        "interfaces/ip-addr-easyconnect-container-tunl0-docker-easyconnect-175.txt"
    )
    assert [i.name for i in host.interfaces] == ["lo", "tunl0", "ip6tnl0", "eth0"]
    assert host.files["/sys/class/net/tunl0/type"] == b"768\n"
    fact = vpn_fact(host)
    assert not fact.active and [i.name for i in fact.interfaces] == []


def test_sangfor_easyconnect_s_tun0_on_linux_is_an_active_vpn() -> None:
    # EasyConnect on Linux connected: tun0 with its address and UP, POINTOPOINT, RUNNING.
    interfaces = interfaces_from_ifconfig(
        "interfaces/busybox-ifconfig-easyconnect-tun0-connected-docker-easyconnect-97.txt"
    )
    assert [i.name for i in interfaces] == ["eth0", "lo", "tun0"]
    fact = vpn_fact(ReplayHost(interfaces=interfaces))
    assert fact.active and [(i.name, i.kind, i.up) for i in fact.interfaces] == [
        ("tun0", "tun", True)
    ]


def test_a_ppp_link_up_is_said_and_not_counted_as_a_vpn() -> None:
    # A real ppp0 (a PPTP server's end of its VPN, UP POINTOPOINT RUNNING with an address):
    # pppd makes the same interface for a PPPoE dial-up or a 3G modem, which are no VPN, and
    # nothing psutil or /sys/class/net shows tells them apart. Counted as a VPN, a PC on PPPoE
    # passed public Wi-Fi; with no pppd found that owns it (the forum post showed no process),
    # it is said as the "ppp" source's error and the session reads UNKNOWN (more cases in
    # test_vpn_linux_ppp.py).
    interfaces = interfaces_from_ifconfig("interfaces/ifconfig-pptpd-ppp0-ubuntu-forums.txt")
    assert [(i.name, i.is_up) for i in interfaces] == [
        ("enp1s0", True), ("lo", True), ("ppp0", True)
    ]  # fmt: skip
    outcome = run(vpn.probe, pb.FACT_VPN, ReplayHost(interfaces=interfaces))
    assert isinstance(outcome.fact, pb.VpnFact)
    assert not outcome.fact.active and list(outcome.fact.interfaces) == []
    assert [(e.source, e.code) for e in outcome.errors] == [("ppp", pb.PROBE_ERROR_CODE_NO_SOURCE)]
    assert outcome.errors[0].message.startswith("PPP link(s) ppp0 up with no pppd found")


def test_a_ppp_link_down_is_no_vpn_and_nothing_to_say() -> None:
    # The same ppp0 once pppd has taken it down (its flags without UP and RUNNING).
    ppp0 = interfaces_from_ifconfig("interfaces/ifconfig-pptpd-ppp0-ubuntu-forums.txt")[2]
    down = NetInterface(ppp0.name, False, ppp0.mtu, ("pointopoint", "noarp", "multicast"))
    outcome = run(vpn.probe, pb.FACT_VPN, ReplayHost(interfaces=[down]))
    assert isinstance(outcome.fact, pb.VpnFact) and outcome.errors == []
    assert not outcome.fact.active and list(outcome.fact.interfaces) == []
