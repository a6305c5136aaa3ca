"""VPN interfaces on Linux, from psutil's interface list and /sys/class/net.

An interface is a VPN when its name says so (tun*, wg*, ...), when the kernel marks it a
WireGuard device (uevent DEVTYPE=wireguard) or a tun/tap device (tun_flags exists), or when its
link type is one only tunnels use (ARPHRD_NONE 65534, ARPHRD_PPP 512); never when it is a port
of a bridge or an Ethernet-level tap device without a VPN's name (a virtual machine's), and
never the kernel's IP-in-IP device tunl0, whose name starts like OpenVPN's. It is up when it is
administratively up and, where psutil reports flags, RUNNING: a tun device nobody has opened is
UP but not RUNNING, and carries no traffic. No VPN interface at all is a fact, not an error.

A PPP link (ppp*, or the link type ARPHRD_PPP) is no VPN by itself: pppd makes the same ppp0
for a PPTP or L2TP VPN (pptp, xl2tpd, NetworkManager's plugins, openfortivpn) as for a dial-up
broadband connection over PPPoE (pppoeconf, rp-pppoe, NetworkManager's "pppoe" type), which
Chinese homes dial themselves, or for a 3G modem, and nothing in psutil's list or
/sys/class/net tells them apart. A PPP link that is up is therefore judged by the pppd that
owns it (`ppp_links`: its options, the peer file they call, the program that started it): a
VPN's is listed with its kind (pptp, l2tp, openfortivpn), a dial-up's is left out, and one
that cannot be told (no pppd found, options unreadable, or naming neither) is left out and
said as an error of the source "ppp": a public session with no other VPN reads UNKNOWN, never
PASS. A PPP link that is down is no VPN up either way and is left out unsaid.
"""

from __future__ import annotations

from devposture.agent.host import Host, HostError, NetInterface
from devposture.agent.parsers.pppd import DIALUP
from devposture.agent.probes.linux.ppp_links import NO_PPPD, UNTOLD, Judged, judge_links
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error
from devposture.agent.probes.vpn_room import fitted
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_VPN
_SYS = "/sys/class/net"
_PREFIXES = (
    ("wg", "wireguard"),
    ("nordlynx", "wireguard"),
    ("tun", "tun"),
    ("tap", "tap"),
    ("ppp", "ppp"),
    ("ipsec", "ipsec"),
    ("vti", "ipsec"),
    ("xfrm", "ipsec"),
    ("tailscale", "tailscale"),
    ("zt", "zerotier"),
)
_ARPHRD_KINDS = {65534: "tun", 512: "ppp"}
# IP-in-IP devices: tunl0 is the fallback device the kernel gives every network namespace once
# the ipip module is loaded (Calico and other container networks load it; a real EasyConnect
# container's `ip addr` shows one, tests/fixtures/linux/interfaces). It encapsulates without
# encrypting, so it is no VPN, though its name starts with OpenVPN's "tun".
_IPIP_PREFIX = "tunl"


def vpn_kind(name: str, arphrd: int | None, devtype: str, is_tun: bool) -> str:
    """The kind of VPN an interface is, or "" when it is not one. Pure, for tests.

    A virtual machine's tap device is no VPN: an Ethernet-level tap device with no VPN's name
    (libvirt's vnet0, LXD's, multipass's), or one named so that is a bridge's port (QEMU's
    tap0 in br0: the probe asks). Counted as one, any running VM made public Wi-Fi pass as
    if on a VPN. Nor is an IP-in-IP device named tunl*: its link type (ARPHRD_TUNNEL) is in
    no table below, so it falls through to ""."""
    if devtype == "wireguard":
        return "wireguard"
    if not name.startswith(_IPIP_PREFIX):
        for prefix, kind in _PREFIXES:
            if name.startswith(prefix):
                return kind
    if is_tun:
        return "tun" if arphrd != _ARPHRD_ETHER else ""
    return _ARPHRD_KINDS.get(arphrd, "") if arphrd is not None else ""


_ARPHRD_ETHER = 1  # a tap device's link type (a tun device's is ARPHRD_NONE)


def _bridged(host: Host, name: str) -> bool:
    """Whether the interface is a port of a bridge (the kernel gives it a brport folder)."""
    return host.exists(f"{_SYS}/{name}/brport")


def _sys_attrs(host: Host, name: str) -> tuple[int | None, str, bool]:
    base = f"{_SYS}/{name}"
    arphrd: int | None = None
    devtype = ""
    try:
        raw = host.read_bytes(f"{base}/type", 16).decode("ascii", "replace").strip()
        arphrd = int(raw) if raw.isdigit() else None
    except HostError:
        pass
    try:
        for line in host.read_bytes(f"{base}/uevent", 4096).decode("utf-8", "replace").splitlines():
            if line.startswith("DEVTYPE="):
                devtype = line.split("=", 1)[1].strip()
    except HostError:
        pass
    return arphrd, devtype, host.exists(f"{base}/tun_flags")


def _is_up(iface: NetInterface) -> bool:
    if iface.flags:
        return "up" in iface.flags and "running" in iface.flags
    return iface.is_up


_PPP = "ppp"


def ppp_errors(judged: dict[str, Judged]) -> list[pb.ProbeError]:
    """Said of PPP links that are up and cannot be told from a dial-up, one error per reason."""
    errors: list[pb.ProbeError] = []
    for why in sorted({j.why for j in judged.values() if not j.kind}):
        untold = [name for name, j in judged.items() if not j.kind and j.why == why]
        names = ", ".join(untold)
        code = next(j.code for j in judged.values() if not j.kind and j.why == why)
        if why == NO_PPPD:
            message = (
                f"PPP link(s) {names} up with no pppd found that owns them: not counted as a VPN"
            )
        elif why == UNTOLD:
            message = (
                f"PPP link(s) {names} up whose pppd options name neither a VPN nor a dial-up:"
                " not counted as a VPN"
            )
        else:
            message = (
                f"PPP link(s) {names} up whose pppd options could not be read: not counted as a VPN"
            )
        errors.append(error(FACT, code, message, _PPP))
    return errors


def probe(ctx: ProbeContext) -> FactOutcome:
    fact = pb.VpnFact()
    ppp_up: list[str] = []
    for iface in ctx.host.net_interfaces():
        if iface.name == "lo":
            continue
        arphrd, devtype, is_tun = _sys_attrs(ctx.host, iface.name)
        kind = vpn_kind(iface.name, arphrd, devtype, is_tun)
        # Only an Ethernet-level device named like a VPN's (tap0) can be a bridge's port.
        if kind and kind != "wireguard" and arphrd == _ARPHRD_ETHER and (
            _bridged(ctx.host, iface.name)
        ):  # fmt: skip
            kind = ""
        if kind == _PPP:
            if _is_up(iface):
                ppp_up.append(iface.name)
        elif kind:
            fact.interfaces.add(name=iface.name, kind=kind, up=_is_up(iface))
    judged = judge_links(ctx.host, ppp_up) if ppp_up else {}
    for name in ppp_up:
        if judged[name].kind and judged[name].kind != DIALUP:
            fact.interfaces.add(name=name, kind=judged[name].kind, up=True)
    fact.active = any(i.up for i in fact.interfaces)
    return FactOutcome(fitted(fact), ppp_errors(judged))
