"""`ipconfig` as real French, Spanish, Italian and Brazilian Portuguese machines printed it
(agent.parsers.windows.ipconfig), and the VPN probe reading it through the Windows replay
(agent.probes.windows.vpn). Sources: the "ipconfig" table of tests/fixtures/windows/README.md.

Before these tables the four languages were refused, so the built-in VPN client's PPP
connections went unseen there and a public Wi-Fi session with no VPN seen read UNKNOWN."""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.ipconfig import Adapter, parse_ipconfig
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.windows import vpn
from devposture.agent.probes.windows.vpn_adapters import adapter_kind
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output

FRENCH = "ipconfig/all-fr-win10-19042-nordlynx-vmware.utf8.txt"
SPANISH = "ipconfig/all-es-cloudflare-warp-wifi"
ITALIAN = "ipconfig/all-it-openvpn-wintun-connected"
PORTUGUESE = "ipconfig/all-pt-br-tailscale-hyperv"


def adapters(name: str, console: str = "cp850") -> list[Adapter]:
    return parse_ipconfig(decode_output(fixture(name), console))


def summary(found: list[Adapter]) -> list[tuple[str, str, bool, tuple[str, ...], str]]:
    return [(a.kind, a.name, a.media_disconnected, a.ipv4, adapter_kind(a)) for a in found]


@pytest.mark.parametrize(
    ("original", "copy"),
    [
        ("ipconfig/all-fr-win8-hyperv-isatap-teredo.txt",
         "ipconfig/all-fr-win8-hyperv-isatap-teredo.cp850-crlf.txt"),
        (f"{SPANISH}.utf8.txt", f"{SPANISH}.cp850-crlf.txt"),
        (f"{ITALIAN}.utf8.txt", f"{ITALIAN}.cp850-crlf.txt"),
        (f"{PORTUGUESE}.utf8.txt", f"{PORTUGUESE}.cp850-crlf.txt"),
    ],
)  # fmt: skip
def test_each_console_copy_is_the_recording_in_cp850(original: str, copy: str) -> None:
    # The copies are not UTF-8: only the console code page decodes their accents.
    with pytest.raises(UnicodeDecodeError):
        fixture(copy).decode("utf-8")
    assert decode_output(fixture(copy), "cp850") == fixture(original).decode("utf-8")


# --- French -------------------------------------------------------------------------------


def test_french_ipconfig_all_with_nordlynx_disconnected() -> None:
    # Windows 10 19042: "Carte inconnue NordLynx :" (NordVPN's WireGuard adapter), "Carte
    # Ethernet ... :", "Statut du média : Média déconnecté", "Adresse IPv4. . .: ...(préféré)".
    # French puts a space before the colon of a title, which read as a field: no adapter was
    # found and the output, which does not say "Windows IP", was refused.
    found = adapters(FRENCH)
    assert summary(found) == [
        ("unknown", "NordLynx", True, (), "wireguard"),
        ("ethernet", "Ethernet", False, ("192.168.1.107",), ""),
        ("ethernet", "VMware Network Adapter VMnet1", False, ("192.168.197.1",), ""),
        ("ethernet", "VMware Network Adapter VMnet8", False, ("192.168.245.1",), ""),
        ("ethernet", "Connexion réseau Bluetooth 2", True, (), ""),
    ]
    assert found[0].description == "NordLynx Tunnel"
    assert found[1].description == "Realtek PCIe GbE Family Controller"


def test_a_french_title_and_a_french_field_without_dots_are_told_apart() -> None:
    # "Carte Ethernet VMware Network Adapter VMnet1 :" is a title; "   Liste de recherche de
    # suffixes DNS propres à la connexion :" (a field, no dots, its values on the next lines)
    # has the same shape. Only the indentation tells them: the field stays in the Ethernet
    # section and the next title opens the VMnet1 one.
    text = decode_output(fixture(FRENCH), "cp850")
    field = "   Liste de recherche de suffixes DNS propres à la connexion :"
    assert field in text.split("\n")
    ethernet, vmnet1 = parse_ipconfig(text)[1:3]
    assert (ethernet.name, ethernet.ipv4) == ("Ethernet", ("192.168.1.107",))
    assert (vmnet1.name, vmnet1.description) == (
        "VMware Network Adapter VMnet1", "VMware Virtual Ethernet Adapter for VMnet1",
    )  # fmt: skip
    # The same line at a title's indentation is a title, in no table: refused, not skipped.
    with pytest.raises(ParseError, match="adapter type"):
        parse_ipconfig(text.replace(field, field.lstrip()))


