"""macOS parsers on every recorded fixture, asserting what a person reading it would say."""

from __future__ import annotations

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.macos.airport import parse_airport_json, wifi_security
from devposture.agent.parsers.macos.fdesetup import parse_fdesetup_status
from devposture.agent.parsers.macos.scutil import parse_nc_list
from devposture.agent.parsers.macos.socketfilterfw import parse_global_state
from devposture.agent.parsers.macos.softwareupdate import (
    installed_version,
    parse_update_list,
    security_updates,
)
from devposture.agent.parsers.mdatp import parse_mdatp_health
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import fixture


def text(relative: str) -> str:
    return fixture(relative).decode("utf-8")


# --- system_profiler SPAirPortDataType -json --------------------------------------------


def test_wpa2_network_on_macos15() -> None:
    (card,) = parse_airport_json(
        text("system_profiler/SPAirPortDataType-wpa2-macos15.5-heatmapper.json")
    )
    assert card.name == "en0" and card.status == "connected"  # awdl0 is not a Wi-Fi card
    assert card.current is not None
    assert card.current.ssid == "SSID-7" and not card.current.ssid_redacted
    assert card.current.security == pb.WIFI_SECURITY_WPA2_PERSONAL


def test_open_network_on_macos15() -> None:
    (card,) = parse_airport_json(
        text("system_profiler/SPAirPortDataType-open-macos15.5-heatmapper.json")
    )
    assert card.current is not None and card.current.ssid == "SSID-2"
    assert card.current.security == pb.WIFI_SECURITY_OPEN


def test_wifi_switched_off_has_a_card_but_no_network() -> None:
    (card,) = parse_airport_json(
        text("system_profiler/SPAirPortDataType-wifi-off-macos15.5-heatmapper.json")
    )
    assert card.status == "off" and card.current is None


def test_not_associated_on_macos12() -> None:
    (card,) = parse_airport_json(
        text("system_profiler/SPAirPortDataType-disassociated-macos12.7.2-heatmapper.json")
    )
    assert card.status == "disassociated" and card.current is None


def test_catalina_card_named_en1_on_an_open_network() -> None:
    # macOS 10.15.7 with the Wi-Fi card named en1, not en0: found by what it is, not its name.
    (card,) = parse_airport_json(
        text("system_profiler/SPAirPortDataType-open-en1-macos10.15.7-heatmapper.json")
    )
    assert (card.name, card.status) == ("en1", "connected")
    assert card.current is not None and card.current.ssid == "SSID-6"
    assert card.current.security == pb.WIFI_SECURITY_OPEN


def test_wpa2_network_on_macos12() -> None:
    (card,) = parse_airport_json(
        text("system_profiler/SPAirPortDataType-wpa2-wifi6-macos12.7.2-heatmapper.json")
    )
    assert (card.name, card.status) == ("en0", "connected")
    assert card.current is not None and card.current.ssid == "SSID-4"
    assert card.current.security == pb.WIFI_SECURITY_WPA2_PERSONAL


def test_redacted_ssid_is_unknown_not_the_placeholder() -> None:
    (card,) = parse_airport_json(
        text("system_profiler/SPAirPortDataType-redacted-wpa3-macos26-trimmed.json")
    )
    assert card.current is not None
    assert card.current.ssid == "" and card.current.ssid_redacted
    assert card.current.security == pb.WIFI_SECURITY_WPA3_PERSONAL


def test_misspelled_transition_mode_counts_as_wpa2() -> None:
    (card,) = parse_airport_json(
        text("system_profiler/SPAirPortDataType-redacted-wpa3-transition-jp.json")
    )
    assert card.current is not None and card.current.ssid_redacted
    # "pairport_security_mode_wpa3_transition": WPA3 that still admits WPA2 clients.
    assert card.current.security == pb.WIFI_SECURITY_WPA2_PERSONAL


def test_unknown_security_mode_is_unknown_not_open() -> None:
    assert wifi_security("spairport_security_mode_something_new") == pb.WIFI_SECURITY_UNKNOWN


@pytest.mark.parametrize("raw", ["", "not json", '{"SPAirPortDataType": {}}', "[]"])
def test_airport_rejects_what_it_does_not_know(raw: str) -> None:
    with pytest.raises(ParseError):
        parse_airport_json(raw)


