"""Which Windows network adapters are VPN tunnels, by what Windows calls them.

Both adapter sources are judged here: `ipconfig /all` (a type and a description) and
`Get-NetAdapter` (a description only). A description is the driver's own name, the same in both
sources; a driver may word it in the display language (Realtek's "Контроллер семейства Realtek
PCIe GbE" on a Russian machine), the VPN drivers below are English in every recording.

`ipconfig /all` shows a VPN as an "Unknown adapter" (WireGuard and Wintun-based clients), a
"PPP adapter" (the built-in VPN client: PPTP, L2TP, SSTP, IKEv2) or an Ethernet adapter whose
description names a virtual NIC driver. Descriptions are matched case-insensitively against
the driver names the vendors install: "TAP-Windows Adapter V9" (OpenVPN), "WireGuard Tunnel",
"Wintun Userspace Tunnel", "OpenVPN Data Channel Offload", "Tailscale Tunnel", "Cisco AnyConnect
... Virtual Miniport Adapter", "Fortinet Virtual Ethernet Adapter", "PANGP Virtual Ethernet
Adapter" (Palo Alto GlobalProtect), "ZeroTier Virtual Port", "NordLynx Tunnel". IPv6 transition
tunnels (ISATAP, Teredo, 6to4) are "Tunnel adapter"s too but not VPNs.

VPN clients common in Chinese companies install an Ethernet-kind virtual NIC, so only the
description tells them; each entry below names where that description was seen on a real
machine (tests/fixtures/windows/README.md, "route_print"):
  * Sangfor EasyConnect (深信服): "Sangfor SSL VPN CS Support System VNIC". `route print -4`
    interface lists (index ids 1374790372 and 12559002808, recorded as fixtures), a Chinese
    `systeminfo` NIC list (index id 26027439934, "[02]: Sangfor SSL VPN CS Support System
    VNIC ... 状态: 媒体连接已中断"), and tangruize/NJU-EasyConnect-Script's Windows script, which
    finds EasyConnect's interface by `route.exe print if | grep Sangfor`.
  * Sangfor aTrust (深信服零信任): "Sangfor aTrust VNIC" (driver service SdpVnic,
    ROOT\\NET\\0000), as Windows named it on real machines in public network-diagnosis notes
    (index ids 69701376971 and 63510055367: the adapter "Disconnected" while aTrust was not
    connected; 69773565544: Get-PnpDevice's device and service). No whole output was found.
  * Huawei SecoClient (华为): "SVN Adapter V1.0", with no lease (169.254/16) on a real laptop
    in scapy's adapter list (tests/fixtures/windows/adapter_lists, index id 31313296332).
    Huawei's SSL VPN gateways are its SVN series and SecoClient their client; no output that
    names SecoClient beside the adapter was found, so the match is on Huawei's "SVN Adapter".
  * OpenVPN's older TAP driver: "TAP-Win32 Adapter V9" (the same `route print -4` list), the
    name before "TAP-Windows".
H3C iNode, Huawei UniVPN, Hillstone Secure Connect, Topsec and Qi-Anxin VPN are not listed:
no public output naming their Windows adapters was found, and a guessed name is not a source
(docs/vpn-clients.md). Neither is Cisco Secure Client 5's, if it is no longer AnyConnect's.
Virtual machines' adapters (Hyper-V, VirtualBox, VMware) and Npcap's loopback match none of
these: real lists of them are tested as no VPN.

A "PPP adapter" is the built-in VPN client's (PPTP, L2TP, SSTP, IKEv2), but also a dial-up
broadband (PPPoE) connection's, as Chinese homes dial their own broadband ("PPP 适配器 宽带连接"),
or a 3G modem's: ipconfig prints all of them alike, a title with the connection's name and, since
Vista, that name again as the description (XP: "WAN (PPP/SLIP) Interface"), no driver, no
physical address. Counted as a VPN, a PC on PPPoE passed clause 6.3.2 on public Wi-Fi. So a PPP
adapter is judged first by the phonebook entry Windows dials it from (agent/parsers/windows/
phonebook.py: its type, 2 for a VPN, 5 for broadband), found under the adapter's name; an entry
of another type (a modem's) is no VPN either, and one of unknown type tells nothing. Where no
phonebook read holds the name (the agent's user cannot read it, a client that keeps its own),
by its name (`ppp_link`), the one thing ipconfig shows that differs:
  * "vpn": the name or description says VPN (the "PPP adapter VPN:" of a real PPTP client,
    Ubuntu forums, index id 56701346005, tests/fixtures/windows/ipconfig; Windows 7's wizard
    suggests "VPN Connection", "VPN 连接", not recorded): counted as a VPN;
  * "broadband": Windows' default name for a PPPoE connection, "Broadband Connection" (a real
    Windows 7 `ipconfig -all`, index id 57010039941; "Broadband Connection 2", index id
    57016599036) or "宽带连接" (its Chinese: the Type=5 entry of two real Chinese phonebooks,
    tests/fixtures/windows/phonebook), optionally numbered: no VPN;
  * "unknown": any other name (an Italian XP's DSL dial-up "alberto", a French 3G "OneClick
    Internet", both recorded). Neither counted nor left unsaid: the probe names it as a source
    error when it is up, so a public Wi-Fi session with no other VPN reads UNKNOWN, never PASS.

Game accelerators install the same TAP driver under their own name, but route only the games'
traffic: WeChat's goes out on the public network as before, so they are not the VPN clause
6.3.2 asks for. Each is named where it was seen on a real machine:
  * NetEase UU (网易UU加速器): "Netease UU TAP-Win32 Adapter V9.21", a Chinese laptop's whole
    `ipconfig /all` (tests/fixtures/windows/ipconfig, index id 4123466407).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from devposture.agent.parsers.windows.ipconfig import Adapter
from devposture.agent.parsers.windows.netadapter import NetAdapter
from devposture.agent.parsers.windows.phonebook import UNKNOWN as UNKNOWN_ENTRY

# The entry types of the phonebooks read, by lower-cased entry name (several phonebooks may
# each hold an entry of one name).
Phonebook = Mapping[str, frozenset[str]]
NO_PHONEBOOK: Phonebook = {}

# (substring of the lower-cased description, kind)
DESCRIPTIONS: tuple[tuple[str, str], ...] = (
    ("wireguard", "wireguard"),
    ("nordlynx", "wireguard"),
    ("wintun", "tun"),
    ("tap-windows", "tap"),
    ("openvpn", "tun"),
    ("tailscale", "tailscale"),
    ("zerotier", "zerotier"),
    ("anyconnect", "Cisco AnyConnect"),
    ("fortinet", "FortiClient"),
    ("pangp", "GlobalProtect"),
    ("globalprotect", "GlobalProtect"),
    ("tap-win32", "tap"),
    ("sangfor ssl vpn", "Sangfor EasyConnect"),
    ("sangfor atrust", "Sangfor aTrust"),
    ("svn adapter", "Huawei SecoClient"),
)
_APIPA = "169.254."
# "6zu4": German Windows names the 6to4 adapter "Microsoft-6zu4-Adapter" (a recorded ipconfig).
_NOT_VPN_TUNNELS = ("isatap", "teredo", "6to4", "6zu4", "ip-https")
# Virtual NICs that carry only some applications' traffic, checked first (see above).
_NOT_VPN_DESCRIPTIONS = ("netease uu",)
# Windows' default names of a PPPoE connection, optionally numbered ("Broadband Connection 2").
_BROADBAND_NAME = re.compile(r"^(?:broadband connection|宽带连接)(?: \d+)?$")
# psutil reports Windows interfaces by connection name ("OpenVPN Wintun", "WireGuard").
NAME_HINTS: tuple[tuple[str, str], ...] = (
    ("wireguard", "wireguard"),
    ("wintun", "tun"),
    ("openvpn", "tun"),
    ("tailscale", "tailscale"),
    ("zerotier", "zerotier"),
)


def description_kind(description: str) -> str | None:
    """The VPN kind a driver's description names; "" for a virtual NIC known to be no VPN (a
    game accelerator's); None when the description alone does not tell."""
    lowered = description.lower()
    if any(needle in lowered for needle in _NOT_VPN_DESCRIPTIONS):
        return ""
    return next((kind for needle, kind in DESCRIPTIONS if needle in lowered), None)


