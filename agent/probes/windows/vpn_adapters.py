"""Which Windows network adapters are VPN tunnels, by what Windows calls them.

`ipconfig /all` shows a VPN as an "Unknown adapter" (WireGuard and Wintun-based clients), a
"PPP adapter" (the built-in VPN client: PPTP, L2TP, SSTP, IKEv2) or an Ethernet adapter whose
description names a virtual NIC driver. Descriptions are matched case-insensitively against
the driver names the vendors install: "TAP-Windows Adapter V9" (OpenVPN), "WireGuard Tunnel",
"Wintun Userspace Tunnel", "OpenVPN Data Channel Offload", "Tailscale Tunnel", "Cisco AnyConnect
... Virtual Miniport Adapter", "Fortinet Virtual Ethernet Adapter", "PANGP Virtual Ethernet
Adapter" (Palo Alto GlobalProtect), "ZeroTier Virtual Port", "NordLynx Tunnel". IPv6 transition
tunnels (ISATAP, Teredo, 6to4) are "Tunnel adapter"s too but not VPNs.
"""

from __future__ import annotations

from devposture.agent.parsers.windows.ipconfig import Adapter

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
)
_NOT_VPN_TUNNELS = ("isatap", "teredo", "6to4", "ip-https")
# psutil reports Windows interfaces by connection name ("OpenVPN Wintun", "WireGuard").
NAME_HINTS: tuple[tuple[str, str], ...] = (
    ("wireguard", "wireguard"),
    ("wintun", "tun"),
    ("openvpn", "tun"),
    ("tailscale", "tailscale"),
    ("zerotier", "zerotier"),
)


def adapter_kind(adapter: Adapter) -> str:
    """The VPN kind of an adapter, or "" when it is not a VPN."""
    description = adapter.description.lower()
    for needle, kind in DESCRIPTIONS:
        if needle in description:
            return kind
    if adapter.kind == "ppp":
        return "ppp"
    if adapter.kind == "unknown":
        return "tun"
    if adapter.kind == "tunnel" and not any(t in description for t in _NOT_VPN_TUNNELS):
        return "tun"
    return ""


def name_kind(name: str) -> str:
    lowered = name.lower()
    return next((kind for needle, kind in NAME_HINTS if needle in lowered), "")