# --- socketfilterfw --getglobalstate ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state", "enabled", "block_all"),
    [
        ("getglobalstate-state1-m-cli-160.out", 1, True, False),
        ("getglobalstate-state0-m-cli-161.out", 0, False, False),
        # State 2 in the older wording alone: after block-all was set in m-cli's recording,
        # beside "block all state set to disabled" in kolide's. The number does not say.
        ("getglobalstate-state2-m-cli-161.out", 2, True, None),
        ("getglobalstate-blocking-state2-mac-health-check-8.out", 2, True, True),
        ("four-flags-stealth-error-pareto-139.out", 1, True, False),
        ("six-flags-kolide-data.txt", 2, True, False),
    ],
)
def test_global_state(name: str, state: int, enabled: bool, block_all: bool | None) -> None:
    parsed = parse_global_state(text(f"socketfilterfw/{name}"))
    assert parsed.state == state and parsed.enabled is enabled
    assert parsed.block_all is block_all


def test_global_state_needs_a_state_line() -> None:
    with pytest.raises(ParseError):  # --getstealthmode's error line alone says nothing
        parse_global_state("ALF: Error, kStealthEnableKey does not return the correct type.\n")


# --- fdesetup status --------------------------------------------------------------------


def test_filevault_on_with_master_keychain_line() -> None:
    status = parse_fdesetup_status(text("fdesetup/status-on-master-keychain-munkireport-158.out"))
    assert status.encrypted and status.conversion == ""


def test_filevault_off_on_macos26() -> None:
    status = parse_fdesetup_status(text("fdesetup/status-off-macos26-askrubyai.out"))
    assert not status.encrypted


def test_fdesetup_rejects_other_text() -> None:
    with pytest.raises(ParseError):
        parse_fdesetup_status(text("socketfilterfw/getglobalstate-state1-m-cli-160.out"))


# --- softwareupdate -l ------------------------------------------------------------------


def test_pending_point_update_safari_and_major_upgrade() -> None:
    listing = parse_update_list(text("softwareupdate/list-pending-ventura-super-151.out"))
    assert listing.catalog_error == ""
    assert [u.label for u in listing.updates] == [
        "Safari17.0VenturaAuto-17.0",
        "macOS Ventura 13.6-22G120",
        "macOS Sonoma 14.0-23A344",
    ]
    ventura = listing.updates[1]
    assert ventura.title == "macOS Ventura 13.6" and ventura.recommended and ventura.restart
    assert not listing.updates[0].restart
    # On a Ventura Mac (13.5.2, a test input: the log does not name the Mac's version) the
    # Ventura point update is the security one; Sonoma 14.0 is an upgrade, Safari unknown.
    found = security_updates(listing.updates, "13.5.2")
    assert [u.label for u in found] == ["macOS Ventura 13.6-22G120"]


def test_an_upgrade_to_a_later_major_is_not_a_missing_security_update() -> None:
    # Macjutsu/super#290: a Ventura Mac is offered Ventura 13.7.4 and Sequoia 15.3.1, a major
    # upgrade that is not a .0. Once 13.7.4 is installed, the Sequoia upgrade is all that is
    # left of the list (Apple lists the upgrade whatever the installed line's state:
    # Macjutsu/super#317). It used to count as a pending security update, since the lowest
    # major listed was taken for the installed one: a fully patched Mac read FAIL.
    listing = parse_update_list(text("softwareupdate/list-ventura-point-and-sequoia-super-290.out"))
    assert [u.label for u in listing.updates] == [
        "Safari18.3.1VenturaAuto-18.3.1",
        "macOS Ventura 13.7.4-22H420",
        "macOS Sequoia 15.3.1-24D70",
    ]
    found = security_updates(listing.updates, "13.7.3")  # a test input below 13.7.4
    assert [u.label for u in found] == ["macOS Ventura 13.7.4-22H420"]
    upgrade_only = [u for u in listing.updates if u.label.startswith("macOS Sequoia")]
    assert security_updates(upgrade_only, "13.7.4") == []
    # On Sequoia itself, 15.3.1 would be the installed line's point update.
    assert security_updates(upgrade_only, "15.3") == upgrade_only


def test_a_monterey_mac_with_old_command_line_tools_and_an_upgrade_offered() -> None:
    # An Apple silicon Mac mini on macOS 12.1 (its sw_vers is in the same note): three Command
    # Line Tools, the Monterey 12.6.7 point update and Ventura 13.4.1, sizes in "K" as well as
    # "KiB", details indented with spaces. Only 12.6.7 counts; the tools are not guessed at.
    listing = parse_update_list(
        text("softwareupdate/list-monterey-12.1-clt-and-ventura-hetzner-m1.out")
    )
    assert not listing.catalog_error and len(listing.updates) == 5
    assert [u.title for u in listing.updates][:3] == ["Command Line Tools for Xcode"] * 3
    assert [u.restart for u in listing.updates] == [False, False, False, True, True]
    found = security_updates(listing.updates, "12.1")
    assert [u.label for u in found] == ["macOS Monterey 12.6.7-21G651"]


