"""Chat backups on real files in a temporary home folder, read through LiveHost.

The contents are made by real tools at test time: sqlcipher for the app's encrypted live
databases, 7z, zip and gpg for archives, sqlite3 for a plain copy. The folder layouts are the
ones documented in docs/chat-backups.md; the replays of published listings are in
test_chat_layouts.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from devposture.agent.host import LiveHost
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.chat_layouts import LINUX
from devposture.agent.probes.linux import backups
from devposture.agent.probes.outcome import ProbeContext
from devposture.policy.checks import CheckParameters, State, check_chat_backup
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.gpg_files import encrypt_symmetric

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
NOW = 1_790_000_000  # 2026-09-21: files are dated relative to it, never to the wall clock


class TempHomeHost(LiveHost):
    """The real computer, except that the only user's home is a temporary folder, and the
    probes may be told it runs another OS (the layouts of that OS are then scanned)."""

    def __init__(self, home: Path, family: pb.OsFamily.ValueType = pb.OS_FAMILY_LINUX) -> None:
        super().__init__()
        self._home = str(home)
        self._as_family = family

    @property
    def os_family(self) -> pb.OsFamily.ValueType:
        return self._as_family

    def home_dirs(self) -> list[str]:
        return [self._home]


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is needed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return found


def _collect(
    home: Path, config: ProbeConfig | None = None, report: pb.PostureReport | None = None
) -> pb.ChatBackupFact:
    ctx = ProbeContext(TempHomeHost(home), config or ProbeConfig(), report or pb.PostureReport())
    outcome = backups.probe(ctx)
    assert isinstance(outcome.fact, pb.ChatBackupFact), outcome.errors
    return outcome.fact


def dated(path: Path, days_before: float) -> Path:
    when = NOW - days_before * DAY
    os.utime(path, (when, when))
    return path


def sqlcipher_db(path: Path) -> Path:
    """A real SQLCipher database, as WeChat's live stores are (no "SQLite format 3" header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    script = "PRAGMA key = 'not-wechats-key'; CREATE TABLE MSG (x); INSERT INTO MSG VALUES (1);"
    subprocess.run([tool("sqlcipher"), str(path)], input=script, text=True, check=True,
                   capture_output=True)  # fmt: skip
    assert not path.read_bytes().startswith(b"SQLite format 3")
    return path


def seven_zip(folder: Path, name: str, *options: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "chat.txt").write_text("聊天记录导出", encoding="utf-8")
    subprocess.run([tool("7z"), "a", *options, name, "chat.txt"], cwd=folder, check=True,
                   capture_output=True)  # fmt: skip
    (folder / "chat.txt").unlink()
    return folder / name


def test_no_backup_anywhere(tmp_path: Path) -> None:
    fact = _collect(tmp_path)
    assert len(fact.backups) == 0 and len(fact.live_data) == 0
    # Each default data root without a Wine prefix was looked at (Wine patterns need one).
    plain = [root for layout in LINUX for root in layout.roots if "*" not in root]
    assert fact.locations_checked == len(plain) >= 1


def test_linux_wechat4_live_store_is_never_a_backup(tmp_path: Path) -> None:
    account = tmp_path / "Documents" / "xwechat_files" / "wxid_abc123_9f3e"
    sqlcipher_db(account / "db_storage" / "message" / "message_0.db")
    fact = _collect(tmp_path)
    assert len(fact.backups) == 0
    (live,) = fact.live_data
    assert (live.app, live.account, live.layout) == (pb.CHAT_APP_WECHAT, "wxid_abc123_9f3e",
                                                      "WeChat 4.x")  # fmt: skip
    assert live.location == "~/Documents/xwechat_files/wxid_abc123_9f3e"
    assert str(tmp_path) not in str(fact)


