"""Which Windows adapters are VPNs (agent.probes.windows.vpn_adapters), on the adapter
descriptions of real machines: `route print` interface lists name each adapter exactly as
`ipconfig /all` prints its Description."""

from __future__ import annotations

import re

from devposture.agent.parsers.windows.ipconfig import Adapter
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes.windows.vpn_adapters import adapter_kind, adapter_up
from tests.agent.windows.replay_windows import fixture


def text(name: str) -> str:
    return decode_output(fixture(name), "cp936")


_ROUTE_PRINT_INTERFACE = re.compile(r"^\s*\d+\.{3}(?:[0-9a-f]{2} )*\.*(?P<description>\S.*)$")


def route_print_descriptions(name: str) -> list[str]:
    """The adapter descriptions of a `route print` interface list ("13...00 ff cd da af 2f
    ......Sangfor SSL VPN CS Support System VNIC"): what ipconfig /all prints as Description."""
    return [
        match["description"]
        for line in text(name).splitlines()
        if (match := _ROUTE_PRINT_INTERFACE.match(line))
    ]


def ethernet(description: str) -> Adapter:
    """An adapter as ipconfig lists a virtual NIC: an Ethernet adapter named by its driver."""
    return Adapter("ethernet", "以太网 3", description, False, ("2.0.1.12",))


def test_sangfor_easyconnect_and_tap_win32_adapters_are_vpns() -> None:
    # A real `route print -4` with EasyConnect's NIC and three OpenVPN TAP-Win32 adapters: the
    # Sangfor adapter is an Ethernet adapter to ipconfig, so only its description tells; a
    # connected employee on public Wi-Fi read FAIL for want of it.
    kinds = {
        d: adapter_kind(ethernet(d))
        for d in route_print_descriptions(
            "route_print/route-print-4-en-sangfor-easyconnect-tap-win32.txt"
        )
    }
    assert kinds["Sangfor SSL VPN CS Support System VNIC"] == "Sangfor EasyConnect"
    assert kinds["TAP-Win32 Adapter V9 #3"] == "tap" and kinds["TAP-Win32 Adapter V9"] == "tap"
    assert kinds["Npcap Loopback Adapter"] == kinds["Intel(R) PRO/1000 MT Network Connection"] == ""
    assert len(kinds) == 13


def test_a_chinese_laptop_with_easyconnect_fortinet_and_wintun() -> None:
    descriptions = route_print_descriptions(
        "route_print/route-print-interfaces-zh-note-sangfor-fortinet-wintun.txt"
    )
    vpns = {d: adapter_kind(ethernet(d)) for d in descriptions if adapter_kind(ethernet(d))}
    assert vpns == {
        "Wintun Userspace Tunnel": "tun",
        "Fortinet Virtual Ethernet Adapter (NDIS 6.30)": "FortiClient",
        "Sangfor SSL VPN CS Support System VNIC": "Sangfor EasyConnect",
    }
    assert len(descriptions) == 10  # DACS VNIC, Wi-Fi Direct, Bluetooth: not VPNs


def test_sangfor_atrust_adapter_is_a_vpn() -> None:
    # Named in public diagnosis notes of real machines (vpn_adapters' docstring); no whole
    # output with it was found, so the description alone is tested.
    assert adapter_kind(ethernet("Sangfor aTrust VNIC")) == "Sangfor aTrust"


# Virtual NICs that are no VPN: virtual machines' host adapters, Npcap's loopback, Wi-Fi Direct.
_NOT_VPNS = ("hyper-v", "virtualbox", "vmware", "npcap", "wi-fi direct", "bluetooth", "loopback")


def test_anyconnect_is_a_vpn_and_hyper_v_and_virtualbox_are_not() -> None:
    # A real laptop with Cisco AnyConnect, WSL's and other Hyper-V switches' adapters and a
    # VirtualBox host-only adapter (microsoft/WSL#6913): only AnyConnect's is a VPN.
    kinds = {
        d: adapter_kind(ethernet(d))
        for d in route_print_descriptions(
            "route_print/route-print-interfaces-en-wsl-6913-anyconnect-hyperv-virtualbox.txt"
        )
    }
    assert len(kinds) == 15
    anyconnect = "Cisco AnyConnect Secure Mobility Client Virtual Miniport Adapter for Windows x64"
    assert kinds[anyconnect] == "Cisco AnyConnect"
    others = [d for d in kinds if any(word in d.lower() for word in _NOT_VPNS)]
    assert len(others) == 11 and all(kinds[d] == "" for d in others)


def test_vmware_s_host_adapters_are_no_vpn() -> None:
    # A real laptop with VMware Workstation's VMnet1 and VMnet8 and a VPN's TAP driver
    # installed (frostwire/frostwire#642).
    kinds = {
        d: adapter_kind(ethernet(d))
        for d in route_print_descriptions(
            "route_print/route-print-interfaces-en-frostwire-642-vmware-tap.txt"
        )
    }
    assert kinds == {
        "Microsoft Wi-Fi Direct Virtual Adapter": "",
        "VMware Virtual Ethernet Adapter for VMnet1": "",
        "VMware Virtual Ethernet Adapter for VMnet8": "",
        "TAP-Windows Adapter V9": "tap",
        "Killer Wireless-n/a/ac 1535 Wireless Network Adapter": "",
        "Software Loopback Interface 1": "",
    }


_SCAPY_ROW = re.compile(r"^-?\d+\s+(?P<description>\S.*?)\s{2,}(?P<ip>\S+)\s+\S+$")


def scapy_adapters(name: str) -> dict[str, Adapter]:
    """scapy's `ifaces` listing as the adapters ipconfig would list: each row's description and
    the IPv4 address scapy shows for it. The listing has no media state, so the address alone
    tells an adapter that has no lease (169.254/16) from one that is connected."""
    rows = [m for line in text(name).splitlines()[1:] if (m := _SCAPY_ROW.match(line))]
    return {
        m["description"]: Adapter("ethernet", "", m["description"], False, (m["ip"],))
        for m in rows
        if m["ip"] != "None"
    }


def test_huawei_secoclient_s_svn_adapter_is_a_vpn_and_down_without_a_lease() -> None:
    # A real laptop's adapters (a Chinese scapy note): Huawei's SVN Adapter (SecoClient's NIC)
    # and OpenVPN's TAP without a lease (169.254/16): VPNs, not up. ZeroTier with its
    # network's address (and, in the same note, a default route through it): up. VMware's
    # VMnet1/VMnet8 carry addresses but are no VPN, nor is Npcap's loopback.
    adapters = scapy_adapters("adapter_lists/scapy-ifaces-zh-note-svn-adapter-zerotier-vmware.txt")
    assert len(adapters) == 11
    vpns = {d: (adapter_kind(a), adapter_up(a)) for d, a in adapters.items() if adapter_kind(a)}
    assert vpns == {
        "SVN Adapter V1.0": ("Huawei SecoClient", False),
        "TAP-Windows Adapter V9": ("tap", False),
        "ZeroTier One Virtual Port": ("zerotier", True),
    }
    assert adapter_up(adapters["VMware Virtual Ethernet Adapter for VMnet8"])  # up, but no VPN