def test_a_major_named_without_a_codename_is_an_upgrade_too() -> None:
    # Captured on a Tahoe 26.6 (25G72) Mac: the 26.7 point update and "macOS 27", whose title
    # has no codename and whose version no minor.
    listing = parse_update_list(text("softwareupdate/list-tahoe-26.6-point-and-macos-27.out"))
    assert [u.title for u in listing.updates] == ["Safari", "macOS Tahoe 26.7", "macOS 27"]
    found = security_updates(listing.updates, "26.6")
    assert [u.label for u in found] == ["macOS Tahoe 26.7-25G229"]
    # After 26.7 is installed, macOS 27 alone is still no missing security update.
    assert security_updates(listing.updates[2:], "26.7") == []


@pytest.mark.parametrize("version", ["", "Darwin 24.5.0 x", "10.16", "10.16.1", "24.5.0"])
def test_macos_entries_with_no_readable_installed_version_are_not_guessed(version: str) -> None:
    # 10.16 is what macOS 11 and later say in compatibility mode, never a version a Mac runs;
    # 24.5.0 is a Darwin kernel release (macOS 15.5), the host's fallback without mac_ver.
    listing = parse_update_list(text("softwareupdate/list-tahoe-26.6-point-and-macos-27.out"))
    with pytest.raises(ParseError):
        security_updates(listing.updates, version)
    # Without a macOS entry the version is not needed.
    assert security_updates(listing.updates[:1], version) == []


def test_installed_versions() -> None:
    assert installed_version("14.7.4\n") == (14, 7, 4)
    assert installed_version("26") == (26, 0, 0)
    assert installed_version("10.15.7") == (10, 15, 7)


def test_legacy_format_on_yosemite() -> None:
    listing = parse_update_list(text("softwareupdate/list-legacy-yosemite-osx-vm-templates-16.out"))
    assert [(u.label, u.title, u.recommended) for u in listing.updates] == [
        ("Command Line Tools (OS X 10.10)-6.0", "Command Line Tools (OS X 10.10) (6.0)", True),
        ("iTunesX-12.0", "iTunes (12.0)", True),
    ]
    assert security_updates(listing.updates, "10.10") == []


def test_catalog_error_is_not_zero_updates() -> None:
    listing = parse_update_list(text("softwareupdate/list-catalog-error-reposado-66.out"))
    assert listing.updates == []
    assert "NSURLErrorDomain error -1100" in listing.catalog_error


def test_no_new_software_on_stderr() -> None:
    listing = parse_update_list("", text("softwareupdate/list-none-elcapitan-osxlockdown-27.err"))
    assert listing.updates == [] and listing.catalog_error == ""


def test_banner_alone_is_not_an_answer() -> None:
    with pytest.raises(ParseError):
        parse_update_list("Software Update Tool\n\nFinding available software\n")


# --- scutil --nc list -------------------------------------------------------------------


def test_l2tp_service_disconnected() -> None:
    (service,) = parse_nc_list(text("scutil/nc-list-l2tp-disconnected-alfred-19.out"))
    assert service.name == "My VPN" and service.kind == "ppp:l2tp"
    assert service.enabled and not service.connected


def test_pptp_service_with_elided_id() -> None:
    (service,) = parse_nc_list(text("scutil/nc-list-pptp-disconnected-security-growler-24.out"))
    assert (service.name, service.kind, service.status) == ("myVPName", "ppp:pptp", "Disconnected")


def test_no_service_configured() -> None:
    assert parse_nc_list(text("scutil/nc-list-empty-alfred-19.out")) == []


def test_scutil_rejects_other_text() -> None:
    with pytest.raises(ParseError):
        parse_nc_list(text("fdesetup/status-off-macos26-askrubyai.out"))


# --- mdatp health on macOS (the shared parser) ------------------------------------------


def test_mdatp_on_mac_with_real_time_unavailable() -> None:
    health = parse_mdatp_health(text("mdatp/mdatp-health-macos-unavailable.out"))
    assert health.healthy is False and health.real_time_protection is None
