"""Get-NetAdapter's list view (agent.parsers.windows.netadapter) on real machines' outputs, the
VPN kinds read from it, and the VPN probe reading it beside ipconfig through the Windows replay.
Sources: the "netadapter" and "ipconfig" tables of tests/fixtures/windows/README.md."""

from __future__ import annotations

import pytest

from devposture.agent.host import NetInterface
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.netadapter import NetAdapter, parse_net_adapters
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.windows import vpn
from devposture.agent.probes.windows.vpn_adapters import adapter_kind, net_adapter_kind
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output
from tests.agent.windows.test_vpn_adapters import ethernet, route_print_descriptions

SPANISH = "netadapter/list-es-17763-tap-down-npcap.txt"
DUTCH_IPCONFIG = "ipconfig/plain-nl-win7-lan-indented.txt"


def adapters(name: str) -> list[NetAdapter]:
    return parse_net_adapters(decode_output(fixture(name), "cp850"))


def summary(found: list[NetAdapter]) -> list[tuple[str, str, bool, str]]:
    return [(a.name, a.description, a.up, net_adapter_kind(a)) for a in found]


def test_a_spanish_windows_prints_the_same_state_words_and_its_tap_adapter_is_down() -> None:
    # Spanish Windows 10 (17763): the state words are English, as on every machine, so the
    # OpenVPN TAP adapter reads installed and down where ipconfig (no Spanish table) could not.
    assert summary(adapters(SPANISH)) == [
        ("Ethernet 2", "TAP-Windows Adapter V9", False, "tap"),
        ("Ethernet", "Realtek PCIe GbE Family Controller", False, ""),
        ("Npcap Loopback Adapter", "Npcap Loopback Adapter", True, ""),  # up, no VPN
    ]


def test_a_captured_stdout_indented_with_blank_lines_around_it() -> None:
    # `powershell "Get-NetAdapter|fl"` as an agent captured it: blank lines first, the log's
    # indentation kept.
    (adapter,) = adapters("netadapter/list-en-c2-agent-vmware-one-up.txt")
    assert (adapter.name, adapter.description, adapter.operational, adapter.media) == (
        "Ethernet0", "Intel(R) 82574L Gigabit Network Connection", "Up", "Connected",
    )  # fmt: skip
    assert adapter.up and net_adapter_kind(adapter) == ""


@pytest.mark.parametrize(
    ("name", "up"),
    [("netadapter/list-es-virtualbox-disabled.txt", False),
     ("netadapter/list-es-virtualbox-enabled.txt", True)],
)  # fmt: skip
def test_a_virtual_machines_host_adapter_is_no_vpn_disabled_or_up(name: str, up: bool) -> None:
    # The same VirtualBox adapter disabled (Down, media "Unknown") and enabled again.
    (adapter,) = adapters(name)
    assert adapter.up is up and net_adapter_kind(adapter) == ""


def test_no_output_is_no_adapter_and_a_cut_block_is_refused() -> None:
    assert parse_net_adapters("") == []
    # The Spanish recording without its first adapter's MediaConnectionState line: what the
    # adapter's state is cannot be told, so it is refused rather than read as down.
    cut = "\n".join(
        line
        for i, line in enumerate(fixture(SPANISH).decode().split("\n"))
        if not (i < 12 and line.startswith("MediaConnectionState"))
    )
    with pytest.raises(ParseError, match="without MediaConnectionState"):
        parse_net_adapters(cut)


def test_a_state_word_outside_the_documented_ones_is_refused() -> None:
    # A translated word where Windows prints "Down" would be a guess either way.
    text = fixture(SPANISH).decode().replace(": Down", ": Inactivo", 1)
    with pytest.raises(ParseError, match="InterfaceOperationalStatus"):
        parse_net_adapters(text)


