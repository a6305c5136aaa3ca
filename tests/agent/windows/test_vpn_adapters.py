"""Which Windows adapters are VPNs (agent.probes.windows.vpn_adapters), on the adapter
descriptions of real machines: `route print` interface lists name each adapter exactly as
`ipconfig /all` prints its Description."""

from __future__ import annotations

import re

from devposture.agent.parsers.windows.ipconfig import Adapter
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes.windows.vpn_adapters import adapter_kind
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
