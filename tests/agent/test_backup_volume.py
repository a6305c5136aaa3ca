"""The volume that really holds a backup set, on the shapes each OS gives a real location.

Windows and macOS are replayed: their disk-encryption facts come from the real recordings
under tests/fixtures (manage-bde, fdesetup) through the real probes, and every real location a
test states is one a public source printed (named beside it). Linux is tested on real links
in test_probes_backups.py.
"""

from __future__ import annotations

import pytest

from devposture.agent.host import display_path
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.backup_volume import (
    MAX_EVIDENCE,
    holding_volume,
    home_aliases,
    judge,
    location,
)
from devposture.agent.probes.macos import disk as mac_disk
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.probes.windows import disk as windows_disk
from devposture.policy.phrases import is_phrase
from devposture.v1 import devposture_pb2 as pb
from tests.agent.macos.replay_macos import MacReplayHost, out
from tests.agent.replay import ReplayHost
from tests.agent.windows.replay_windows import WindowsReplayHost, output

WINDOWS = pb.OS_FAMILY_WINDOWS
MACOS = pb.OS_FAMILY_MACOS
# A volume mounted into a folder, as os.readlink and GetFinalPathNameByHandleW name it
# (eryksun in python/cpython#91882: C:\Mount\SystemPartition).
GUID_VOLUME = "\\\\?\\Volume{f2b8bcce-0000-0000-0000-a0e013000000}\\"


def windows_report() -> pb.PostureReport:
    """The disk-encryption fact of a real Windows 11 (manage-bde: C: BitLocker XTS-AES 128),
    through the Windows disk probe, plus the folder-mounted volume above, stated not encrypted
    (no public manage-bde output lists one)."""
    host = WindowsReplayHost()
    host.record(cmd.MANAGE_BDE, output("manage_bde/status-en-26100-encrypted.txt"))
    report = pb.PostureReport()
    fact = windows_disk.probe(ProbeContext(host, ProbeConfig(), report)).fact
    assert isinstance(fact, pb.DiskEncryptionFact)
    report.disk_encryption.CopyFrom(fact)
    report.disk_encryption.volumes.add(mount_point="", device=GUID_VOLUME, encrypted=False)
    return report


def mac_report() -> pb.PostureReport:
    """A real Mac's `fdesetup status` (FileVault on), through the macOS disk probe."""
    host = MacReplayHost().with_tool("fdesetup")
    host.commands[tuple(cmd.FDESETUP_STATUS)] = out(
        "fdesetup/status-on-master-keychain-munkireport-158.out"
    )
    report = pb.PostureReport()
    fact = mac_disk.probe(ProbeContext(host, ProbeConfig(), report)).fact
    assert isinstance(fact, pb.DiskEncryptionFact)
    report.disk_encryption.CopyFrom(fact)
    return report


@pytest.mark.parametrize(
    ("real", "shown"),
    [
        # realpath's usual answer: the case as stored, backslashes.
        ("C:\\Users\\Li\\Documents\\WeChat Files", "C:/Users/Li/Documents/WeChat Files"),
        # The prefix kept when the path without it does not resolve alike (a long path).
        ("\\\\?\\C:\\Users\\Li\\Documents", "C:/Users/Li/Documents"),
        # A mapped share, as GetFinalPathNameByHandleW gives it (golang/go#42201's table).
        ("\\\\?\\UNC\\Z68\\UncShare\\Source.ico", "//Z68/UncShare/Source.ico"),
        ("\\\\Z68\\UncShare\\Source.ico", "//Z68/UncShare/Source.ico"),
        # A folder-mounted volume (python/cpython#91882), and CPython 3.11's form of it that
        # lost its prefix (python/cpython#89760).
        (GUID_VOLUME + "spam.txt", "//?/Volume{f2b8bcce-0000-0000-0000-a0e013000000}/spam.txt"),
        ("Volume{f2b8bcce-0000-0000-0000-a0e013000000}\\dir",
         "//?/Volume{f2b8bcce-0000-0000-0000-a0e013000000}/dir"),
    ],
)  # fmt: skip
def test_windows_real_locations_are_written_one_way(real: str, shown: str) -> None:
    assert location(real, WINDOWS) == shown


def test_a_windows_path_is_held_by_its_drive_in_any_spelling() -> None:
    """The agent spells a live path as its home ("C:\\Users\\li", from the Users folder) and
    the layout ("/Documents/…"); realpath spells it with backslashes and the stored case. Both
    are on C:, whose BitLocker the fact states."""
    report = windows_report()
    for path in (
        "C:\\Users\\li/Documents/WeChat Files/wxid_a1/BackupFiles/android_1",
        "C:\\Users\\Li\\Documents\\WeChat Files\\wxid_a1\\BackupFiles\\android_1",
        "c:/users/li/documents",
        "\\\\?\\C:\\Users\\Li\\Documents",
    ):
        volume = holding_volume(path, report, WINDOWS)
        assert volume is not None and volume.mount_point == "C:", path
        assert volume.encrypted and volume.method == "BitLocker XTS-AES 128"