def test_policy_folder_archives_each_a_set_with_its_own_time(tmp_path: Path) -> None:
    folder = tmp_path / "微信备份"
    old = dated(seven_zip(folder, "2026-08.7z", "-pS3cret", "-mhe=on"), 40)
    new = dated(seven_zip(folder, "2026-09.7z", "-pS3cret", "-mhe=on"), 1)
    fact = _collect(tmp_path, ProbeConfig(backup_folders=("~/微信备份",)))
    by_name = {b.location.rsplit("/", 1)[-1]: b for b in fact.backups}
    assert set(by_name) == {"2026-08.7z", "2026-09.7z"}
    for path, backup in ((old, by_name["2026-08.7z"]), (new, by_name["2026-09.7z"])):
        assert backup.kind == pb.BACKUP_KIND_ARCHIVE and backup.format == "7z archive"
        assert backup.newest_backup_at.seconds == int(path.stat().st_mtime)
        assert backup.file_count == 1 and backup.total_bytes == path.stat().st_size
        assert backup.encryption == pb.ENCRYPTION_STATE_ENCRYPTED
        assert "AES-256" in backup.encryption_evidence


def test_plain_zip_and_plain_database_copy_are_not_encrypted(tmp_path: Path) -> None:
    folder = tmp_path / "chat-archive"
    folder.mkdir()
    (folder / "export.txt").write_text("2026-09-20 客户: 报价", encoding="utf-8")
    subprocess.run([tool("zip"), "-q", "plain.zip", "export.txt"], cwd=folder, check=True)
    (folder / "export.txt").unlink()
    with sqlite3.connect(folder / "MSG0-decrypted.db") as conn:
        conn.execute("create table MSG (content text)")
    fact = _collect(tmp_path, ProbeConfig(backup_folders=("~/chat-archive",)))
    states = {b.location.rsplit("/", 1)[-1]: (b.encryption, b.format) for b in fact.backups}
    assert states == {
        "plain.zip": (pb.ENCRYPTION_STATE_NOT_ENCRYPTED, "ZIP archive"),
        "MSG0-decrypted.db": (pb.ENCRYPTION_STATE_NOT_ENCRYPTED, "SQLite database"),
    }


