"""Windows' network category (Get-NetConnectionProfile) as a public-network signal.

Every output is a published recording (tests/fixtures/windows/README.md). The probe tests pair
a netsh recording with a Get-NetConnectionProfile recording of another machine that has an
interface of the same name: composites, said so in each test.
"""

from __future__ import annotations

import datetime as dt

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.connection_profiles import (
    categories_by_interface,
    parse_connection_profiles,
)
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.agent.probes.windows import wifi
from devposture.policy.checks import CheckParameters, State, check_public_wifi
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output

COFFEEBAR = "connection_profile/netconnectionprofile-wifi-public-coffeebar.txt"
ZH_UTF8 = "connection_profile/netconnectionprofile-zh-wlan-private-cmcc-zerotier.utf8.txt"
ZH_GBK = "connection_profile/netconnectionprofile-zh-wlan-private-cmcc-zerotier.cp936-crlf.txt"
CONFIG = ProbeConfig(network_hash_key=b"k")


def text(relative: str, encoding: str = "utf-8") -> str:
    return decode_output(fixture(relative), encoding)


def test_profiles_of_wifi_and_other_adapters() -> None:
    (cafe,) = parse_connection_profiles(text(COFFEEBAR))
    assert (cafe.name, cafe.interface_alias, cafe.category) == (
        "@Coffeebar Guest WiFi", "Wi-Fi", "Public",
    )  # fmt: skip
    assert (cafe.ipv4_connectivity, cafe.ipv6_connectivity) == ("Internet", "NoTraffic")
    # Chinese Windows 11: "CMCC-Captain", its user's own network, filed as Private; ZeroTier.
    assert categories_by_interface(text(ZH_UTF8)) == {
        "WLAN": "Private",
        "ZeroTier One [272f5eae1628958e]": "Public",
    }
    assert parse_connection_profiles(text(ZH_GBK, "cp936")) == parse_connection_profiles(
        text(ZH_UTF8)
    )
    assert parse_connection_profiles(text(ZH_GBK, "cp936"))[1].name == "网络 3"
    ja = categories_by_interface(
        text("connection_profile/netconnectionprofile-ja-three-networks.txt")
    )
    assert ja["VMware Network Adapter VMnet1"] == "Public" and ja["Tailscale"] == "Private"
    assert parse_connection_profiles("") == []  # no network connected: the cmdlet prints nothing


def test_a_category_windows_does_not_have_is_an_error() -> None:
    with pytest.raises(ParseError):
        parse_connection_profiles("InterfaceAlias : WLAN\nNetworkCategory : Öffentlich\n")
    with pytest.raises(ParseError):
        parse_connection_profiles("Name : x\nNetworkCategory : Public\n")  # no interface


def test_the_probe_asks_what_the_firewall_probe_asks() -> None:
    assert cmd.CONNECTION_PROFILES == cmd.CONNECTION_PROFILES


def _probe(host: WindowsReplayHost) -> FactOutcome:
    return run_probe(pb.FACT_WIFI, wifi.probe, ProbeContext(host, CONFIG, pb.PostureReport()))


def test_a_wifi_connection_windows_files_as_public_is_public() -> None:
    # Composite: an AX201 laptop on WPA2 "Tenda_EBBAA0" (interface "Wi-Fi") and a coffee
    # bar's guest Wi-Fi listed by Get-NetConnectionProfile on another laptop's "Wi-Fi".
    host = WindowsReplayHost()
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-en-win11-ax201-wpa2.txt"))
    host.record(cmd.CONNECTION_PROFILES, output(COFFEEBAR))
    outcome = _probe(host)
    assert outcome.errors == []
    assert isinstance(outcome.fact, pb.WifiFact)
    (session,) = outcome.fact.sessions
    assert session.security == pb.WIFI_SECURITY_WPA2_PERSONAL
    assert (session.network_id, session.classification) == (
        "Tenda_EBBAA0", pb.NETWORK_CLASS_PUBLIC,
    )  # fmt: skip
    assert session.network_category == "Public"
    assert list(session.classification_reasons) == ["Windows network category Public"]
    assert not session.HasField("captive_portal")  # Windows' portal signal is not read

    report = pb.PostureReport()
    report.wifi.CopyFrom(outcome.fact)
    verdict = check_public_wifi(report, host.clock, CheckParameters())
    assert verdict.state is State.FAIL
    shown = render(verdict.reason, "en", dt.UTC)
    assert "Tenda_EBBAA0 (Windows network category Public)" in shown


def test_a_private_category_on_a_chinese_machine_keeps_the_name_private() -> None:
    # Composite: Chinese Windows 11 netsh (GBK) on "TP-LINK_5G_D3DA" via "WLAN", and the
    # Chinese Windows 11 listing whose "WLAN" network its user filed as Private.
    host = WindowsReplayHost(console_encoding="cp936")
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-zh-win11-ax211-wpa2.cp936-crlf.txt"))
    host.record(cmd.CONNECTION_PROFILES, output(ZH_GBK))
    outcome = _probe(host)
    assert outcome.errors == []
    assert isinstance(outcome.fact, pb.WifiFact)
    (session,) = outcome.fact.sessions
    assert session.classification == pb.NETWORK_CLASS_OTHER
    assert session.network_id.startswith("h:") and "TP-LINK" not in str(outcome.fact)
    assert session.network_category == "Private" and list(session.classification_reasons) == []


def test_an_interface_windows_does_not_list_has_no_category() -> None:
    # The listing has only an Ethernet network (Windows still identifying the Wi-Fi one).
    host = WindowsReplayHost()
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-fr-win11-ax201-open.txt"))
    host.record(
        cmd.CONNECTION_PROFILES,
        output("connection_profile/netconnectionprofile-ethernet-public.txt"),
    )
    outcome = _probe(host)
    assert outcome.errors == []
    assert isinstance(outcome.fact, pb.WifiFact)
    (session,) = outcome.fact.sessions
    assert session.network_category == ""
    assert list(session.classification_reasons) == ["open network"]  # "Ouvrir"


def test_the_cmdlet_failing_costs_the_category_not_the_session() -> None:
    host = WindowsReplayHost()
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-en-win11-ax201-wpa2.txt"))
    host.record(cmd.CONNECTION_PROFILES, (1, b"", b""))  # as on Windows 7 (machines.py)
    outcome = _probe(host)
    assert isinstance(outcome.fact, pb.WifiFact)
    (session,) = outcome.fact.sessions
    assert session.classification == pb.NETWORK_CLASS_OTHER and session.network_category == ""
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("Get-NetConnectionProfile", pb.PROBE_ERROR_CODE_COMMAND_FAILED)
    ]


def test_no_connected_interface_asks_nothing_more() -> None:
    host = WindowsReplayHost()
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-en-no-wireless-interface.txt"))
    assert _probe(host).errors == []
    assert all(call[0] != "powershell" for call in host.calls)
