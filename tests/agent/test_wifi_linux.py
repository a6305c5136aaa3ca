"""Linux Wi-Fi with NetworkManager's captive-portal signal, on real nmcli recordings.

The connectivity recordings come from real NetworkManager 1.42 behind a real (namespaced)
captive portal (tests/fixtures/linux/nmcli/record-connectivity.sh); the association comes from
the public recordings of a laptop on "HomeNet" (see the fixtures README). Pairing them is a
composite: the portal recording's device was named wlo1 like that laptop's Wi-Fi card.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.nmcli import parse_connectivity
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.linux import wifi
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.agent.sessions import SessionLog
from devposture.policy.checks import CheckParameters, State, check_public_wifi
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost, fixture_text, ok, recorded

DEVICES = ("nmcli", "-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device")
WIFI_LIST = (
    "nmcli", "-t", "-f", "IN-USE,SSID,BSSID,CHAN,SIGNAL,SECURITY",
    "device", "wifi", "list", "--rescan", "no",
)  # fmt: skip
CONFIG = ProbeConfig(network_hash_key=b"k")


def connectivity(state: str) -> str:
    return fixture_text(f"nmcli/nmcli-device-connectivity-{state}-netns.out")


def test_connectivity_recordings() -> None:
    assert parse_connectivity(connectivity("portal")) == {"wlo1": True, "lo": None}
    assert parse_connectivity(connectivity("full")) == {"wlo1": False, "lo": None}
    # Behind a stopped portal server, and with no connectivity URI at all: no portal signal.
    assert parse_connectivity(connectivity("limited")) == {"wlo1": None, "lo": None}
    assert parse_connectivity(connectivity("checks-off")) == {"wlo1": None, "lo": None}
    assert parse_connectivity("") == {}


def test_connectivity_that_is_not_understood_is_an_error() -> None:
    with pytest.raises(ParseError):
        parse_connectivity("wlo1:portal\n")  # a field missing
    with pytest.raises(ParseError):
        parse_connectivity("wlo1:2 (portal):none\n")  # not terse mode's word


def _laptop(connectivity_recording: str) -> ReplayHost:
    host = ReplayHost().with_tool("nmcli")
    host.dirs["/sys/class/net"] = ["eno1", "lo", "wlo1"]
    host.dirs["/sys/class/net/wlo1/wireless"] = []
    host.commands[DEVICES] = ok(fixture_text("nmcli/nmcli-device-wifi-connected.out"))
    host.commands[WIFI_LIST] = ok(fixture_text("nmcli/nmcli-wifi-list-in-use-mesh.out"))
    host.commands[cmd.NMCLI_CONNECTIVITY] = recorded(f"nmcli/{connectivity_recording}")
    return host


def _probe(
    host: ReplayHost, report: pb.PostureReport | None = None
) -> tuple[pb.WifiSession, list[pb.ProbeError]]:
    ctx = ProbeContext(host, CONFIG, report or pb.PostureReport())
    outcome = run_probe(pb.FACT_WIFI, wifi.probe, ctx)
    assert isinstance(outcome.fact, pb.WifiFact)
    (session,) = outcome.fact.sessions
    return session, outcome.errors


def test_a_wpa2_network_behind_a_captive_portal_is_public() -> None:
    session, errors = _probe(_laptop("nmcli-device-connectivity-portal-netns"))
    assert errors == []
    assert session.security == pb.WIFI_SECURITY_WPA2_PERSONAL  # "WPA2 WPA3": WPA2 admitted
    assert session.classification == pb.NETWORK_CLASS_PUBLIC
    assert session.network_id == "HomeNet"  # public networks are reported by name
    assert list(session.classification_reasons) == ["captive portal"]
    assert session.HasField("captive_portal") and session.captive_portal


def test_full_connectivity_means_no_portal_and_a_private_name() -> None:
    session, errors = _probe(_laptop("nmcli-device-connectivity-full-netns"))
    assert errors == []
    assert session.classification == pb.NETWORK_CLASS_OTHER
    assert session.network_id.startswith("h:") and list(session.classification_reasons) == []
    assert session.HasField("captive_portal") and not session.captive_portal


def test_without_a_connectivity_check_the_portal_is_unknown_not_absent() -> None:
    session, errors = _probe(_laptop("nmcli-device-connectivity-checks-off-netns"))
    assert errors == []
    assert session.classification == pb.NETWORK_CLASS_OTHER
    assert not session.HasField("captive_portal")


def test_connectivity_unreadable_keeps_the_session_and_says_why() -> None:
    session, errors = _probe(_laptop("nmcli-device-connectivity-no-daemon-debian12"))
    assert session.classification == pb.NETWORK_CLASS_OTHER
    assert not session.HasField("captive_portal")
    assert [(e.source, e.code) for e in errors] == [
        ("nmcli connectivity", pb.PROBE_ERROR_CODE_COMMAND_FAILED)
    ]
    assert "NMClient" not in errors[0].message  # nmcli's own text stays out of reports


def test_portal_found_after_joining_fails_the_check_from_the_start(tmp_path: Path) -> None:
    """Joined at 09:30 with no portal known yet; at 09:31 NetworkManager reports the portal.
    The session keeps its 09:30 start, becomes public, and no VPN ever came up: FAIL."""
    log = SessionLog(tmp_path / "wifi-sessions.json", CONFIG.network_hash_key)
    first = _laptop("nmcli-device-connectivity-checks-off-netns")
    later = _laptop("nmcli-device-connectivity-portal-netns")
    later.clock = datetime(2026, 1, 15, 9, 31, tzinfo=UTC)
    report = pb.PostureReport()
    for host in (first, later):
        report = pb.PostureReport()
        report.collected_at.FromDatetime(host.clock)
        ctx = ProbeContext(host, CONFIG, report)
        outcome = run_probe(pb.FACT_WIFI, wifi.probe, ctx)
        assert isinstance(outcome.fact, pb.WifiFact)
        report.wifi.CopyFrom(outcome.fact)
        log.apply(report)
    (session,) = report.wifi.sessions
    assert session.classification == pb.NETWORK_CLASS_PUBLIC and session.network_id == "HomeNet"
    assert session.started_at.ToDatetime(UTC) == datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    assert not session.HasField("ended_at") and session.captive_portal
    verdict = check_public_wifi(report, later.clock, CheckParameters())
    assert verdict.state is State.FAIL
    assert render(verdict.reason, "en", UTC) == (
        "public Wi-Fi: HomeNet (captive portal) at 2026-01-15 09:30 (UTC+00:00) without VPN"
    )


# --- what nmcli cannot print in the C locale (tests/fixtures/linux/nmcli/record-wifi-names.sh)
#
# Real nmcli 1.42.4 under the agent's LC_ALL=C, reading access points from NetworkManager's own
# test service: "公司网络" (UTF-8) prints "????" and "星巴克" (GBK bytes) "??????", so every
# Chinese name read as question marks; a WPA3-Enterprise 192-bit network prints no security, as
# an open one does. The bytes and the flags come from a second listing.

DETAILS = (
    "nmcli", "-t", "-f", "IN-USE,BSSID,SSID-HEX,WPA-FLAGS,RSN-FLAGS",
    "device", "wifi", "list", "--rescan", "no",
)  # fmt: skip


def _named(in_use: str, with_details: bool = True) -> ReplayHost:
    host = ReplayHost().with_tool("nmcli")
    host.dirs["/sys/class/net"] = ["lo", "wlp2s0"]
    host.dirs["/sys/class/net/wlp2s0/wireless"] = []
    host.commands[DEVICES] = recorded("nmcli/nmcli-device-wifi-names-mock")
    host.commands[WIFI_LIST] = recorded(f"nmcli/nmcli-wifi-list-{in_use}-mock")
    host.commands[cmd.NMCLI_CONNECTIVITY] = recorded(
        "nmcli/nmcli-device-connectivity-wifi-names-mock"
    )
    if with_details:
        host.commands[DETAILS] = recorded(f"nmcli/nmcli-wifi-details-{in_use}-mock")
    return host


def _session(host: ReplayHost, config: ProbeConfig) -> pb.WifiSession:
    outcome = run_probe(pb.FACT_WIFI, wifi.probe, ProbeContext(host, config, pb.PostureReport()))
    assert isinstance(outcome.fact, pb.WifiFact) and outcome.errors == []
    (session,) = outcome.fact.sessions
    return session


def test_a_chinese_company_network_is_trusted_by_its_name() -> None:
    config = ProbeConfig(network_hash_key=b"k", trusted_networks=("公司网络",))
    session = _session(_named("company-utf8"), config)
    assert session.classification == pb.NETWORK_CLASS_TRUSTED
    assert session.network_id == "公司网络"


def test_a_gbk_name_is_read_as_a_chinese_machine_shows_it() -> None:
    # A router that stores its name in GBK, as older Chinese routers do: nmcli itself decodes
    # such bytes as GB18030 under a zh_CN locale; in C it printed "??????".
    config = ProbeConfig(network_hash_key=b"k", public_network_patterns=("星巴克*",))
    session = _session(_named("gbk"), config)
    assert session.classification == pb.NETWORK_CLASS_PUBLIC
    assert (session.network_id, list(session.classification_reasons)) == (
        "星巴克",
        ["name matches 星巴克*"],
    )


def test_the_open_half_of_an_owe_transition_network_is_open() -> None:
    # The open half of an OWE transition network ("Cafe"): nmcli 1.40 and later print OWE-TM
    # for it, a network without encryption (NetworkManager's commit 02e35f5b: "which itself is
    # unencrypted"). It was an unknown token: security UNKNOWN, and the café not public.
    session = _session(_named("owe-transition", with_details=False), CONFIG)
    assert session.security == pb.WIFI_SECURITY_OPEN
    assert session.classification == pb.NETWORK_CLASS_PUBLIC
    assert (session.network_id, list(session.classification_reasons)) == ("Cafe", ["open network"])


def test_names_that_cannot_be_read_are_never_kept_as_question_marks() -> None:
    host = _named("gbk", with_details=False)
    host.commands[DETAILS] = recorded("nmcli/nmcli-wifi-details-company-utf8-mock")
    outcome = run_probe(pb.FACT_WIFI, wifi.probe, ProbeContext(host, CONFIG, pb.PostureReport()))
    # The listings disagree on which access point is in use: no name, no session.
    assert outcome.fact is None
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("nmcli", pb.PROBE_ERROR_CODE_PARSE_ERROR)
    ]


def test_a_network_nmcli_prints_no_security_for_is_read_from_its_flags() -> None:
    # WPA3-Enterprise 192-bit: nmcli 1.42 has no word for it and printed an empty SECURITY,
    # read as an open network, so a company's most protected network was public.
    session = _session(_named("suite-b-192"), CONFIG)
    assert session.security == pb.WIFI_SECURITY_WPA3_ENTERPRISE
    assert session.classification == pb.NETWORK_CLASS_OTHER


def test_an_open_network_is_open_by_its_flags_too() -> None:
    session = _session(_named("open"), CONFIG)
    assert session.security == pb.WIFI_SECURITY_OPEN
    assert (session.network_id, list(session.classification_reasons)) == (
        "Airport-Free",
        ["open network"],
    )