def adapter_kind(adapter: Adapter, phonebook: Phonebook = NO_PHONEBOOK) -> str:
    """The VPN kind of an adapter ipconfig listed, or "" when it is not a VPN."""
    kind = description_kind(adapter.description)
    if kind is not None:
        return kind
    description = adapter.description.lower()
    if adapter.kind == "ppp":
        return "ppp" if ppp_link(adapter, phonebook) == "vpn" else ""
    if adapter.kind == "unknown":
        return "tun"
    if adapter.kind == "tunnel" and not any(t in description for t in _NOT_VPN_TUNNELS):
        return "tun"
    return ""


def ppp_link(adapter: Adapter, phonebook: Phonebook = NO_PHONEBOOK) -> str:
    """What a PPP adapter is: "vpn", "broadband" (PPPoE), "dial-up" (a phonebook entry of
    another type: a modem's) or "unknown", by its phonebook entry and else its name (see the
    module docstring); "" for an adapter that is no PPP adapter. `phonebook` holds the types of
    the entries of every phonebook read, by lower-cased name."""
    if adapter.kind != "ppp":
        return ""
    names = (adapter.name.strip().lower(), adapter.description.strip().lower())
    types = next((phonebook[name] for name in names if name in phonebook), frozenset())
    if types:
        if types == {"vpn"}:
            return "vpn"
        if "vpn" in types or UNKNOWN_ENTRY in types:
            return "unknown"  # two phonebooks disagree, or the entry's type is not known
        return "broadband" if types == {"broadband"} else "dial-up"
    if any("vpn" in name for name in names):
        return "vpn"
    if any(_BROADBAND_NAME.match(name) for name in names):
        return "broadband"
    return "unknown"


def adapter_up(adapter: Adapter) -> bool:
    """Whether a VPN adapter carries traffic: media connected and an IPv4 address that is not
    an automatic one (169.254/16, what Windows gives an adapter no server answered)."""
    addresses = [a for a in adapter.ipv4 if not a.startswith(_APIPA)]
    return not adapter.media_disconnected and bool(addresses)


def net_adapter_kind(adapter: NetAdapter) -> str:
    """The VPN kind of an adapter Get-NetAdapter listed, or "". Only the description tells: the
    list view has no type such as ipconfig's "Unknown adapter" or "PPP adapter", and no
    recording shows it listing the built-in VPN client's PPP connections, which ipconfig does."""
    return description_kind(adapter.description) or ""


def name_kind(name: str) -> str:
    lowered = name.lower()
    return next((kind for needle, kind in NAME_HINTS if needle in lowered), "")
