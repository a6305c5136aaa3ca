"""Chat backups on mounts that are not block devices (clause 6.2.1, "kept safe"), end to end:
the Linux disk-encryption probe on a computer's recorded lsblk and mounts, then the chat-backup
probe on real files, then the collector's check.

A set on a network share, in memory or on FUSE was judged by the block device mounted above it
(usually an encrypted "/" or "/home": a false "kept safe"); it is judged by its own mount now.
The computers are recorded ones (tests/fixtures/linux): Fedora's LUKS2 laptop for lsblk, each
test's mounts from another real machine (the pairing is the test's; each output is real).
Files are served from the test's folders under the recorded names (MappedHost).
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from devposture.agent.host import (
    OK_ONLY,
    CommandResult,
    Host,
    SourceMissingError,
)
from devposture.agent.host.bundle import BundleHost, RecordingHost, dumps
from devposture.agent.probes import ProbeConfig, backup_volume
from devposture.agent.probes.commands import LSBLK
from devposture.agent.probes.linux import backups, disk, mounted
from devposture.agent.probes.outcome import ProbeContext
from devposture.policy.checks import CheckParameters, State, check_chat_backup
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import FIXTURES
from tests.agent.test_chat_layouts import MappedHost
from tests.agent.test_probes_backups import NOW, TempHomeHost, dated
from tests.full_disk import tmpfs

FEDORA = "lsblk/lsblk-f-J-fedora-luks2-btrfs.out"  # LUKS2: "/" and "/home" on luks-[...]
ON_LUKS_HOME = "on LUKS2 volume luks-[...] mounted at /home"


class RecordedDisks(MappedHost):
    """A Linux computer: the files are the test's (MappedHost), lsblk and /proc/self/mounts are
    the recorded ones (`mounts` None: the list cannot be read)."""

    def __init__(
        self, homes: list[str], folders: dict[str, Path], lsblk: str, mounts: str | None
    ) -> None:
        super().__init__(pb.OS_FAMILY_LINUX, homes[0], folders)
        self._people = homes
        self._lsblk = (FIXTURES / lsblk).read_bytes()
        self._mount_list = None if mounts is None else (FIXTURES / "mounts" / mounts).read_bytes()

    def home_dirs(self) -> list[str]:
        return list(self._people)

    def run(
        self, argv: Sequence[str], timeout: float, ok_codes: Collection[int] = OK_ONLY
    ) -> CommandResult:
        assert tuple(argv) == LSBLK, argv
        return CommandResult(tuple(argv), 0, self._lsblk, b"")

    def read_bytes(self, path: str, limit: int) -> bytes:
        if path != mounted.MOUNTS:
            return super().read_bytes(path, limit)
        if self._mount_list is None:
            raise SourceMissingError(f"{path} does not exist")
        return self._mount_list[:limit]


def plain_zip(path: Path) -> Path:
    """A chat export zipped without a password, dated a day before NOW."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("chat.txt", "聊天记录导出")
    return dated(path, 1)


def disks(host: Host) -> pb.PostureReport:
    """The report so far: the disk-encryption fact as the Linux probe reads it on `host`."""
    outcome = disk.probe(ProbeContext(host, ProbeConfig(), pb.PostureReport()))
    assert isinstance(outcome.fact, pb.DiskEncryptionFact), outcome.errors
    report = pb.PostureReport()
    report.disk_encryption.CopyFrom(outcome.fact)
    report.errors.extend(outcome.errors)
    return report


def chat_backups(host: Host, report: pb.PostureReport, *folders: str) -> dict[str, pb.ChatBackup]:
    outcome = backups.probe(ProbeContext(host, ProbeConfig(backup_folders=folders), report))
    assert isinstance(outcome.fact, pb.ChatBackupFact), outcome.errors
    return {b.location: b for b in outcome.fact.backups}


def judged(*sets: pb.ChatBackup) -> tuple[State, str]:
    report = pb.PostureReport(chat_backups=pb.ChatBackupFact(backups=sets))
    verdict = check_chat_backup(report, dt.datetime.fromtimestamp(NOW, dt.UTC), CheckParameters())
    return verdict.state, render(verdict.reason, "en", dt.UTC)


def test_a_backup_on_an_nfs_share_is_not_on_the_encrypted_root(tmp_path: Path) -> None:
    """A Kubernetes node's NFS 4.2 share at /nfs, beside a LUKS2 "/": the plain set there was
    "on LUKS2 volume luks-[...] mounted at /" (PASS); the share's disk is not seen: UNKNOWN."""
    host = RecordedDisks(["/home/li"], {"/home/li": tmp_path / "home", "/nfs": tmp_path / "nfs"},
                         FEDORA, "proc-mounts-k8s-node-nfs4-containerd")  # fmt: skip
    plain_zip(tmp_path / "nfs" / "微信备份" / "chats.zip")
    report = disks(host)
    shares = [(v.mount_point, v.device) for v in report.disk_encryption.volumes[4:]]
    assert shares == [("/nfs", "10.1.24.250:/nfs"), ("/run", "tmpfs"), ("/run/lock", "tmpfs")]
    backup = chat_backups(host, report, "/nfs/微信备份")["/nfs/微信备份/chats.zip"]
    assert not backup.HasField("on_encrypted_volume")
    assert backup.volume_evidence == (
        "on volume 10.1.24.250:/nfs mounted at /nfs, whose encryption is unknown"
    )
    state, reason = judged(backup)
    assert state is State.UNKNOWN and "whether its disk is encrypted is unknown" in reason


