"""Clause 6.3.2 on Windows: a PPP adapter is no VPN unless its name says so. A dial-up
broadband (PPPoE) connection is a "PPP adapter" as the built-in VPN client's is, and counted
as a VPN it made a PC on PPPoE pass on public Wi-Fi. Sources: the "ipconfig" table of
tests/fixtures/windows/README.md (real machines' outputs)."""

from __future__ import annotations

import pytest

from devposture.agent.parsers.windows.ipconfig import Adapter, parse_ipconfig
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.config import ProbeConfig
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.windows import vpn
from devposture.agent.probes.windows.vpn_adapters import adapter_kind, adapter_up, ppp_link
from devposture.policy.checks import State
from devposture.v1 import devposture_pb2 as pb
from tests.agent.public_wifi import public_session_verdict
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output

BROADBAND = "ipconfig/all-en-win7-pppoe-broadband-connection.txt"
PPTP = "ipconfig/all-en-pptp-vpn-fragment.txt"
ITALIAN_DSL = "ipconfig/all-it-xp-pppoe-dsl.txt"
FRENCH_3G = "ipconfig/plain-fr-win7-ppp-3g-fragment.txt"


def ppp_adapters(name: str) -> list[Adapter]:
    return [a for a in parse_ipconfig(decode_output(fixture(name), "cp850")) if a.kind == "ppp"]


@pytest.mark.parametrize(
    ("name", "link", "kind", "up"),
    [
        # Windows 7's default name for a PPPoE connection, connected with a public address.
        (BROADBAND, "broadband", "", True),
        # A PPTP client's connection named "VPN", connected.
        (PPTP, "vpn", "ppp", True),
        # An Italian XP's DSL dial-up named by its user ("alberto", description "WAN (PPP/SLIP)
        # Interface"), connected: nothing in ipconfig tells it from a VPN.
        (ITALIAN_DSL, "unknown", "", True),
        # A French 3G connection, "OneClick Internet" (its address replaced by the author).
        (FRENCH_3G, "unknown", "", False),
    ],
)
def test_a_ppp_adapter_is_judged_by_its_name(name: str, link: str, kind: str, up: bool) -> None:
    (adapter,) = ppp_adapters(name)
    assert (ppp_link(adapter), adapter_kind(adapter), adapter_up(adapter)) == (link, kind, up)


def test_windows_default_broadband_names_numbered_and_in_chinese() -> None:
    # "Broadband Connection 2" in a real plain `ipconfig` (index id 57016599036), and the
    # Chinese default name (no recording found: the title is built as ipconfig prints it).
    for title in ("PPP adapter Broadband Connection 2:", "PPP 适配器 宽带连接:"):
        (adapter,) = parse_ipconfig(f"{title}\n\n   IPv4 Address. . . : 219.90.97.153\n")
        assert (ppp_link(adapter), adapter_kind(adapter)) == ("broadband", "")
    # An Ethernet adapter is no PPP link, whatever its name.
    (lan,) = parse_ipconfig("Ethernet adapter VPN:\n\n   IPv4 Address. . . : 10.0.0.2\n")
    assert ppp_link(lan) == ""


def run(ipconfig: str) -> FactOutcome:
    host = WindowsReplayHost(console_encoding="cp850")
    host.record(cmd.NET_ADAPTERS, (1, b"", b""))  # as on Windows 7: no NetAdapter module
    host.record(cmd.IPCONFIG, output(ipconfig))
    return vpn.probe(ProbeContext(host, ProbeConfig(), pb.PostureReport()))


def facts(outcome: FactOutcome) -> tuple[bool, list[tuple[str, str, bool]]]:
    assert isinstance(outcome.fact, pb.VpnFact)
    return outcome.fact.active, [(i.name, i.kind, i.up) for i in outcome.fact.interfaces]


def test_a_pppoe_dial_up_is_no_vpn() -> None:
    outcome = run(BROADBAND)
    assert facts(outcome) == (False, []) and outcome.errors == []


def test_a_connected_vpn_connection_is_a_vpn() -> None:
    outcome = run(PPTP)
    assert facts(outcome) == (True, [("VPN", "ppp", True)]) and outcome.errors == []


def test_a_ppp_link_up_that_its_name_does_not_tell_is_said_and_not_counted() -> None:
    outcome = run(ITALIAN_DSL)
    assert facts(outcome) == (False, [])
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("ipconfig", pb.PROBE_ERROR_CODE_NO_SOURCE)
    ]
    assert "1 PPP connection(s)" in outcome.errors[0].message


def test_a_ppp_link_that_is_down_is_no_vpn_and_nothing_to_say() -> None:
    outcome = run(FRENCH_3G)
    assert facts(outcome) == (False, []) and outcome.errors == []


@pytest.mark.parametrize(
    ("name", "state"),
    [(BROADBAND, State.FAIL), (ITALIAN_DSL, State.UNKNOWN), (PPTP, State.PASS)],
)
def test_public_wifi_never_passes_on_a_pppoe_link(name: str, state: State) -> None:
    assert public_session_verdict(run(name)) == state
