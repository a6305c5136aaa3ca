"""6.3.2 judged from the agent's classes and reasons: FAIL says why, a hidden name is UNKNOWN."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.policy.checks import CheckParameters, State, Verdict, check_public_wifi
from devposture.policy.reasons import encode, parse, render
from devposture.v1 import devposture_pb2 as pb

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
START = NOW - dt.timedelta(hours=1)


def ts(when: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def add(
    report: pb.PostureReport,
    classification: pb.NetworkClass.ValueType,
    network_id: str,
    reasons: tuple[str, ...] = (),
    vpn_after: int | None = None,
    interface: str = "en0",
) -> None:
    session = report.wifi.sessions.add(
        network_id=network_id,
        classification=classification,
        classification_reasons=reasons,
        interface=interface,
        started_at=ts(START),
        vpn_up=vpn_after is not None,
    )
    if vpn_after is not None:
        session.vpn_up_at.CopyFrom(ts(START + dt.timedelta(seconds=vpn_after)))


def judge(report: pb.PostureReport) -> Verdict:
    """The verdict with its reason in English, times in UTC (stored: a code, see below)."""
    verdict = check_public_wifi(report, NOW, CheckParameters())
    assert parse(verdict.reason) is not None, verdict.reason
    return Verdict(verdict.state, render(verdict.reason, "en", dt.UTC))


def wifi() -> pb.PostureReport:
    report = pb.PostureReport()
    report.wifi.has_wifi_interface = True
    return report


def test_fail_names_the_network_and_why_it_counted_as_public() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_PUBLIC, "CMCC-WEB", ("name matches CMCC-WEB",))
    add(report, pb.NETWORK_CLASS_PUBLIC, "Tenda", ("Windows network category Public",), 600)
    verdict = judge(report)
    assert verdict == Verdict(
        State.FAIL,
        "public Wi-Fi: CMCC-WEB (name matches CMCC-WEB) at 2026-11-24 11:00 (UTC+00:00)"
        " without VPN; "
        "Tenda (Windows network category Public): VPN came up 600 s late",
    )


def test_a_hidden_name_without_vpn_is_unknown_with_the_remedy() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_UNKNOWN, "", ("name hidden by macOS",))
    verdict = judge(report)
    assert verdict.state is State.UNKNOWN
    assert verdict.reason.startswith("network name hidden by macOS: grant Location Services")
    assert "Wi-Fi on en0 at 2026-11-24 11:00 (UTC+00:00) without VPN" in verdict.reason
    late = wifi()
    add(late, pb.NETWORK_CLASS_UNKNOWN, "", ("name hidden by macOS",), vpn_after=900)
    assert judge(late).state is State.UNKNOWN


def test_a_public_failure_outweighs_a_hidden_name() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_UNKNOWN, "", ("name hidden by macOS",))
    add(report, pb.NETWORK_CLASS_PUBLIC, "ChinaNet", ("open network", "captive portal"))
    verdict = judge(report)
    assert verdict.state is State.FAIL
    assert verdict.reason == (
        "public Wi-Fi: ChinaNet (open network, captive portal) at 2026-11-24 11:00 (UTC+00:00)"
        " without VPN"
    )


def test_a_hidden_name_with_a_vpn_in_time_passes() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_UNKNOWN, "", ("name hidden by macOS",), vpn_after=0)
    add(report, pb.NETWORK_CLASS_PUBLIC, "i-Shanghai", ("name matches i-Shanghai",), 30)
    add(report, pb.NETWORK_CLASS_OTHER, "h:0123", ())
    verdict = judge(report)
    assert verdict == Verdict(
        State.PASS,
        "3 Wi-Fi sessions, 1 public, 1 with a hidden name, all with VPN: "
        "i-Shanghai (name matches i-Shanghai)",
    )


def test_an_open_network_whose_name_was_hidden_is_still_public() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_PUBLIC, "", ("open network", "name hidden by macOS"))
    verdict = judge(report)
    assert verdict.state is State.FAIL
    assert "a network with a hidden name (open network, name hidden by macOS)" in verdict.reason


def test_no_name_from_another_os_is_said_so() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_UNKNOWN, "", ("the OS gave no network name",), None, "wlo1")
    verdict = judge(report)
    assert verdict.state is State.UNKNOWN
    assert verdict.reason.startswith("network name not reported by the OS")
    assert "macOS" not in verdict.reason


def test_trusted_and_other_sessions_pass_as_before() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_TRUSTED, "Corp", ("company network",))
    add(report, pb.NETWORK_CLASS_OTHER, "h:0123")
    assert judge(report) == Verdict(State.PASS, "2 Wi-Fi sessions, none on a public network")


def test_the_stored_reason_is_a_code_shown_in_chinese_in_beijing_time() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_UNKNOWN, "", ("name hidden by macOS",))
    stored = check_public_wifi(report, NOW, CheckParameters()).reason
    found = parse(stored)
    assert found is not None and found.code == "wifi.hidden_macos"
    assert found.params == {
        "sessions": [["wifi.hidden_no_vpn", {"interface": "en0", "at": int(START.timestamp())}]]
    }
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert render(stored, "zh", beijing) == (
        "macOS 隐藏了网络名称：请在“系统设置 > 隐私与安全性 > 定位服务”中允许 devposture 客户端；"
        "无法判断是否为公共网络：2026-11-24 19:00（UTC+08:00）通过 en0 连接无线网络时未使用 VPN"
    )


def test_english_reasons_count_in_the_singular_and_the_plural() -> None:
    """The dashboard and `reason_text` in English said "1 Wi-Fi session(s)", "12 other
    update(s)": each count now takes its noun's number, and a device's own words are never
    touched (a network named "2 guest(s)" stays as it is named)."""
    one = wifi()
    add(one, pb.NETWORK_CLASS_TRUSTED, "Office-5G", ())
    assert judge(one).reason == "1 Wi-Fi session, none on a public network"
    named = wifi()
    add(named, pb.NETWORK_CLASS_PUBLIC, "2 guest(s)", ("open network",), vpn_after=0)
    assert judge(named).reason.startswith("1 Wi-Fi session, 1 public, all with VPN: 2 guest(s)")
    cases = {
        encode("upd.ok", others=1, checked=0): "(1 other update)",
        encode("upd.ok", others=12, checked=0): "(12 other updates)",
        encode("fw.off_profiles", profiles=["Public"]): "active profile: Public",
        encode("fw.off_profiles", profiles=["Public", "Private"]): "active profiles: Public",
        encode("backup.none", locations=1): "(1 location checked)",
    }
    for stored, words in cases.items():
        assert words in render(stored, "en", dt.UTC), stored
        assert "(s)" not in render(stored, "en", dt.UTC)


def test_no_vpn_seen_while_the_vpn_could_not_be_read_is_unknown_naming_why() -> None:
    """A Windows whose `ipconfig` the agent cannot read (its language) reports the VPN from
    the connection names alone, with the failure beside it: no VPN seen is then no proof of
    none, and a public session without one cannot be judged. It read FAIL."""
    report = wifi()
    add(report, pb.NETWORK_CLASS_PUBLIC, "CMCC-WEB", ("name matches CMCC-WEB",))
    report.vpn.active = False
    report.errors.add(fact=pb.FACT_VPN, source="ipconfig",
                      code=pb.PROBE_ERROR_CODE_PARSE_ERROR,
                      message="ipconfig /all: unknown adapter heading")  # fmt: skip
    verdict = judge(report)
    assert verdict.state is State.UNKNOWN
    assert verdict.reason.startswith("whether a VPN was up could not be read (ipconfig: ")
    assert "CMCC-WEB" in verdict.reason and "ipconfig /all: unknown adapter heading" in (
        verdict.reason
    )
    chinese = render(check_public_wifi(report, NOW, CheckParameters()).reason, "zh", dt.UTC)
    assert "VPN" in chinese and "CMCC-WEB" in chinese and "could not" not in chinese
    # The whole VPN fact failed: the same.
    report.ClearField("vpn")
    del report.errors[:]
    report.errors.add(fact=pb.FACT_VPN, code=pb.PROBE_ERROR_CODE_COMMAND_FAILED, message="boom")
    assert judge(report).state is State.UNKNOWN


def test_a_vpn_seen_late_is_a_fail_even_when_a_vpn_source_failed() -> None:
    report = wifi()
    add(report, pb.NETWORK_CLASS_PUBLIC, "CMCC-WEB", ("name matches CMCC-WEB",), vpn_after=600)
    report.errors.add(fact=pb.FACT_VPN, source="ipconfig",
                      code=pb.PROBE_ERROR_CODE_PARSE_ERROR, message="x")  # fmt: skip
    assert judge(report).state is State.FAIL
    # And with the VPN read, no VPN on a public network is a FAIL, as before.
    report = wifi()
    add(report, pb.NETWORK_CLASS_PUBLIC, "CMCC-WEB", ("name matches CMCC-WEB",))
    report.vpn.active = False
    assert judge(report).state is State.FAIL