def test_a_backup_on_an_smb_share_sealed_on_the_wire(tmp_path: Path) -> None:
    """`seal` encrypts SMB traffic, not the server's disk."""
    folders = {"/home/li": tmp_path / "home", "/mnt/test": tmp_path / "smb"}
    host = RecordedDisks(["/home/li"], folders, FEDORA, "proc-mounts-cifs-seal-line")
    plain_zip(tmp_path / "smb" / "微信备份" / "chats.zip")
    backup = chat_backups(host, disks(host), "/mnt/test/微信备份")["/mnt/test/微信备份/chats.zip"]
    assert backup.volume_evidence == (
        "on volume //10.10.22.143/test2 mounted at /mnt/test, whose encryption is unknown"
    )
    assert judged(backup)[0] is State.UNKNOWN


def _janarene(tmp_path: Path, homes: list[str] | None = None) -> RecordedDisks:
    """Ubuntu 11.04's ecryptfs home with eleven SMB shares mounted under ~/mnt."""
    homes = homes or ["/home/janarene"]
    folders = {home: tmp_path / home.rsplit("/", 1)[-1] for home in homes}
    return RecordedDisks(homes, folders, FEDORA, "mtab-ecryptfs-home-cifs-ubuntu1104")


def test_a_share_inside_an_ecryptfs_home_and_the_home_itself(tmp_path: Path) -> None:
    """The share mounted inside the home holds its sets, not the home's ecryptfs (an encrypted
    volume) nor LUKS2 /home below it; a set in the home itself is on ecryptfs. The fact shows
    both under "~", which the judgement reads again where they really are."""
    host = _janarene(tmp_path)
    plain_zip(tmp_path / "janarene" / "mnt" / "LAN.BACKUP" / "微信备份" / "chats.zip")
    plain_zip(tmp_path / "janarene" / "微信备份" / "chats.zip")
    report = disks(host)
    shown = {v.mount_point: v for v in report.disk_encryption.volumes}
    assert shown["~"].device == "~/.Private" and shown["~"].encrypted
    assert shown["~/mnt/LAN.BACKUP"].device == "//TINKERBELL/LAN.BACKUP/"
    assert "janarene" not in str(report)  # the user's name stays on the computer
    found = chat_backups(host, report, "~/mnt/LAN.BACKUP/微信备份", "~/微信备份")
    on_share = found["~/mnt/LAN.BACKUP/微信备份/chats.zip"]
    assert not on_share.HasField("on_encrypted_volume")
    assert on_share.volume_evidence == (
        "on volume //TINKERBELL/LAN.BACKUP/ mounted at ~/mnt/LAN.BACKUP, whose encryption is"
        " unknown"
    )
    at_home = found["~/微信备份/chats.zip"]
    assert at_home.on_encrypted_volume
    assert at_home.volume_evidence == "on eCryptfs volume ~/.Private mounted at ~"
    assert judged(on_share, at_home)[0] is State.UNKNOWN  # one plain set not known safe
    assert judged(at_home)[0] is State.PASS


def test_another_users_home_is_not_taken_for_the_encrypted_one(tmp_path: Path) -> None:
    """The fact says "~" for janarene's ecryptfs home, not whose: wang's set, in a home that is
    no mount, stays on LUKS2 /home."""
    host = _janarene(tmp_path, ["/home/janarene", "/home/wang"])
    plain_zip(tmp_path / "wang" / "微信备份" / "chats.zip")
    (backup,) = chat_backups(host, disks(host), "~/微信备份").values()
    assert backup.on_encrypted_volume
    assert backup.volume_evidence == ON_LUKS_HOME


