"""netsh wlan show interfaces, parsed from real outputs in six languages."""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.netsh_wlan import (
    WlanReport,
    parse_wlan_interfaces,
    wifi_security,
)
from devposture.agent.parsers.windows.text import decode_output
from devposture.v1 import devposture_pb2 as pb
from tests.agent.windows.replay_windows import fixture


def parse(name: str, encoding: str = "cp437") -> WlanReport:
    return parse_wlan_interfaces(decode_output(fixture(f"netsh_wlan/{name}"), encoding))


def test_english_windows_11_wpa2() -> None:
    (wifi,) = parse("interfaces-en-win11-ax201-wpa2.txt").interfaces
    assert (wifi.name, wifi.connected, wifi.ssid) == ("Wi-Fi", True, "Tenda_EBBAA0")
    assert wifi.security == pb.WIFI_SECURITY_WPA2_PERSONAL and wifi.cipher == "CCMP"


def test_chinese_gbk_output_is_read_through_the_language_table() -> None:
    (wifi,) = parse("interfaces-zh-win11-ax211-wpa2.cp936-crlf.txt", "cp936").interfaces
    assert (wifi.name, wifi.connected, wifi.ssid) == ("WLAN", True, "TP-LINK_5G_D3DA")
    # 密码 is the cipher, not a password.
    assert wifi.authentication == "WPA2 - 个人" and wifi.cipher == "CCMP"
    assert wifi.security == pb.WIFI_SECURITY_WPA2_PERSONAL


def test_chinese_and_english_twins_give_the_same_facts() -> None:
    zh = parse("interfaces-zh-win11-ax211-wpa2.cp936-crlf.txt", "cp936")
    en = parse("interfaces-en-win11-ax201-wpa2.txt")
    assert len(zh.interfaces) == len(en.interfaces) == 1

    def facts(report: WlanReport) -> list[tuple[bool, int, str]]:
        # Everything but the localized names (interface name, raw authentication text, SSID).
        return [(i.connected, i.security, i.cipher) for i in report.interfaces]

    assert facts(zh) == facts(en)
    assert (zh.no_interface, zh.service_stopped) == (en.no_interface, en.service_stopped)


def test_chinese_windows_10_enterprise_with_prompt_lines() -> None:
    (wifi,) = parse("interfaces-zh-win10-3165-wpa2-enterprise.cp936-crlf.txt", "cp936").interfaces
    assert wifi.ssid == "DC_WLAN(5GHz)"
    assert wifi.security == pb.WIFI_SECURITY_WPA2_ENTERPRISE


def test_french_ouvrir_is_an_open_network() -> None:
    (wifi,) = parse("interfaces-fr-win11-ax201-open.txt").interfaces
    assert wifi.connected and wifi.authentication == "Ouvrir" and wifi.cipher == "Aucun"
    assert wifi.security == pb.WIFI_SECURITY_OPEN


def test_spanish_abierta_is_an_open_network() -> None:
    # Before Spanish was in the tables, every Spanish machine's Wi-Fi was UNKNOWN: one on an
    # open network could never be flagged.
    (wifi,) = parse("interfaces-es-win11-ax201-open.txt").interfaces
    assert (wifi.name, wifi.connected, wifi.ssid) == ("Wi-Fi", True, "SSID-1")
    assert wifi.authentication == "Abierta" and wifi.cipher == "Ninguna"
    assert wifi.security == pb.WIFI_SECURITY_OPEN


def test_italian_wpa2_and_the_hosted_network_line() -> None:
    (wifi,) = parse("interfaces-it-wpa2.txt").interfaces
    assert (wifi.name, wifi.connected, wifi.ssid) == ("Wi-Fi", True, "SSID-1")
    assert wifi.security == pb.WIFI_SECURITY_WPA2_PERSONAL and wifi.cipher == "CCMP"


def test_german_enterprise() -> None:
    (wifi,) = parse("interfaces-de-win11-8265-wpa2-enterprise.txt").interfaces
    assert wifi.connected and wifi.security == pb.WIFI_SECURITY_WPA2_ENTERPRISE


def test_wpa3_h2e_and_a_disconnected_second_adapter() -> None:
    first, second = parse("interfaces-en-win11-wpa3-h2e-two-adapters.txt").interfaces
    assert first.connected and first.ssid == "alextrex"
    assert first.security == pb.WIFI_SECURITY_WPA3_PERSONAL  # "WPA3-Personal  (H2E)"
    assert (second.name, second.connected, second.ssid) == ("Wi-Fi 3", False, "")


def test_two_adapters_without_blank_line_after_header() -> None:
    first, second = parse("interfaces-en-win11-two-adapters.txt").interfaces
    assert (first.name, first.ssid, first.connected) == ("WLAN", "rush", True)
    assert (second.name, second.connected) == ("WLAN 2", False)


def test_no_interface_is_a_fact_and_service_and_location_are_conditions() -> None:
    assert parse("interfaces-en-no-wireless-interface.txt") == WlanReport(no_interface=True)
    assert parse("interfaces-en-wlansvc-not-running.txt") == WlanReport(service_stopped=True)
    assert parse("interfaces-en-24h2-location-denied.txt") == WlanReport(location_denied=True)
    assert parse_wlan_interfaces("系统上没有无线接口。") == WlanReport(no_interface=True)


def test_security_mapping_and_unknowns() -> None:
    assert wifi_security("Open", "WEP") == pb.WIFI_SECURITY_WEP
    assert wifi_security("WPA2 - 企业", "CCMP") == pb.WIFI_SECURITY_WPA2_ENTERPRISE
    assert wifi_security("OWE", "CCMP") == pb.WIFI_SECURITY_OWE
    assert wifi_security("", "") == pb.WIFI_SECURITY_UNKNOWN
    with pytest.raises(ParseError):
        wifi_security("Something new", "CCMP")


def test_unknown_state_or_empty_output_is_an_error() -> None:
    with pytest.raises(ParseError):
        parse_wlan_interfaces("    Name : Wi-Fi\n    State : associating-ish\n")
    with pytest.raises(ParseError):
        parse_wlan_interfaces("")