@pytest.mark.parametrize(
    "name",
    [
        "route_print/route-print-4-en-sangfor-easyconnect-tap-win32.txt",
        "route_print/route-print-interfaces-zh-note-sangfor-fortinet-wintun.txt",
        "route_print/route-print-interfaces-en-wsl-6913-anyconnect-hyperv-virtualbox.txt",
        "route_print/route-print-interfaces-en-frostwire-642-vmware-tap.txt",
    ],
)
def test_every_recorded_description_is_the_same_vpn_kind_from_either_source(name: str) -> None:
    # Real machines' adapter descriptions (EasyConnect, FortiClient, Wintun, AnyConnect, TAP,
    # Hyper-V, VirtualBox, VMware, Npcap): Get-NetAdapter names an adapter by the description
    # ipconfig prints, and judges it the same.
    for description in route_print_descriptions(name):
        listed = NetAdapter("Ethernet 3", description, "Up", "Connected")
        assert net_adapter_kind(listed) == adapter_kind(ethernet(description)), description


# --- the probe --------------------------------------------------------------------------


def run(host: WindowsReplayHost) -> FactOutcome:
    return vpn.probe(ProbeContext(host, ProbeConfig(), pb.PostureReport()))


def codes(outcome: FactOutcome) -> list[tuple[str, int]]:
    return [(e.source, e.code) for e in outcome.errors]


def test_a_machine_whose_language_has_no_table_still_reads_its_vpn_adapters() -> None:
    # ipconfig in Dutch (no table: refused) and the adapters from Get-NetAdapter: the VPN
    # adapter is read, down, from the language-independent source. A composite of two real
    # machines (a Dutch ipconfig, a Spanish Get-NetAdapter): no machine with both recorded.
    host = WindowsReplayHost(console_encoding="cp850")
    host.record(cmd.NET_ADAPTERS, output(SPANISH))
    host.record(cmd.IPCONFIG, output(DUTCH_IPCONFIG))
    outcome = run(host)
    assert isinstance(outcome.fact, pb.VpnFact) and not outcome.fact.active
    assert [(i.name, i.kind, i.up) for i in outcome.fact.interfaces] == [
        ("TAP-Windows Adapter V9", "tap", False)
    ]
    # ipconfig alone lists the built-in client's PPP connections: its failure is named, so a
    # public network with no VPN seen reads UNKNOWN, never a FAIL it cannot prove.
    assert codes(outcome) == [("ipconfig", pb.PROBE_ERROR_CODE_PARSE_ERROR)]


def test_get_netadapter_failing_costs_nothing_where_ipconfig_was_read() -> None:
    # Windows 7 has no NetAdapter module; ipconfig lists every adapter it would have.
    host = WindowsReplayHost(console_encoding="cp936")
    host.record(cmd.NET_ADAPTERS, (1, b"", b""))
    host.record(cmd.IPCONFIG, output("ipconfig/all-zh-openvpn-tap-connected-fragment.utf8.txt"))
    outcome = run(host)
    assert codes(outcome) == []
    assert isinstance(outcome.fact, pb.VpnFact) and outcome.fact.active


def test_an_adapter_both_list_is_up_only_when_both_say_so() -> None:
    # The same driver (TAP-Windows Adapter V9) down in Get-NetAdapter and connected with an
    # address in ipconfig: two real machines' recordings, so the two disagree; the adapter is
    # listed once and read down. (A VPN adapter Windows calls up with only a 169.254 address
    # is the case this rule is for; no recording of one in Get-NetAdapter was found.)
    host = WindowsReplayHost(console_encoding="cp936")
    host.record(cmd.NET_ADAPTERS, output(SPANISH))
    host.record(cmd.IPCONFIG, output("ipconfig/all-zh-openvpn-tap-connected-fragment.utf8.txt"))
    outcome = run(host)
    assert isinstance(outcome.fact, pb.VpnFact) and codes(outcome) == []
    assert [(i.name, i.kind, i.up) for i in outcome.fact.interfaces] == [
        ("TAP-Windows Adapter V9", "tap", False)
    ]


def test_psutil_names_still_supplement_both() -> None:
    host = WindowsReplayHost(console_encoding="cp850")
    host.record(cmd.NET_ADAPTERS, output(SPANISH))
    host.record(cmd.IPCONFIG, output(DUTCH_IPCONFIG))
    host.interfaces = [NetInterface("OpenVPN Wintun", True)]
    outcome = run(host)
    assert isinstance(outcome.fact, pb.VpnFact) and outcome.fact.active
    assert [(i.name, i.up) for i in outcome.fact.interfaces][-1] == ("OpenVPN Wintun", True)
