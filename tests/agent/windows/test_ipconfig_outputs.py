"""`ipconfig` (/all and plain) as real machines printed it in Chinese (Simplified and
Traditional), Japanese, Korean, Russian, German and (refused: no table) Dutch, and the VPN
adapters among them (agent.parsers.windows.ipconfig, agent.probes.windows.vpn_adapters).
Sources: the "ipconfig" table of tests/fixtures/windows/README.md."""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.ipconfig import Adapter, parse_ipconfig
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes.windows.vpn_adapters import adapter_kind
from tests.agent.windows.replay_windows import fixture


def adapters(name: str, console: str) -> list[Adapter]:
    return parse_ipconfig(decode_output(fixture(f"ipconfig/{name}"), console))


def summary(found: list[Adapter]) -> list[tuple[str, str, bool, tuple[str, ...], str]]:
    return [(a.kind, a.name, a.media_disconnected, a.ipv4, adapter_kind(a)) for a in found]


@pytest.mark.parametrize(
    ("copy", "console"),
    [("utf8", "cp936"), ("cp936-crlf", "cp936")],
)
def test_chinese_ipconfig_all_with_openvpn_and_uu_tap_adapters_disconnected(
    copy: str, console: str
) -> None:
    # A Chinese laptop's whole `ipconfig /all`: Wi-Fi connected, OpenVPN's TAP adapter and
    # NetEase UU's TAP-Win32 adapter both installed and disconnected (no VPN up).
    found = adapters(f"all-zh-ax201-tap-and-uu-disconnected.{copy}.txt", console)
    assert summary(found) == [
        ("ethernet", "以太网", True, (), ""),
        ("wireless", "本地连接* 8", True, (), ""),
        ("wireless", "本地连接* 10", True, (), ""),
        ("ethernet", "以太网 3", True, (), "tap"),
        # A game accelerator's TAP adapter: games' traffic only, not a VPN for 6.3.2.
        ("ethernet", "以太网 4", True, (), ""),
        ("wireless", "WLAN", False, ("192.168.110.2",), ""),
    ]
    assert found[3].description == "TAP-Windows Adapter V9"
    assert found[4].description == "Netease UU TAP-Win32 Adapter V9.21"


def test_chinese_openvpn_tap_adapter_connected_with_a_preferred_address() -> None:
    # "IPv4 地址 . . . : 10.255.1.6(首选)": the address is read without the 首选 (preferred) note.
    (tap,) = adapters("all-zh-openvpn-tap-connected-fragment.utf8.txt", "cp936")
    assert (tap.kind, tap.description, tap.media_disconnected, tap.ipv4) == (
        "ethernet",
        "TAP-Windows Adapter V9",
        False,
        ("10.255.1.6",),
    )
    assert adapter_kind(tap) == "tap"


@pytest.mark.parametrize(
    ("copy", "console"),
    [("utf8", "cp950"), ("cp950-crlf", "cp950")],
)
def test_traditional_chinese_ipconfig_all_is_read_not_taken_for_no_adapters(
    copy: str, console: str
) -> None:
    # Before, 乙太網路卡 / 通道介面卡 headers were skipped as unknown lines and the output, which
    # says "Windows IP 設定", was read as a machine without adapters: a Traditional Chinese
    # (Taiwan, Hong Kong) machine connected through a VPN read "no VPN".
    found = adapters(f"all-zh-tw-server-isatap-6to4.{copy}.txt", console)
    assert summary(found) == [
        ("ethernet", "乙太網路 2", True, (), ""),
        ("ethernet", "乙太網路", False, ("73.2.137.31",), ""),
        ("tunnel", "isatap.{9957270D-05C6-4511-994A-94B9C04F5C52}", True, (), ""),
        ("tunnel", "6TO4 Adapter", False, (), ""),
    ]
    assert found[0].description == "HP Ethernet 1Gb 2-port 330i Adapter #2"
    assert found[3].description == "Microsoft 6to4 Adapter"


@pytest.mark.parametrize(
    ("copy", "console"),
    [("utf8", "cp932"), ("cp932-crlf", "cp932")],
)
def test_japanese_ipconfig_mixes_japanese_and_english_headers(copy: str, console: str) -> None:
    # Japanese Windows prints "イーサネット アダプター" for Ethernet but "Wireless LAN adapter" in
    # English. The Ethernet sections were dropped, and "メディアは接続されていません" (media
    # disconnected) was not read, so two disconnected Wi-Fi Direct adapters read as connected.
    found = adapters(f"plain-ja-wsl-wlan.{copy}.txt", console)
    assert summary(found) == [
        ("ethernet", "LAN", True, (), ""),
        ("ethernet", "vEthernet (WSL)", False, ("192.168.64.1",), ""),
        ("ethernet", "Npcap Loopback Adapter", False, (), ""),
        ("wireless", "ローカル エリア接続* 3", True, (), ""),
        ("wireless", "ローカル エリア接続* 12", True, (), ""),
        ("wireless", "WLAN", False, ("172.16.2.14",), ""),
    ]


def test_a_language_not_in_the_tables_is_refused_not_read_as_no_adapters() -> None:
    # Dutch Windows 7: "Windows IP-configuratie", "Ethernet-adapter voor LAN-verbinding:" (a
    # copy indented as a whole by its page). No Dutch table exists, so the output is a
    # ParseError (the VPN probe then reads the adapters from Get-NetAdapter and names ipconfig
    # as unread), never an empty list that reads as "no VPN adapter". German's
    # "Ethernet-Adapter" does not claim the Dutch title: titles are matched as written.
    with pytest.raises(ParseError, match="adapter type"):
        adapters("plain-nl-win7-lan-indented.txt", "cp850")