def test_a_zip_with_an_encrypted_first_entry_and_plain_chats_after_it_is_plain(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "chat-archive"
    folder.mkdir()
    for name in ("key.txt", "chat.txt"):
        (folder / name).write_text("2026-09-20 客户: 报价", encoding="utf-8")
    zip_tool = tool("zip")
    subprocess.run([zip_tool, "-q", "-P", "pw", "mixed.zip", "key.txt"], cwd=folder, check=True)
    subprocess.run([zip_tool, "-q", "mixed.zip", "chat.txt"], cwd=folder, check=True)
    subprocess.run([zip_tool, "-q", "-P", "pw", "sealed.zip", "key.txt", "chat.txt"], cwd=folder,
                   check=True)  # fmt: skip
    for name in ("key.txt", "chat.txt"):
        (folder / name).unlink()
    fact = _collect(tmp_path, ProbeConfig(backup_folders=("~/chat-archive",)))
    states = {b.location.rsplit("/", 1)[-1]: b.encryption for b in fact.backups}
    assert states == {
        "mixed.zip": pb.ENCRYPTION_STATE_NOT_ENCRYPTED,  # read ENCRYPTED by its first entry
        "sealed.zip": pb.ENCRYPTION_STATE_ENCRYPTED,
    }


def test_gpg_and_openssl_archives_are_encrypted(tmp_path: Path) -> None:
    folder = tmp_path / "chat-archive"
    folder.mkdir()
    (folder / "chats.tar").write_bytes(b"work chats " * 20)
    gnupg_home = tmp_path / "gnupg"
    gnupg_home.mkdir(mode=0o700)
    encrypt_symmetric(tool("gpg"), gnupg_home, folder / "chats.tar", folder / "chats.tar.gpg")
    subprocess.run(
        [tool("openssl"), "enc", "-aes-256-cbc", "-pbkdf2", "-salt", "-pass", "pass:pw",
         "-in", str(folder / "chats.tar"), "-out", str(folder / "chats.tar.enc")],
        check=True, capture_output=True,
    )  # fmt: skip
    (folder / "chats.tar").unlink()
    fact = _collect(tmp_path, ProbeConfig(backup_folders=("~/chat-archive",)))
    states = {b.location.rsplit("/", 1)[-1]: (b.encryption, b.format) for b in fact.backups}
    assert states == {
        "chats.tar.gpg": (pb.ENCRYPTION_STATE_ENCRYPTED, "OpenPGP message"),
        "chats.tar.enc": (pb.ENCRYPTION_STATE_ENCRYPTED, "OpenSSL encrypted file"),
    }


def test_volume_encryption_is_reported_apart_from_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "chat-archive"
    folder.mkdir()
    (folder / "export.txt").write_text("plain export", encoding="utf-8")
    report = pb.PostureReport()
    report.disk_encryption.volumes.add(mount_point="/", device="/dev/sda1", encrypted=False)
    report.disk_encryption.volumes.add(mount_point=str(tmp_path), device="/dev/dm-0",
                                       encrypted=True, method="LUKS2")  # fmt: skip
    config = ProbeConfig(backup_folders=("~/chat-archive",))
    (backup,) = _collect(tmp_path, config, report).backups
    assert backup.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED  # the file itself is plain
    assert backup.HasField("on_encrypted_volume") and backup.on_encrypted_volume
    assert backup.volume_evidence == f"on LUKS2 volume /dev/dm-0 mounted at {tmp_path}"
    del report.disk_encryption.volumes[1]
    (backup,) = _collect(tmp_path, config, report).backups
    assert backup.HasField("on_encrypted_volume") and not backup.on_encrypted_volume
    assert backup.volume_evidence == "on volume /dev/sda1 mounted at /, not encrypted"
    (backup,) = _collect(tmp_path, config).backups  # no disk-encryption fact: unknown
    assert not backup.HasField("on_encrypted_volume")


def _plain_zip(path: Path) -> Path:
    """A chat export zipped without a password (Python's zipfile), dated a day ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("chat.txt", "聊天记录导出")
    return dated(path, 1)


def _disks(tmp_path: Path, *, system: bool, other: bool) -> tuple[pb.PostureReport, Path]:
    """The disk-encryption fact of a computer with a second disk: "/" and a disk mounted at
    the test's "usb" folder, each encrypted or not as the test says (lsblk's mount points)."""
    usb = tmp_path / "usb"
    usb.mkdir()
    report = pb.PostureReport()
    report.disk_encryption.volumes.add(mount_point="/", device="nvme0n1p3_crypt" if system
                                       else "nvme0n1p3", encrypted=system,
                                       method="LUKS2" if system else "")  # fmt: skip
    report.disk_encryption.volumes.add(mount_point=str(usb), device="sdb1" if not other
                                       else "luks-sdb1", encrypted=other,
                                       method="LUKS2" if other else "")  # fmt: skip
    return report, usb


def _judged(fact: pb.ChatBackupFact) -> tuple[State, str]:
    report = pb.PostureReport()
    report.chat_backups.CopyFrom(fact)
    verdict = check_chat_backup(report, dt.datetime.fromtimestamp(NOW, dt.UTC), CheckParameters())
    return verdict.state, render(verdict.reason, "en", dt.UTC)


# Where a user points a folder at another disk: the policy folder itself, one set in it, one
# archive in it, or the whole Documents folder above it.
LINKED = {
    "policy folder": ("微信备份", "微信备份", "~/微信备份"),
    "set folder": ("微信备份/2026-11", "2026-11", "~/微信备份"),
    "archive": ("微信备份/chats.zip", "chats.zip", "~/微信备份"),
    "Documents": ("Documents", "Documents", "~/Documents/微信备份"),
}


@pytest.mark.parametrize("linked", sorted(LINKED))
def test_a_set_behind_a_link_is_judged_on_the_volume_that_holds_its_files(
    tmp_path: Path, linked: str
) -> None:
    """A plain backup the user keeps on an unencrypted USB disk through a symbolic link from
    the (encrypted) home: it is exposed, not "on LUKS2 /" where the link sits."""
    link, target, folder = LINKED[linked]
    report, usb = _disks(tmp_path, system=True, other=False)
    home = tmp_path / "home"
    spelled = home / folder[2:]
    _plain_zip(spelled / "chats.zip")
    _plain_zip(spelled / "2026-11" / "chats.zip")
    (usb / target).parent.mkdir(parents=True, exist_ok=True)
    (home / link).rename(usb / target)
    (home / link).symlink_to(usb / target)
    fact = _collect(home, ProbeConfig(backup_folders=(folder,)), report)
    assert sorted(b.location for b in fact.backups) == [f"{folder}/2026-11", f"{folder}/chats.zip"]
    for backup in fact.backups:
        assert backup.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED
        behind = linked not in ("set folder", "archive") or backup.location.endswith(target)
        if not behind:  # the other set is where its path says: on the encrypted system disk
            assert backup.on_encrypted_volume, backup
            assert backup.volume_evidence == "on LUKS2 volume nvme0n1p3_crypt mounted at /"
            continue
        assert backup.HasField("on_encrypted_volume") and not backup.on_encrypted_volume
        really = str(usb / target) + backup.location[len(f"~/{link}") :]
        assert backup.volume_evidence == (
            f"on volume sdb1 mounted at {usb}, not encrypted (the files are really in {really})"
        )
    state, reason = _judged(fact)
    assert state is State.FAIL and "is not encrypted" in reason, reason
    assert f"the files are really in {usb}" in reason


def test_a_set_linked_into_an_encrypted_volume_is_kept_safe(tmp_path: Path) -> None:
    """The reverse: an unencrypted system disk, the backups on an encrypted disk reached
    through a link from the home."""
    report, vault = _disks(tmp_path, system=False, other=True)
    home = tmp_path / "home"
    _plain_zip(vault / "微信备份" / "chats.zip")
    home.mkdir()
    (home / "微信备份").symlink_to(vault / "微信备份")
    (backup,) = _collect(home, ProbeConfig(backup_folders=("~/微信备份",)), report).backups
    assert backup.on_encrypted_volume
    assert backup.volume_evidence == (
        f"on LUKS2 volume luks-sdb1 mounted at {vault} (the files are really in"
        f" {vault}/微信备份/chats.zip)"
    )
    state, _ = _judged(pb.ChatBackupFact(backups=[backup]))
    assert state is State.PASS


class UnpluggedHost(TempHomeHost):
    """The USB disk is pulled out after its sets were read, before their place is resolved:
    the link on the home now leads nowhere."""

    def __init__(self, home: Path, usb: Path) -> None:
        super().__init__(home)
        self._usb = usb

    def real_path(self, path: str) -> str:
        if self._usb.exists():
            self._usb.rename(self._usb.with_name("usb-unplugged"))
        return super().real_path(path)


def test_a_link_that_leads_nowhere_leaves_the_volume_unknown(tmp_path: Path) -> None:
    report, usb = _disks(tmp_path, system=True, other=False)
    home = tmp_path / "home"
    _plain_zip(usb / "微信备份" / "chats.zip")
    home.mkdir()
    (home / "微信备份").symlink_to(usb / "微信备份")
    config = ProbeConfig(backup_folders=("~/微信备份",))
    ctx = ProbeContext(UnpluggedHost(home, usb), config, report)
    outcome = backups.probe(ctx)
    assert isinstance(outcome.fact, pb.ChatBackupFact)
    (backup,) = outcome.fact.backups
    assert not backup.HasField("on_encrypted_volume")  # never "encrypted"
    assert backup.volume_evidence == (
        "where the files really are is unknown: ~/微信备份/chats.zip does not exist"
    )
    state, reason = _judged(outcome.fact)
    assert state is State.UNKNOWN and "whether its disk is encrypted is unknown" in reason


def test_a_name_that_is_not_valid_text_costs_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "chat-archive"
    folder.mkdir()
    seven_zip(folder, "good.7z", "-pS3cret", "-mhe=on")
    odd = os.fsdecode(bytes(folder) + b"/\xb1\xb8\xb7\xdd.7z")  # "备份" in GBK: not UTF-8
    shutil.copy(folder / "good.7z", odd)
    fact = _collect(tmp_path, ProbeConfig(backup_folders=("~/chat-archive",)))
    assert sorted(b.location for b in fact.backups) == [
        "~/chat-archive/\\xb1\\xb8\\xb7\\xdd.7z",
        "~/chat-archive/good.7z",
    ]
    assert all(b.encryption == pb.ENCRYPTION_STATE_ENCRYPTED for b in fact.backups)
    fact.SerializeToString()  # valid UTF-8 throughout: the fact can be sent


def _without_root_reading(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a new interpreter that may read only what its user may: as root, with
    the capabilities that let root read everything dropped."""
    argv = [sys.executable, "-c", script, *args]
    if os.geteuid() == 0:
        argv = [tool("setpriv"), "--bounding-set=-dac_override,-dac_read_search", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)