@pytest.mark.parametrize(
    ("name", "console"),
    [
        ("ipconfig/all-fr-win8-hyperv-isatap-teredo.txt", "cp850"),
        ("ipconfig/all-fr-win8-hyperv-isatap-teredo.cp850-crlf.txt", "cp850"),
    ],
)
def test_french_windows_8_wireless_and_tunnel_titles(name: str, console: str) -> None:
    # "Carte réseau sans fil", "Carte Tunnel" (ISATAP and Teredo, not VPNs), lines the console
    # cut at 80 columns ("(préféré)" alone) and blank lines doubled by the forum copy.
    found = adapters(name, console)
    assert summary(found) == [
        ("ethernet", "vEthernet (Nouveau commutateur virtuel pour Videotron)", False,
         ("192.168.1.106",), ""),
        ("wireless", "Connexion au réseau local* 1", True, (), ""),
        ("ethernet", "Ethernet", True, (), ""),
        ("tunnel", "isatap.{2F833C66-F3D5-4CF9-88A7-1AD46D4B44FD}", True, (), ""),
        ("tunnel", "Connexion au réseau local* 13", False, (), ""),
    ]  # fmt: skip
    assert found[2].description == "Contrôleur Realtek PCIe GBE Family"
    assert found[1].description == "Carte virtuelle directe Wi-Fi Micros"  # cut, as printed


def test_french_ppp_title() -> None:
    # "Carte PPP OneClick Internet :" (a 3G connection, Windows 7). The author replaced the
    # address with "a.b.c.d", so none is read. A PPP link whose name says no VPN is none
    # (test_vpn_ppp.py).
    assert summary(adapters("ipconfig/plain-fr-win7-ppp-3g-fragment.txt")) == [
        ("ppp", "OneClick Internet", False, (), "")
    ]


# --- Spanish ------------------------------------------------------------------------------


@pytest.mark.parametrize("copy", ["utf8", "cp850-crlf"])
def test_spanish_ipconfig_all_with_cloudflare_warp_up(copy: str) -> None:
    # "Adaptador desconocido", "Adaptador de LAN inalámbrica", "Descripción", "Estado de los
    # medios : medios desconectados", "Dirección IPv4".
    found = adapters(f"{SPANISH}.{copy}.txt")
    assert summary(found) == [
        ("unknown", "CloudflareWARP", False, ("172.16.0.2",), "tun"),
        ("wireless", "Wi-Fi 2", True, (), ""),
        ("wireless", "Wi-Fi 3", True, (), ""),
        ("wireless", "Wi-Fi", False, ("192.168.1.170",), ""),
    ]
    assert found[0].description == "Cloudflare WARP Interface Tunnel"
    assert found[3].description == "Realtek 8852BE-VT Wireless LAN WiFi 6 PCI-E NIC"


def test_spanish_ethernet_titles() -> None:
    assert summary(adapters("ipconfig/plain-es-virtualbox-bluetooth.txt")) == [
        ("ethernet", "Ethernet 3", True, (), ""),
        ("ethernet", "VirtualBox Host-Only Network", False, ("192.168.56.1",), ""),
        ("wireless", "Conexión de área local* 1", True, (), ""),
        ("wireless", "Conexión de área local* 2", True, (), ""),
        ("ethernet", "Ethernet 2", True, (), ""),
        ("wireless", "Wi-Fi", False, ("192.168.31.215",), ""),
        ("ethernet", "Conexión de red Bluetooth", True, (), ""),
    ]


def test_spanish_tunnel_title() -> None:
    found = adapters("ipconfig/plain-es-isatap-tunnel.txt")
    assert [(a.kind, a.name, a.media_disconnected, a.ipv4) for a in found] == [
        ("ethernet", "Conexión de área local", False, ("172.18.22.102",)),
        ("tunnel", "isatap.{EDAC9220-24B4-4EBD-BF38-DB29514CDEB7}", True, ()),
    ]


