"""netsh wlan outputs of machines the first fixtures did not cover: a published copy that lacks
the authentication line, the location-permission refusal in Chinese, a Spanish Windows 10 read
through its console code page. Sources: the "netsh_wlan" table of
tests/fixtures/windows/README.md."""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.netsh_wlan import WlanReport, parse_wlan_interfaces
from devposture.agent.parsers.windows.text import decode_output
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.agent.probes.runner import run_probe
from devposture.agent.probes.windows import wifi
from devposture.policy.checks import CheckParameters, State, check_public_wifi
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import WindowsReplayHost, fixture, output

NO_AUTH_UTF8 = "netsh_wlan/interfaces-zh-win11-band-excerpt-no-auth.utf8.txt"
NO_AUTH_GBK = "netsh_wlan/interfaces-zh-win11-band-excerpt-no-auth.cp936-crlf.txt"
ZH_LOCATION = "netsh_wlan/interfaces-zh-win11-location-denied-quoted"
ZH_ERROR_5 = "netsh_wlan/interfaces-zh-error-5-elevation-quoted"
ES_UTF8 = "netsh_wlan/interfaces-es-win10-3160-wpa2.utf8.txt"
ES_CP850 = "netsh_wlan/interfaces-es-win10-3160-wpa2.cp850-crlf.txt"


def parse(relative: str, encoding: str = "cp437") -> WlanReport:
    return parse_wlan_interfaces(decode_output(fixture(relative), encoding))


def _probe(host: WindowsReplayHost) -> FactOutcome:
    config = ProbeConfig(network_hash_key=b"k")
    return run_probe(pb.FACT_WIFI, wifi.probe, ProbeContext(host, config, pb.PostureReport()))


def test_a_connected_interface_without_its_authentication_line_is_not_read() -> None:
    # A Chinese Windows 11 copy that keeps name, state, SSID, band and rates but no 身份验证:
    # read as connected with an unknown security, the network classed "other" (no public
    # signal) and the 6.3.2 check passed a network whose openness nobody read.
    assert decode_output(fixture(NO_AUTH_GBK), "cp936") == fixture(NO_AUTH_UTF8).decode()
    with pytest.raises(ParseError, match="authentication"):
        parse(NO_AUTH_GBK, "cp936")


def test_the_public_wifi_check_reads_unknown_not_pass_without_the_authentication() -> None:
    host = WindowsReplayHost(console_encoding="cp936")
    host.record(cmd.NETSH_WLAN, output(NO_AUTH_GBK))
    host.record(cmd.CONNECTION_PROFILES, (1, b"", b""))
    outcome = _probe(host)
    assert outcome.fact is None
    assert [(e.source, e.code) for e in outcome.errors] == [
        ("netsh wlan", pb.PROBE_ERROR_CODE_PARSE_ERROR)
    ]
    report = pb.PostureReport()
    report.errors.extend(outcome.errors)
    verdict = check_public_wifi(report, host.clock, CheckParameters())
    assert verdict.state is State.UNKNOWN


@pytest.mark.parametrize("stem", [ZH_LOCATION, ZH_ERROR_5])
def test_chinese_location_refusal_is_a_permission_not_a_parse_error(stem: str) -> None:
    # Windows 11 24H2 in Chinese: "网络 shell 命令需要位置权限…" with the untranslated
    # ms-settings:privacy-location URI, or "WlanQueryInterface 返回错误 5". Both read as an
    # output netsh never prints (PARSE_ERROR), so IT got no remedy.
    utf8, gbk = f"{stem}.utf8.txt", f"{stem}.cp936-crlf.txt"
    assert decode_output(fixture(gbk), "cp936") == fixture(utf8).decode()
    assert parse(gbk, "cp936") == WlanReport(location_denied=True)
    host = WindowsReplayHost(console_encoding="cp936")
    host.record(cmd.NETSH_WLAN, output(gbk, returncode=1))
    outcome = _probe(host)
    assert outcome.fact is None
    assert [e.code for e in outcome.errors] == [pb.PROBE_ERROR_CODE_PERMISSION_DENIED]


def test_english_24h2_refusal_with_the_elevation_line() -> None:
    report = parse("netsh_wlan/interfaces-en-24h2-location-denied-elevation.txt")
    assert report == WlanReport(location_denied=True)


def test_spanish_windows_10_through_its_oem_code_page() -> None:
    # cp850 bytes: "Autenticación" decoded as UTF-8 or cp437 would lose the label, and with
    # it the authentication (now an error, before an unknown security read as "other").
    assert decode_output(fixture(ES_CP850), "cp850") == fixture(ES_UTF8).decode()
    (wifi_if,) = parse(ES_CP850, "cp850").interfaces
    assert (wifi_if.name, wifi_if.connected, wifi_if.ssid) == ("Wi-Fi", True, "Norma-2.4")
    assert wifi_if.security == pb.WIFI_SECURITY_WPA2_PERSONAL and wifi_if.cipher == "CCMP"