_UNREADABLE = """
import json, sys
from google.protobuf import json_format
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.linux import backups
from devposture.agent.probes.outcome import ProbeContext
from devposture.v1 import devposture_pb2 as pb
from tests.agent.test_probes_backups import TempHomeHost
from pathlib import Path
ctx = ProbeContext(TempHomeHost(Path(sys.argv[1])), ProbeConfig(backup_folders=("~/a", "~/b")),
                   pb.PostureReport())
print(json_format.MessageToJson(backups.probe(ctx).fact))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="setpriv drops Linux capabilities")
def test_an_unreadable_entry_costs_only_itself(tmp_path: Path) -> None:
    """One folder the agent may not read: skipped with its reason; the other set stands."""
    seven_zip(tmp_path / "a", "ok.7z", "-pS3cret", "-mhe=on")
    locked = tmp_path / "b" / "locked"
    seven_zip(locked, "hidden.7z", "-pS3cret", "-mhe=on")
    locked.chmod(0)
    try:
        done = _without_root_reading(_UNREADABLE, str(tmp_path))
    finally:
        locked.chmod(0o700)
    assert done.returncode == 0, done.stderr
    fact = json.loads(done.stdout)
    assert [b["location"] for b in fact["backups"]] == ["~/a/ok.7z"]
    assert fact["entriesSkipped"] == 1
    (reason,) = fact["skippedReasons"]
    assert reason.startswith("~/b/locked: permission denied"), reason


_TWO_HOMES = """
import json, sys
from pathlib import Path
from google.protobuf import json_format
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.linux import backups
from devposture.agent.probes.outcome import ProbeContext
from devposture.v1 import devposture_pb2 as pb
from tests.agent.test_probes_backups import TempHomeHost