def test_mounts_left_out_of_a_full_fact_are_still_matched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fact at the collector's limit (made 6 here) keeps the volumes holding the root and the
    home, then the first shares mounted in the home; /boot and the other shares are left out,
    and the set on one of those is judged by its own share all the same."""
    monkeypatch.setattr(backup_volume, "MAX_VOLUMES", 6)
    host = _janarene(tmp_path)
    plain_zip(tmp_path / "janarene" / "mnt" / "IS.BACKUP" / "微信备份" / "chats.zip")
    report = disks(host)
    assert [v.mount_point for v in report.disk_encryption.volumes] == [
        "/home", "/", "~", "~/mnt/FS.Audio_Books", "~/mnt/FS.FULL_DVD", "~/mnt/FS.WWW",
    ]  # fmt: skip
    assert [e.source for e in report.errors] == ["volumes"]
    (backup,) = chat_backups(host, report, "~/mnt/IS.BACKUP/微信备份").values()
    assert backup.volume_evidence == (
        "on volume //TINKERBELL/IS.BACKUP/ mounted at ~/mnt/IS.BACKUP, whose encryption is unknown"
    )


def test_mounts_that_cannot_be_read_again_leave_the_volume_unknown(tmp_path: Path) -> None:
    host = _janarene(tmp_path)
    plain_zip(tmp_path / "janarene" / "微信备份" / "chats.zip")
    report = disks(host)
    unreadable = RecordedDisks(["/home/janarene"], {"/home/janarene": tmp_path / "janarene"},
                               FEDORA, None)  # fmt: skip
    (backup,) = chat_backups(unreadable, report, "~/微信备份").values()
    assert not backup.HasField("on_encrypted_volume")  # never "encrypted"
    assert backup.volume_evidence == (
        "which mount holds it is unknown: /proc/self/mounts does not exist"
    )


def test_a_tmpfs_mounted_over_a_disk_holds_what_is_written_there(tmp_path: Path) -> None:
    """Recorded on one machine: lsblk lists the disk at both places, the later mount is the
    one seen. The set under the tmpfs was "on volume vda …, not encrypted" (FAIL)."""
    host = RecordedDisks(["/home/li"], {"/home/li": tmp_path / "home", "/tmp/dp-rec2": tmp_path},
                         "lsblk/lsblk-over-mounted-debian12.out",
                         "proc-self-mounts-over-mounted-debian12")  # fmt: skip
    for place in ("over-block", "over-tmpfs"):
        plain_zip(tmp_path / place / "微信备份" / "chats.zip")
    found = chat_backups(host, disks(host), "/tmp/dp-rec2/over-block/微信备份",
                         "/tmp/dp-rec2/over-tmpfs/微信备份")  # fmt: skip
    memory = found["/tmp/dp-rec2/over-block/微信备份/chats.zip"]
    assert memory.volume_evidence == (
        "on volume tmpfs mounted at /tmp/dp-rec2/over-block, whose encryption is unknown"
    )
    disk_seen = found["/tmp/dp-rec2/over-tmpfs/微信备份/chats.zip"]
    assert disk_seen.volume_evidence == (
        "on volume vda mounted at /tmp/dp-rec2/over-tmpfs, not encrypted"
    )


def test_a_real_tmpfs_on_this_computer(tmp_path: Path) -> None:
    """Live: lsblk and /proc/self/mounts of this computer, a tmpfs mounted for the test."""
    home = tmp_path / "home"
    home.mkdir()
    with tmpfs(tmp_path / "memory", "4m") as memory:
        plain_zip(memory / "微信备份" / "chats.zip")
        host = TempHomeHost(home)
        report = disks(host)
        assert any(v.mount_point == str(memory) for v in report.disk_encryption.volumes)
        (backup,) = chat_backups(host, report, str(memory / "微信备份")).values()
    assert not backup.HasField("on_encrypted_volume")
    assert backup.volume_evidence == (
        f"on volume tmpfs mounted at {memory}, whose encryption is unknown"
    )


def test_the_mounts_are_recorded_in_a_bundle_and_replayed(tmp_path: Path) -> None:
    recorder = RecordingHost(_janarene(tmp_path))
    plain_zip(tmp_path / "janarene" / "mnt" / "LAN.BACKUP" / "微信备份" / "chats.zip")
    report = disks(recorder)
    live = chat_backups(recorder, report, "~/mnt/LAN.BACKUP/微信备份")
    document = json.loads(dumps(recorder.bundle("test", ProbeConfig())))
    reads = [c for c in document["calls"] if c["args"].get("path") == mounted.MOUNTS]
    assert len(reads) == 1  # read by the disk probe and again by the judgement: one record
    (tmp_path / "janarene" / "mnt" / "LAN.BACKUP" / "微信备份" / "chats.zip").unlink()
    replay = BundleHost(document)
    assert disks(replay) == report
    assert chat_backups(replay, report, "~/mnt/LAN.BACKUP/微信备份") == live


def test_a_bundle_recorded_before_the_mounts_were_read(tmp_path: Path) -> None:
    """An older agent read /proc/self/mounts only when lsblk had no "/": the replay says the
    bundle lacks it, lists lsblk's volumes and judges the sets on them, as that agent did."""
    recorder = RecordingHost(_janarene(tmp_path))
    plain_zip(tmp_path / "janarene" / "mnt" / "LAN.BACKUP" / "微信备份" / "chats.zip")
    chat_backups(recorder, disks(recorder), "~/mnt/LAN.BACKUP/微信备份")
    document = json.loads(dumps(recorder.bundle("0.1.0", ProbeConfig())))
    document["calls"] = [c for c in document["calls"] if c["args"].get("path") != mounted.MOUNTS]
    replay = BundleHost(document)
    report = disks(replay)
    assert len(report.disk_encryption.volumes) == 4
    (error,) = report.errors
    assert error.source == "mounts" and "the bundle does not hold" in error.message
    (backup,) = chat_backups(replay, report, "~/mnt/LAN.BACKUP/微信备份").values()
    assert backup.volume_evidence == ON_LUKS_HOME
