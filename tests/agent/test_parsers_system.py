"""Parsers for updates, disks, antivirus, Wi-Fi and os-release, on real recorded outputs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devposture.agent.parsers import ParseError
from devposture.agent.parsers.apt import parse_apt_config, parse_apt_simulate, periodic_enabled
from devposture.agent.parsers.clamav import parse_cvd_header
from devposture.agent.parsers.dnf import parse_check_update, parse_updateinfo_security
from devposture.agent.parsers.lsblk import parse_lsblk_json
from devposture.agent.parsers.mdatp import parse_mdatp_health
from devposture.agent.parsers.nmcli import (
    details_in_use,
    parse_devices,
    parse_wifi_list,
    security_from_flags,
    split_terse,
    ssid_from_bytes,
    wifi_security,
)
from devposture.agent.parsers.os_release import parse_os_release
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import fixture_bytes, fixture_text


def test_apt_simulated_upgrade_counts_security_by_archive() -> None:
    plan = parse_apt_simulate(fixture_text("apt/apt-get-s-upgrade-debian12-pending.out"))
    assert plan.upgraded == 116 and plan.held_back == 0 and plan.pending_total == 116
    by_name = {u.name: u for u in plan.upgrades}
    assert by_name["libgcrypt20"].security  # oldstable and oldstable-security
    assert by_name["libgcrypt20"].archives == ("oldstable", "oldstable-security")
    assert not by_name["base-files"].security  # a point release, not a security fix
    assert len(plan.security) == 69


def test_apt_security_label_without_security_archive() -> None:
    # Debian 9 and 10 named the security archive after the release ("stable"): the label
    # Debian-Security is what makes it a security update (a false "no update pending" else).
    plan = parse_apt_simulate(fixture_text("apt/apt-get-s-upgrade-debian10-security.out"))
    (update,) = plan.upgrades
    assert update.name == "liblz4-1" and update.archives == ("stable",)
    assert update.labels == ("Debian-Security",)
    assert plan.security == (update,)


def test_apt_archive_without_a_version_is_read() -> None:
    # A Release file without a Version field (Debian testing and unstable, Docker's archive)
    # makes apt print "Label:archive" without "version/": one such line lost the whole count.
    plan = parse_apt_simulate(fixture_text("apt/apt-get-s-upgrade-V-debian-unstable-iqrf.out"))
    assert plan.upgraded == 5 and plan.pending_total == 5
    assert {u.archives for u in plan.upgrades} == {("unstable",)}
    assert {u.labels for u in plan.upgrades} == {("Debian",)}
    assert plan.security == ()
    docker = parse_apt_simulate(fixture_text("apt/apt-get-s-only-upgrade-debian11-docker-ce.out"))
    assert docker.pending_total == 9 and docker.security == ()
    assert {(u.labels, u.archives) for u in docker.upgrades} == {(("Docker CE",), ("bullseye",))}


def test_apt_output_without_summary_is_rejected() -> None:
    with pytest.raises(ParseError):
        parse_apt_simulate("Reading package lists...\nE: Could not open lock file\n")


def test_apt_config_unattended_upgrades() -> None:
    default = parse_apt_config(fixture_text("apt/apt-config-dump-debian12.out"))
    assert default["APT::Architecture"] == "amd64"
    assert not periodic_enabled(default.get("APT::Periodic::Unattended-Upgrade"))
    on = parse_apt_config(fixture_text("apt/apt-config-dump-auto-upgrades-on.out"))
    assert periodic_enabled(on.get("APT::Periodic::Unattended-Upgrade"))
    assert periodic_enabled("always") and not periodic_enabled("0")


def test_dnf_security_advisories() -> None:
    advisories = parse_updateinfo_security(
        fixture_text("dnf/dnf-updateinfo-list-security-fedora34.out")
    )
    assert len(advisories) == 16
    kernel = next(a for a in advisories if a.package == "kernel-core")
    assert kernel.severity == "Critical" and kernel.advisory_id == "FEDORA-2021-07dc0b3eb1"
    assert {"dhcp-client", "glibc-langpack-en", "python3-urllib3"} <= {
        a.package for a in advisories
    }


def test_dnf_unknown_lines_are_parse_errors() -> None:
    with pytest.raises(ParseError):
        parse_updateinfo_security("Error: Cache-only enabled but no cache for 'fedora'\n")
    with pytest.raises(ParseError):
        parse_check_update("Error: Cache-only enabled but no cache for 'fedora'\n")


def test_clamav_header_written_by_sigtool() -> None:
    header = parse_cvd_header(fixture_bytes("clamav/daily-27001-sigtool-unsigned.cud"))
    assert header.version == 27001 and header.signatures == 1
    assert header.built_at == datetime.fromtimestamp(1795510624, UTC)


def test_clamav_public_daily_header_time_is_utc() -> None:
    header = parse_cvd_header(fixture_bytes("clamav/daily-25784-header.txt").ljust(512, b" "))
    assert header.version == 25784 and header.signatures == 2267600
    # "16 Apr 2020 07-58 -0400" is 11:58 UTC; stime adds the seconds.
    assert header.built_at == datetime(2020, 4, 16, 11, 58, 59, tzinfo=UTC)
    assert header.builder == "raynman"


def test_clamav_header_cut_after_md5_uses_the_time_text() -> None:
    full = fixture_bytes("clamav/daily-25784-header.txt").decode()
    cut = ":".join(full.split(":")[:6])  # what an old or truncated header keeps
    header = parse_cvd_header(cut.encode())
    assert header.built_at == datetime(2020, 4, 16, 11, 58, tzinfo=UTC)


def test_clamav_rejects_other_files() -> None:
    with pytest.raises(ParseError):
        parse_cvd_header(b"SQLite format 3\x00" + bytes(100))


def test_lsblk_luks2_root_and_home_are_encrypted() -> None:
    volumes = parse_lsblk_json(fixture_text("lsblk/lsblk-f-J-fedora-luks2-btrfs.out"))
    by_mount = {v.mount_point: v for v in volumes}
    assert by_mount["/"].encrypted and by_mount["/"].method == "LUKS2"
    assert by_mount["/home"].encrypted
    assert by_mount["/boot"].HasField("encrypted") and not by_mount["/boot"].encrypted


def test_lsblk_plain_vm_root() -> None:
    volumes = parse_lsblk_json(fixture_text("lsblk/lsblk-vm-debian12.out"))
    assert [(v.mount_point, v.device, v.encrypted) for v in volumes] == [("/", "vda", False)]


def test_lsblk_without_udev_cannot_see_a_locked_luks_loop() -> None:
    # Real output on a machine without udev: FSTYPE is null even for the LUKS loop device,
    # so only the mounted loop and the root disk are reported (both with TYPE, not crypt).
    volumes = parse_lsblk_json(fixture_text("lsblk/lsblk-luks-locked-loop.out"))
    assert {v.mount_point for v in volumes} == {"/mnt/dpplain", "/run/netns", "/"}
    assert not any(v.encrypted for v in volumes)


def test_lsblk_old_single_mountpoint_column() -> None:
    volumes = parse_lsblk_json(fixture_text("lsblk/lsblk-old-mountpoint-column.out"))
    assert {v.mount_point for v in volumes} == {"/mnt/dpplain", "/"}


def test_lsblk_luks_on_lvm_with_encrypted_swap_and_an_unmounted_usb_disk() -> None:
    # A NixOS laptop (`lsblk -J -b`, single MOUNTPOINT column): LVM on the NVMe partition,
    # LUKS inside the root logical volume (crypto_LUKS on an "lvm" device, "crypt" above it),
    # swap encrypted too, an exFAT USB disk unmounted, the ESP plain. The crypt mapping's one
    # mount point is the one lsblk chose to print.
    volumes = parse_lsblk_json(fixture_text("lsblk/lsblk-J-b-luks-on-lvm-nixos-quickshell.out"))
    seen = [(v.mount_point, v.device, v.encrypted, v.method) for v in volumes]
    assert seen == [
        ("/boot", "nvme0n1p1", False, ""),
        ("/etc/NetworkManager/system-connections", "cryptroot", True, "LUKS"),
    ]


def test_lsblk_error_output_is_not_json() -> None:
    with pytest.raises(ParseError):
        parse_lsblk_json(fixture_text("lsblk/lsblk-bad-column.err"))


def test_mdatp_health_ubuntu() -> None:
    health = parse_mdatp_health(fixture_text("mdatp/mdatp-health-ubuntu2004.out"))
    assert health.healthy is True and health.real_time_protection is True
    assert health.definitions_version == "1.395.227.0"
    assert health.definitions_updated == datetime(2023, 8, 12, 3, 26, 24, tzinfo=UTC)
    assert health.definitions_up_to_date is True


def test_mdatp_health_unavailable_real_time_is_unknown() -> None:
    health = parse_mdatp_health(fixture_text("mdatp/mdatp-health-macos-unavailable.out"))
    assert health.healthy is False
    assert health.real_time_protection is None


def test_nmcli_terse_escapes() -> None:
    assert split_terse(r" :HomeNet:02\:1A\:20\:43\:24\:2E:6:100:WPA2") == [
        " ", "HomeNet", "02:1A:20:43:24:2E", "6", "100", "WPA2",
    ]  # fmt: skip


def test_nmcli_wifi_list_finds_the_access_point_in_use() -> None:
    aps = parse_wifi_list(fixture_text("nmcli/nmcli-wifi-list-in-use-mesh.out"))
    assert len(aps) == 11
    in_use = [ap for ap in aps if ap.in_use]
    assert [(ap.ssid, ap.bssid, ap.security) for ap in in_use] == [
        ("HomeNet", "02:1A:20:43:24:2F", "WPA2 WPA3")
    ]
    enterprise = next(ap for ap in aps if ap.ssid == "TelenetWiFree")
    assert wifi_security(enterprise.security) == pb.WIFI_SECURITY_WPA2_ENTERPRISE
    assert any(ap.ssid == "" for ap in aps)  # a hidden network


def test_nmcli_devices() -> None:
    devices = parse_devices(fixture_text("nmcli/nmcli-device-wifi-connected.out"))
    assert devices[0].device == "wlo1" and devices[0].type == "wifi"
    assert devices[0].state == "connected"
    with pytest.raises(ParseError):
        parse_devices("wlan0:wifi\n")


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ("", pb.WIFI_SECURITY_OPEN),
        ("--", pb.WIFI_SECURITY_OPEN),
        ("WEP", pb.WIFI_SECURITY_WEP),
        ("OWE", pb.WIFI_SECURITY_OWE),
        ("WPA1 WPA2", pb.WIFI_SECURITY_WPA_PERSONAL),
        ("WPA2 WPA3", pb.WIFI_SECURITY_WPA2_PERSONAL),
        ("WPA3", pb.WIFI_SECURITY_WPA3_PERSONAL),
        ("WPA1 WPA2 802.1X", pb.WIFI_SECURITY_WPA_ENTERPRISE),
        ("WPA2 802.1X", pb.WIFI_SECURITY_WPA2_ENTERPRISE),
        # NetworkManager 1.40's OWE-TM (the open half of an OWE transition network) and
        # 1.44's WPA-EAP-SUITE-B-192 (src/nmcli/devices.c, commits 02e35f5b and 2f8694c4).
        ("OWE-TM", pb.WIFI_SECURITY_OPEN),
        ("WPA-EAP-SUITE-B-192", pb.WIFI_SECURITY_WPA3_ENTERPRISE),
        ("WPA2 802.1X WPA-EAP-SUITE-B-192", pb.WIFI_SECURITY_WPA2_ENTERPRISE),
        ("SOMETHING-NEW", pb.WIFI_SECURITY_UNKNOWN),
    ],
)
def test_nmcli_security_tokens(tokens: str, expected: int) -> None:
    assert wifi_security(tokens) == expected


def test_nmcli_what_the_c_locale_cannot_print_is_read_from_bytes_and_flags() -> None:
    # Real nmcli 1.42.4 under LC_ALL=C (tests/fixtures/linux/nmcli/record-wifi-names.sh).
    printed = parse_wifi_list(fixture_text("nmcli/nmcli-wifi-list-gbk-mock.out"))
    assert [(ap.ssid, ap.security) for ap in printed] == [
        ("??????", "WPA2"), ("Corp-192", ""), ("Office:5G\\Guest", "WPA2"), ("????", "WPA2"),
        ("Airport-Free", ""), ("Cafe", "OWE-TM"),
    ]  # fmt: skip
    (gbk,) = [ap for ap in printed if ap.in_use]
    details = fixture_text("nmcli/nmcli-wifi-details-gbk-mock.out")
    assert details_in_use(details, gbk.bssid).ssid == "星巴克"
    company = fixture_text("nmcli/nmcli-wifi-details-company-utf8-mock.out")
    assert details_in_use(company, "02:1A:11:00:00:01").ssid == "公司网络"
    with pytest.raises(ParseError):  # listed, but not in use there
        details_in_use(company, gbk.bssid)
    suite_b = details_in_use(
        fixture_text("nmcli/nmcli-wifi-details-suite-b-192-mock.out"), "02:1A:11:00:00:05"
    )
    assert suite_b.wpa_flags == frozenset()
    assert security_from_flags(suite_b) == pb.WIFI_SECURITY_WPA3_ENTERPRISE
    open_ap = details_in_use(
        fixture_text("nmcli/nmcli-wifi-details-open-mock.out"), "02:1A:11:00:00:06"
    )
    assert security_from_flags(open_ap) == pb.WIFI_SECURITY_OPEN
    assert ssid_from_bytes(bytes.fromhex("4F66666963653A35475C4775657374")) == "Office:5G\\Guest"
    assert ssid_from_bytes(b"\x80ab\xff") == "?ab?"  # neither UTF-8 nor GB18030


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("os-release-uos-desktop-20-pro-1060", ("uos", "uos", "20", "UOS Desktop 20 Pro")),
        (
            "os-release-kylin-desktop-v10-sp1-edu-2403",
            ("Kylin", "kylin", "v10", "Kylin V10 SP1"),
        ),
        ("os-release-openkylin-2.0", ("openKylin", "openkylin", "2.0", "openKylin 2.0")),
        (
            "os-release-kylin-server-v10-sp3-lance",
            (
                "Kylin Linux Advanced Server",
                "kylin",
                "V10",
                "Kylin Linux Advanced Server V10 (Lance)",
            ),
        ),
        ("os-release-anolis-8.8", ("Anolis OS", "anolis", "8.8", "Anolis OS 8.8")),
        (
            "os-release-openeuler-22.03-lts",
            ("openEuler", "openEuler", "22.03", "openEuler 22.03 LTS"),
        ),
    ],
)
def test_os_release_of_chinese_distributions(name: str, expected: tuple[str, ...]) -> None:
    # Unquoted and quoted IDs, Kylin's Chinese VERSION with full-width parentheses, its
    # VERSION_US and KYLIN_RELEASE_ID, openKylin's FULL_NAME: all read as written.
    values = parse_os_release(fixture_text(f"os_release/{name}"))
    assert (values["NAME"], values["ID"], values["VERSION_ID"], values["PRETTY_NAME"]) == expected
    if name.startswith("os-release-kylin-desktop"):
        assert values["VERSION"] == "银河麒麟桌面操作系统（教育版）V10"


def test_os_release_debian12() -> None:
    values = parse_os_release(fixture_text("os_release/os-release-debian12"))
    assert values["NAME"] == "Debian GNU/Linux"
    assert values["VERSION_ID"] == "12"
    assert values["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    with pytest.raises(ParseError):
        parse_os_release("# nothing here\n")