class TwoHomes(TempHomeHost):
    def home_dirs(self):
        return [sys.argv[1], sys.argv[2]]

ctx = ProbeContext(TwoHomes(Path(sys.argv[1])), ProbeConfig(), pb.PostureReport())
print(json_format.MessageToJson(backups.probe(ctx).fact))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="setpriv drops Linux capabilities")
def test_a_home_the_agent_cannot_read_makes_backups_unknown_not_absent(tmp_path: Path) -> None:
    """Another user's private home, read without root's capabilities (a terminal, or a
    service without CAP_DAC_READ_SEARCH): skipped with its reason, so the clause reads UNKNOWN
    instead of "no backup"."""
    mine, theirs = tmp_path / "me", tmp_path / "other"
    mine.mkdir()
    theirs.mkdir()
    theirs.chmod(0)
    try:
        done = _without_root_reading(_TWO_HOMES, str(mine), str(theirs))
    finally:
        theirs.chmod(0o700)
    assert done.returncode == 0, done.stderr
    fact = json.loads(done.stdout)
    assert fact.get("entriesSkipped") == 1, fact
    (reason,) = fact["skippedReasons"]
    assert "this home folder cannot be read (permission denied" in reason, reason
    # Readable, both homes say nothing is skipped: the check cannot fire on its own.
    done = subprocess.run(
        [sys.executable, "-c", _TWO_HOMES, str(mine), str(theirs)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "entriesSkipped" not in json.loads(done.stdout)