def test_a_folder_mounted_volume_is_found_by_its_guid_path_and_a_share_by_none() -> None:
    """manage-bde lists a volume without a drive letter by its GUID path, with no mount point:
    a set reached through a folder mount (or a junction to it) is held by that volume, not by
    the drive the folder is on. A share is on no volume the fact lists."""
    report = windows_report()
    for real in (GUID_VOLUME + "WeChat Files", "Volume{F2B8BCCE-0000-0000-0000-A0E013000000}\\x"):
        volume = holding_volume(location(real, WINDOWS), report, WINDOWS)
        assert volume is not None and volume.device == GUID_VOLUME and not volume.encrypted
    assert holding_volume(location("\\\\Z68\\UncShare\\x", WINDOWS), report, WINDOWS) is None


def test_a_mac_set_on_the_data_volume_is_filevaults_and_one_under_volumes_is_not() -> None:
    """fdesetup speaks of the startup disk, "/". Its Data volume is mounted at
    /System/Volumes/Data (firmlinks make /Users one of its folders): FileVault covers it. An
    external disk or a share is mounted under /Volumes, of which FileVault says nothing."""
    report = mac_report()
    for path in ("/Users/zhang/Library", "/System/Volumes/Data/Users/zhang/Library", "/"):
        volume = holding_volume(path, report, MACOS)
        assert volume is not None and volume.mount_point == "/" and volume.encrypted, path
    # A real user's moved WeChat Backup (tests/fixtures/chat_layouts, index id 58356614645).
    assert holding_volume("/Volumes/BINGNET/Kevin_Data/xwechat_files/Backup", report, MACOS) is None
    # A volume the fact does list under /Volumes is still that volume.
    report.disk_encryption.volumes.add(mount_point="/Volumes/BINGNET", device="disk4s1",
                                       encrypted=False)  # fmt: skip
    volume = holding_volume("/Volumes/BINGNET/Kevin_Data", report, MACOS)
    assert volume is not None and volume.device == "disk4s1"


def _judged(host: ReplayHost, path: str, report: pb.PostureReport) -> pb.ChatBackup:
    backup = pb.ChatBackup()
    homes = home_aliases(host, host.homes)
    judge(backup, path, host, report, lambda p: display_path(p, homes))
    return backup


def test_the_evidence_says_where_the_files_really_are_without_naming_the_user() -> None:
    """A Mac's Backup behind a link to its Data volume's own path: on FileVault, and shown
    with the home as "~" under that name too."""
    spelled = "/Users/zhang/Library/Containers/com.tencent.xinWeChat/Data/Documents/xwechat_files"
    host = MacReplayHost(homes=["/Users/zhang"])
    host.real_paths[spelled] = "/System/Volumes/Data/Users/zhang/WeChat/xwechat_files"
    host.real_paths["/Users/zhang"] = "/Users/zhang"
    backup = _judged(host, spelled, mac_report())
    assert backup.on_encrypted_volume
    assert backup.volume_evidence == (
        "on FileVault volume  mounted at / (the files are really in ~/WeChat/xwechat_files)"
    )
    assert is_phrase(backup.volume_evidence)
    # The same place spelled alike says nothing more.
    host.real_paths[spelled] = spelled
    assert _judged(host, spelled, mac_report()).volume_evidence == (
        "on FileVault volume  mounted at /"
    )


def test_a_location_that_cannot_be_resolved_leaves_the_volume_unknown() -> None:
    host = MacReplayHost(homes=["/Users/zhang"])
    backup = _judged(host, "/Users/zhang/gone", mac_report())  # not there: SourceMissingError
    assert not backup.HasField("on_encrypted_volume")
    assert backup.volume_evidence == (
        "where the files really are is unknown: /Users/zhang/gone does not exist"
    )
    assert is_phrase(backup.volume_evidence)


def test_a_long_real_location_keeps_the_evidence_within_the_reports_limit() -> None:
    """The collector refuses a report whose evidence is longer than 1024 characters; a Linux
    path may be 4096."""
    spelled = "/home/li/微信备份/set"
    deep = "/media/usb/" + "/".join(["长目录名" * 20] * 50)
    host = ReplayHost(homes=["/home/li"])
    host.real_paths[spelled] = deep
    report = pb.PostureReport()
    report.disk_encryption.volumes.add(mount_point="/media/usb", device="sdb1", encrypted=False)
    backup = _judged(host, spelled, report)
    assert len(backup.volume_evidence) <= MAX_EVIDENCE
    assert backup.volume_evidence.startswith(
        "on volume sdb1 mounted at /media/usb, not encrypted (the files are really in /media/usb/"
    )
    assert backup.volume_evidence.endswith(deep[-20:] + ")") and "…" in backup.volume_evidence
    assert is_phrase(backup.volume_evidence)
