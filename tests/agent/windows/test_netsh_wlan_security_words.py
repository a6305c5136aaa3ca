"""The security words Chinese netsh prints, from a real `netsh wlan show drivers`: the
authentication and cipher pairs each Wi-Fi driver supports, worded exactly as `netsh wlan show
interfaces` words the network in use ("WPA2 - 个人" in both). Source: the "netsh_wlan" table of
tests/fixtures/windows/README.md."""

from __future__ import annotations

import re

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.netsh_wlan import parse_wlan_interfaces, wifi_security
from devposture.agent.parsers.windows.text import decode_output
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import fixture

# A supported pair: a deeply indented line of two columns (authentication, cipher).
_PAIR = re.compile(r"^ {20,}(?P<auth>\S(?:.*?\S)?) {2,}(?P<cipher>\S.*?)\s*$")
DRIVERS = "netsh_wlan/drivers-zh-win10-19043-ax200-rtl8191su"

EXPECTED: dict[tuple[str, str], pb.WifiSecurity.ValueType] = {
    ("开放式", "无"): pb.WIFI_SECURITY_OPEN,
    ("开放式", "WEP-40bit"): pb.WIFI_SECURITY_WEP,
    ("开放式", "WEP-104 位"): pb.WIFI_SECURITY_WEP,
    ("开放式", "WEP"): pb.WIFI_SECURITY_WEP,
    ("WPA - 企业", "TKIP"): pb.WIFI_SECURITY_WPA_ENTERPRISE,
    ("WPA - 企业", "CCMP"): pb.WIFI_SECURITY_WPA_ENTERPRISE,
    ("WPA - 个人", "TKIP"): pb.WIFI_SECURITY_WPA_PERSONAL,
    ("WPA - 个人", "CCMP"): pb.WIFI_SECURITY_WPA_PERSONAL,
    ("WPA2 - 企业", "TKIP"): pb.WIFI_SECURITY_WPA2_ENTERPRISE,
    ("WPA2 - 企业", "CCMP"): pb.WIFI_SECURITY_WPA2_ENTERPRISE,
    ("WPA2 - 个人", "TKIP"): pb.WIFI_SECURITY_WPA2_PERSONAL,
    ("WPA2 - 个人", "CCMP"): pb.WIFI_SECURITY_WPA2_PERSONAL,
    ("WPA3 - 个人", "CCMP"): pb.WIFI_SECURITY_WPA3_PERSONAL,
    ("WPA3 - 企业", "GCMP-256"): pb.WIFI_SECURITY_WPA3_ENTERPRISE,
    ("OWE", "CCMP"): pb.WIFI_SECURITY_OWE,
}
# 供应商定义的 ("vendor defined"): the driver's own method, which says nothing netsh can name.
VENDOR_DEFINED = "供应商定义的"


def pairs(copy: str) -> set[tuple[str, str]]:
    text = decode_output(fixture(f"{DRIVERS}.{copy}.txt"), "cp936")
    return {
        (match["auth"], match["cipher"])
        for line in text.split("\n")
        if (match := _PAIR.match(line))
    }


@pytest.mark.parametrize("copy", ["utf8", "cp936-crlf"])
def test_every_recorded_chinese_authentication_and_cipher_is_read(copy: str) -> None:
    # Before, "WPA3 - 个人", "WPA3 - 企业", "WPA - 个人" and "WPA - 企业" were not in the tables:
    # a Chinese machine on a WPA3 (or old WPA) network read Wi-Fi UNKNOWN on every report.
    # "WEP-40bit" and "WEP-104 位" with 开放式 read as an open network instead of WEP.
    recorded = pairs(copy)
    named = {pair for pair in recorded if VENDOR_DEFINED not in pair[0]}
    assert named - {("开放式", VENDOR_DEFINED)} == set(EXPECTED)
    for (authentication, cipher), security in EXPECTED.items():
        assert wifi_security(authentication, cipher) == security, (authentication, cipher)


def test_a_vendor_defined_authentication_is_refused_not_guessed() -> None:
    assert (VENDOR_DEFINED, VENDOR_DEFINED) in pairs("utf8")
    with pytest.raises(ParseError):
        wifi_security(VENDOR_DEFINED, VENDOR_DEFINED)


@pytest.mark.parametrize("copy", ["utf8", "cp936-crlf"])
def test_a_chinese_campus_network_with_open_authentication_is_open(copy: str) -> None:
    # 身份验证 开放式 on a university's network, Windows 11's uneven padding, and a
    # "已配置     QoS MSCS： 0" line with a full-width colon that belongs to no field read.
    report = parse_wlan_interfaces(
        decode_output(
            fixture(f"netsh_wlan/interfaces-zh-win11-ax201-open-campus-trimmed.{copy}.txt"),
            "cp936",
        )
    )
    (wifi,) = report.interfaces
    assert (wifi.name, wifi.connected, wifi.ssid, wifi.authentication) == (
        "WLAN",
        True,
        "JOU",
        "开放式",
    )
    assert wifi.security == pb.WIFI_SECURITY_OPEN