# --- Italian ------------------------------------------------------------------------------


@pytest.mark.parametrize("copy", ["utf8", "cp850-crlf"])
def test_italian_ipconfig_all_with_openvpn_wintun_up(copy: str) -> None:
    # "Scheda sconosciuta", "Scheda LAN wireless", "Descrizione", "Indirizzo IPv4", and fields
    # with no padding before the colon ("Suffisso DNS specifico per connessione:").
    found = adapters(f"{ITALIAN}.{copy}.txt")
    assert summary(found) == [
        ("unknown", "OpenVPN Wintun", False, ("10.29.2.2",), "tun"),
        ("wireless", "Wi-Fi", False, ("192.168.10.187",), ""),
    ]
    assert [a.description for a in found] == [
        "Wintun Userspace Tunnel", "Intel(R) Wi-Fi 6 AX201 160MHz",
    ]  # fmt: skip


def test_italian_plain_ipconfig_once_refused_is_read() -> None:
    # "Scheda Ethernet", "Stato supporto : Supporto disconnesso": this output was the test of
    # a language without a table; that test now uses a Dutch one (test_ipconfig_outputs.py).
    assert summary(adapters("ipconfig/plain-it-school-wlan.txt")) == [
        ("ethernet", "Ethernet", True, (), ""),
        ("wireless", "Connessione alla rete locale (LAN)* 1", True, (), ""),
        ("wireless", "Connessione alla rete locale (LAN)* 2", True, (), ""),
        ("wireless", "Wi-Fi", False, ("192.168.10.157",), ""),
    ]


def test_italian_vista_tunnels_are_not_vpns() -> None:
    # "Scheda Tunnel" for ISATAP, Teredo and 6to4; descriptions cut by the console.
    found = adapters("ipconfig/all-it-vista-tunnels-wrapped.txt")
    lan = "Connessione alla rete locale (LAN)"
    assert summary(found) == [
        ("ethernet", "Connessione di rete Bluetooth", True, (), ""),
        ("wireless", "Connessione rete wireless", True, (), ""),
        ("ethernet", lan, False, ("192.168.2.34",), ""),
        ("tunnel", f"{lan}* 6", True, (), ""),
        ("tunnel", f"{lan}* 7", False, (), ""),
        ("tunnel", f"{lan}* 10", True, (), ""),
        ("tunnel", f"{lan}* 11", True, (), ""),
        ("tunnel", f"{lan}* 12", True, (), ""),
    ]
    assert found[4].description == "Teredo Tunneling Pseudo-Interface"


def test_italian_ppp_title_on_windows_xp() -> None:
    # "Scheda PPP alberto:" (a DSL dial-up) and Windows XP's "Indirizzo IP", fields indented by
    # eight spaces.
    found = adapters("ipconfig/all-it-xp-pppoe-dsl.txt")
    assert summary(found) == [
        ("ethernet", "Connessione alla rete locale (LAN)", False, ("192.168.1.45",), ""),
        ("ppp", "alberto", False, ("151.16.25.49",), ""),  # a dial-up: no VPN
    ]
    assert found[1].description == "WAN (PPP/SLIP) Interface"


# --- Portuguese (Brazil) ------------------------------------------------------------------


@pytest.mark.parametrize("copy", ["utf8", "cp850-crlf"])
def test_brazilian_ipconfig_all_with_tailscale(copy: str) -> None:
    # "Adaptador desconhecido", "Adaptador Ethernet", "Adaptador de Rede sem Fio", "Descrição",
    # "Estado da mídia : mídia desconectada", "Endereço IPv4". The author replaced Tailscale's
    # IPv4 address with "xxx.xxx.xxx.xxx": no address is read, so the tunnel reads down.
    found = adapters(f"{PORTUGUESE}.{copy}.txt")
    assert summary(found) == [
        ("unknown", "Tailscale", False, (), "tailscale"),
        ("ethernet", "vEthernet (vSwitch_External_PRJ003)", False, ("192.168.15.4",), ""),
        ("wireless", "Wi-Fi 2", True, (), ""),
        ("wireless", "Conexão Local* 11", True, (), ""),
        ("wireless", "Conexão Local* 13", True, (), ""),
        ("ethernet", "Conexão de Rede Bluetooth", True, (), ""),
        ("ethernet", "Ethernet", True, (), ""),
        ("ethernet", "vEthernet (Default Switch)", False, ("192.168.96.1",), ""),
    ]
    assert found[0].description == "Tailscale Tunnel"
    assert found[6].description == "Realtek Gaming 2.5GbE Family Controller"