def test_korean_ipconfig_is_read() -> None:
    # Korean Windows 11 (22000): "이더넷 어댑터" titles and "IPv4 주소"; refused before, so a
    # Korean machine's VPN fact came from connection names alone.
    found = adapters("plain-ko-win11-22000-two-ethernet.txt", "cp949")
    assert summary(found) == [
        ("ethernet", "이더넷", False, ("192.168.100.104",), ""),
        ("ethernet", "VirtualBox Host-Only Network", False, ("192.168.56.1",), ""),
    ]


@pytest.mark.parametrize("copy", ["utf8", "cp949-crlf"])
def test_korean_wireless_title_description_and_media_disconnected(copy: str) -> None:
    # "무선 LAN 어댑터", "설명" (description), "미디어 상태 : 미디어 연결 끊김" (media
    # disconnected).
    (direct,) = adapters(f"all-ko-wifi-direct-disconnected.{copy}.txt", "cp949")
    assert (direct.kind, direct.name, direct.description, direct.media_disconnected) == (
        "wireless", "로컬 영역 연결* 2", "Microsoft Wi-Fi Direct Virtual Adapter", True,
    )  # fmt: skip


@pytest.mark.parametrize("copy", ["utf8", "cp866-crlf"])
def test_russian_ipconfig_all_is_read(copy: str) -> None:
    # Russian Windows 10: "Адаптер Ethernet", "Адаптер беспроводной локальной сети", "Описание",
    # "Состояние среды : Среда передачи недоступна." (media disconnected), "IPv4-адрес"; the
    # VirtualBox adapter has only an automatic address ("Автонастройка IPv4-адреса"), not read.
    found = adapters(f"all-ru-virtualbox-apipa-hyperv.{copy}.txt", "cp866")
    assert summary(found) == [
        ("ethernet", "Ethernet", True, (), ""),
        ("ethernet", "Ethernet 2", False, (), ""),
        ("wireless", "Беспроводная сеть", False, ("192.168.0.102",), ""),
        ("ethernet", "vEthernet (Default Switch)", False, ("172.17.47.81",), ""),  # Hyper-V
    ]
    assert found[2].description == "TP-LINK 150Mbps Wireless Lite N Adapter"


def test_russian_unknown_adapter_is_a_tunnel_and_disconnected() -> None:
    # "Неизвестный адаптер OpenVPN Wintun:" (OpenVPN's Wintun adapter), media unavailable.
    found = adapters("plain-ru-wintun-unknown-disconnected.utf8.txt", "cp866")
    assert summary(found) == [
        ("unknown", "OpenVPN Wintun", True, (), "tun"),
        ("ethernet", "Ethernet", False, ("10.12.26.31",), ""),
    ]


@pytest.mark.parametrize(
    ("name", "console"),
    [
        ("all-de-ax201-tap-unknown-vmware.txt", "cp850"),
        ("all-de-ax201-tap-unknown-vmware.cp850-crlf.txt", "cp850"),
    ],
)
def test_german_ipconfig_all_with_an_unknown_adapter(name: str, console: str) -> None:
    # German Windows (leases of 2025): "Ethernet-Adapter", "Drahtlos-LAN-Adapter", "Unbekannter
    # Adapter" (OpenVPN's TAP, disconnected), and fields without padding before their colon
    # ("Verbindungsspezifisches DNS-Suffix:", empty) that look like a title. The output was a
    # ParseError, so a German machine's VPN fact came from psutil's names alone.
    found = adapters(name, console)
    assert summary(found) == [
        ("ethernet", "Ethernet", False, (), ""),  # "IPv4-Adresse (Auto. Konfiguration)": APIPA
        ("unknown", "LAN-Verbindung", True, (), "tap"),
        ("wireless", "LAN-Verbindung* 3", True, (), ""),
        ("wireless", "LAN-Verbindung* 12", True, (), ""),
        ("ethernet", "VMware Network Adapter VMnet1", False, ("192.168.23.1",), ""),
        ("ethernet", "VMware Network Adapter VMnet8", False, ("192.168.174.1",), ""),
        ("wireless", "WLAN", False, ("10.40.170.76",), ""),
    ]
    assert found[1].description == "TAP-Windows Adapter V9"
    assert found[6].description == "Intel(R) Wi-Fi 6 AX201 160MHz"


def test_german_windows_7_tunnels_are_not_vpns() -> None:
    # German Windows 7: "Tunneladapter" for 6to4 ("Microsoft-6zu4-Adapter", the German name
    # of the 6to4 adapter), ISATAP and Teredo; a console-wrapped description and address.
    found = adapters("all-de-win7-6zu4-isatap-teredo.txt", "cp850")
    assert summary(found) == [
        ("ethernet", "Bluetooth-Netzwerkverbindung", True, (), ""),
        ("ethernet", "LAN-Verbindung", False, ("118.137.235.19",), ""),
        ("wireless", "Drahtlosnetzwerkverbindung", True, (), ""),
        ("tunnel", "6TO4 Adapter", False, (), ""),
        ("tunnel", "isatap.{DC021824-3036-4DDB-B5CB-923602A21399}", True, (), ""),
        ("tunnel", "isatap.{8CF04EAD-1470-4821-AE15-92CE7A09974F}", True, (), ""),
        ("tunnel", "Teredo Tunneling Pseudo-Interface", False, (), ""),
        ("tunnel", "isatap.{6FEBD14F-F779-4CBD-8B5B-19159489AB38}", True, (), ""),
    ]
    # The console cut the description at 80 columns: kept as printed.
    assert found[1].description == "Atheros AR8131 PCI-E Gigabit Ethernet Con"