# --- the VPN probe, through the Windows replay --------------------------------------------
#
# Each machine is a composite: the language's recorded ipconfig beside a Get-NetAdapter list
# recorded on another machine (or a failed call, as on Windows 7). No public source records
# both commands on one machine.


def run(host: WindowsReplayHost) -> FactOutcome:
    return vpn.probe(ProbeContext(host, ProbeConfig(), pb.PostureReport()))


def codes(outcome: FactOutcome) -> list[tuple[str, int]]:
    return [(e.source, e.code) for e in outcome.errors]


def interfaces(outcome: FactOutcome) -> list[tuple[str, str, bool]]:
    assert isinstance(outcome.fact, pb.VpnFact)
    return [(i.name, i.kind, i.up) for i in outcome.fact.interfaces]


def test_a_french_machine_reads_its_nordlynx_adapter_and_no_vpn_is_proven() -> None:
    # Get-NetAdapter of an English machine (one Ethernet adapter up, no VPN). ipconfig was a
    # ParseError before: its failure kept "no VPN" unproven (UNKNOWN on public Wi-Fi).
    host = WindowsReplayHost(console_encoding="cp850")
    host.record(cmd.NET_ADAPTERS, output("netadapter/list-en-c2-agent-vmware-one-up.txt"))
    host.record(cmd.IPCONFIG, output(FRENCH))
    outcome = run(host)
    assert codes(outcome) == []
    assert interfaces(outcome) == [("NordLynx Tunnel", "wireguard", False)]
    assert isinstance(outcome.fact, pb.VpnFact) and not outcome.fact.active


def test_a_spanish_machine_reads_cloudflare_warp_up() -> None:
    # Get-NetAdapter of another Spanish machine (OpenVPN's TAP adapter down); ipconfig adds the
    # WARP tunnel, up with an address, which Get-NetAdapter's list does not name as a VPN.
    host = WindowsReplayHost(console_encoding="cp850")
    host.record(cmd.NET_ADAPTERS, output("netadapter/list-es-17763-tap-down-npcap.txt"))
    host.record(cmd.IPCONFIG, output(f"{SPANISH}.cp850-crlf.txt"))
    outcome = run(host)
    assert codes(outcome) == []
    assert interfaces(outcome) == [
        ("TAP-Windows Adapter V9", "tap", False),
        ("Cloudflare WARP Interface Tunnel", "tun", True),
    ]
    assert isinstance(outcome.fact, pb.VpnFact) and outcome.fact.active


def test_an_italian_machine_reads_openvpn_up_from_ipconfig_alone() -> None:
    # Get-NetAdapter failing without output (as on Windows 7) costs nothing now that the
    # Italian ipconfig is read; before, both sources failed and the fact was an error.
    host = WindowsReplayHost(console_encoding="cp850")
    host.record(cmd.NET_ADAPTERS, (1, b"", b""))
    host.record(cmd.IPCONFIG, output(f"{ITALIAN}.cp850-crlf.txt"))
    outcome = run(host)
    assert codes(outcome) == []
    assert interfaces(outcome) == [("Wintun Userspace Tunnel", "tun", True)]
    assert isinstance(outcome.fact, pb.VpnFact) and outcome.fact.active


def test_a_brazilian_machine_reads_its_tailscale_adapter() -> None:
    # The recording's Tailscale address was replaced by its author, so the tunnel reads down:
    # what the copy shows, not the machine's state that day.
    host = WindowsReplayHost(console_encoding="cp850")
    host.record(cmd.NET_ADAPTERS, output("netadapter/list-en-c2-agent-vmware-one-up.txt"))
    host.record(cmd.IPCONFIG, output(f"{PORTUGUESE}.cp850-crlf.txt"))
    outcome = run(host)
    assert codes(outcome) == []
    assert interfaces(outcome) == [("Tailscale Tunnel", "tailscale", False)]
