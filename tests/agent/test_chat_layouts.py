"""The chat-backup scan on the real folder layouts of WeChat 3.x, 4.x and WeCom, per OS.

Each tree is built from a published listing in tests/fixtures/chat_layouts/ (its README names
the source; each test checks the names it uses are in that listing), or, where no raw listing
was published, from the paths docs/chat-backups.md cites. File contents are made by real tools
at test time: sqlcipher for the apps' encrypted live databases, OpenSSL for the app-encrypted
backup files, sqlite3 for a plain copy. Windows and macOS paths are served from a temporary
folder by `MappedHost` (the real file system, under the other OS's path names), so the probe
sees "C:/Users/li/Documents/WeChat Files/..." as on a real PC.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
from pathlib import Path

import pytest

from devposture.agent.host import LiveHost
from devposture.agent.host.types import FileStat, WalkResult
from devposture.agent.parsers.wechat_config import DataFolderRef, parse_data_folder
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.chat_backups import scan, watch_folders
from devposture.agent.probes.chat_layouts import BY_FAMILY
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.probes.windows import disk as windows_disk
from devposture.policy.checks import CheckParameters, State, check_chat_backup
from devposture.policy.phrases import is_phrase
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.rmfh import rmfh_file
from tests.agent.test_backup_volume import mac_report
from tests.agent.test_probes_backups import DAY, NOW, dated, sqlcipher_db, tool
from tests.agent.windows.replay_windows import WindowsReplayHost, output

LAYOUTS = Path(__file__).resolve().parents[1] / "fixtures" / "chat_layouts"
WHEN = dt.datetime.fromtimestamp(NOW, dt.UTC)


def listing(name: str) -> str:
    return (LAYOUTS / name).read_text(encoding="utf-8")


def assert_listed(name: str, *entries: str) -> None:
    text = listing(name)
    missing = [e for e in entries if e not in text]
    assert not missing, f"{name} does not show {missing}"


class MappedHost(LiveHost):
    """The real file system under another OS's path names: each prefix ("C:/Users/li") is a
    folder of the test's. Files, times and contents are real; only the names are mapped."""

    def __init__(self, family: pb.OsFamily.ValueType, home: str, mounts: dict[str, Path]):
        super().__init__()
        self._family = family
        self._home = home
        self._mounts = mounts

    @property
    def os_family(self) -> pb.OsFamily.ValueType:
        return self._family

    def home_dirs(self) -> list[str]:
        return [self._home]

    def real(self, path: str) -> str:
        for prefix, folder in self._mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                return str(folder) + path[len(prefix) :]
        return str(self._mounts["/"]) + "/" + path.lstrip("/") if "/" in self._mounts else path

    def real_path(self, path: str) -> str:
        """Where a link really leads, named back as this OS would (a Windows drive with
        backslashes, as os.path.realpath gives it there)."""
        real = super().real_path(self.real(path))
        for prefix, folder in sorted(self._mounts.items(), key=lambda m: -len(str(m[1]))):
            base = str(folder.resolve())
            if real == base or real.startswith(base + "/"):
                named = prefix.rstrip("/") + real[len(base) :]
                windows = self._family == pb.OS_FAMILY_WINDOWS
                return named.replace("/", "\\") if windows else named or "/"
        return real

    def exists(self, path: str) -> bool:
        return super().exists(self.real(path))

    def list_dir(self, path: str) -> list[str]:
        return super().list_dir(self.real(path))

    def stat(self, path: str) -> FileStat:
        return super().stat(self.real(path))

    def walk_files(self, path: str, max_files: int) -> WalkResult:
        return super().walk_files(self.real(path), max_files)

    def read_bytes(self, path: str, limit: int) -> bytes:
        return super().read_bytes(self.real(path), limit)

    def read_sample(self, path: str, limit: int, offset: int = 0) -> bytes:
        return super().read_sample(self.real(path), limit, offset)


def encrypted_file(path: Path, size: int = 4096) -> Path:
    """A file encrypted by OpenSSL (AES-256), standing in for the app's own encrypted backup
    files, whose bytes are not published: random-looking after a salt, as theirs are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [tool("openssl"), "enc", "-aes-256-cbc", "-pbkdf2", "-nosalt", "-pass", "pass:k",
         "-out", str(path)],
        input=b"\x00" * size, check=True, capture_output=True,
    )  # fmt: skip
    return path


def collect(
    host: LiveHost, config: ProbeConfig | None = None, report: pb.PostureReport | None = None
) -> pb.ChatBackupFact:
    ctx = ProbeContext(host, config or ProbeConfig(), report or pb.PostureReport())
    outcome = scan(ctx, BY_FAMILY[host.os_family])
    assert isinstance(outcome.fact, pb.ChatBackupFact), outcome.errors
    return outcome.fact


def judged(fact: pb.ChatBackupFact) -> tuple[State, str]:
    report = pb.PostureReport()
    report.chat_backups.CopyFrom(fact)
    verdict = check_chat_backup(report, WHEN, CheckParameters())
    return verdict.state, render(verdict.reason, "en", dt.UTC)


def windows(tmp_path: Path) -> tuple[MappedHost, Path]:
    home = tmp_path / "C" / "Users" / "li"
    home.mkdir(parents=True)
    mounts = {"C:": tmp_path / "C", "D:": tmp_path / "D", "E:": tmp_path / "E"}
    return MappedHost(pb.OS_FAMILY_WINDOWS, "C:/Users/li", mounts), home


# --- Windows, WeChat 3.x ----------------------------------------------------------------


def _wechat3_windows_live(root: Path) -> Path:
    """An account of WeChat 3.x for Windows, its live store as PyWxDump's wx_info.py reads it
    (Msg/MicroMsg.db, Msg/Multi/MSG0.db), written "now"."""
    account = root / "wxid_4k2m9x0p1q2r22"
    for db in ("Msg/MicroMsg.db", "Msg/Multi/MSG0.db", "Msg/Misc.db"):
        dated(sqlcipher_db(account / db), 0)
    return account


def test_windows_wechat3_live_store_alone_is_no_backup(tmp_path: Path) -> None:
    host, home = windows(tmp_path)
    _wechat3_windows_live(home / "Documents" / "WeChat Files")
    (home / "Documents" / "WeChat Files" / "All Users").mkdir()
    fact = collect(host)
    assert len(fact.backups) == 0
    assert [(d.account, d.layout, d.location) for d in fact.live_data] == [
        ("wxid_4k2m9x0p1q2r22", "WeChat 3.x", "~/Documents/WeChat Files/wxid_4k2m9x0p1q2r22")
    ]
    state, reason = judged(fact)
    assert state is State.FAIL and "no WeChat or WeCom backup found" in reason


def test_windows_wechat3_backup_set_keeps_its_own_age(tmp_path: Path) -> None:
    host, home = windows(tmp_path)
    account = _wechat3_windows_live(home / "Documents" / "WeChat Files")
    backup = account / "BackupFiles" / "android_3f9a1c0e"
    for name in ("Backup.db", "BAK_0_TEXT", "BAK_0_MEDIA"):
        dated(encrypted_file(backup / name), 40)
    fact = collect(host)
    (found,) = fact.backups
    assert found.kind == pb.BACKUP_KIND_APP_BACKUP and found.format == "WeChat 3.x PC backup"
    assert found.account == "wxid_4k2m9x0p1q2r22" and found.app == pb.CHAT_APP_WECHAT
    assert (
        found.location
        == "~/Documents/WeChat Files/wxid_4k2m9x0p1q2r22/BackupFiles/android_3f9a1c0e"
    )
    assert found.newest_backup_at.seconds == NOW - 40 * DAY  # the set's time, not the live db's
    assert found.file_count == 3 and found.encryption == pb.ENCRYPTION_STATE_ENCRYPTED
    state, reason = judged(fact)
    assert state is State.FAIL and "older than 30 days" in reason
    for name in ("BAK_1_TEXT", "BAK_1_MEDIA"):  # a fresh backup into the same set
        dated(encrypted_file(backup / name), 1)
    state, reason = judged(collect(host))
    assert state is State.PASS and "encrypted backup" in reason


def test_windows_wechat3_plain_backup_index_is_not_encrypted(tmp_path: Path) -> None:
    host, home = windows(tmp_path)
    backup = home / "Documents" / "WeChat Files" / "wxid_a1" / "BackupFiles" / "android_1"
    backup.mkdir(parents=True)
    with sqlite3.connect(backup / "Backup.db") as conn:
        conn.execute("create table Backup (x)")
    encrypted_file(backup / "BAK_0_TEXT")
    (found,) = collect(host).backups
    assert found.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED
    assert "SQLite format 3" in found.encryption_evidence


def test_a_wechat_files_folder_moved_by_a_junction_is_judged_on_its_disk(tmp_path: Path) -> None:
    """Users move "WeChat Files" off C: with a junction (mklink /J) to another disk. A plain
    set there is on that disk: BitLocker on C: (a real manage-bde output) does not keep it
    safe when D: is not encrypted."""
    host, home = windows(tmp_path)
    moved = tmp_path / "D" / "WeChat Files"
    backup = moved / "wxid_a1" / "BackupFiles" / "android_1"
    backup.mkdir(parents=True)
    with sqlite3.connect(backup / "Backup.db") as conn:
        conn.execute("create table Backup (x)")
    dated(encrypted_file(backup / "BAK_0_TEXT"), 1)
    dated(backup / "Backup.db", 1)
    (home / "Documents").mkdir()
    (home / "Documents" / "WeChat Files").symlink_to(moved, target_is_directory=True)
    report = bitlocker_on_c()
    report.disk_encryption.volumes.add(mount_point="D:", device="D:", encrypted=False)
    fact = collect(host, report=report)
    (found,) = fact.backups
    assert found.location == "~/Documents/WeChat Files/wxid_a1/BackupFiles/android_1"
    assert found.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED
    assert found.HasField("on_encrypted_volume") and not found.on_encrypted_volume
    assert found.volume_evidence == (
        "on volume D: mounted at D:, not encrypted"
        " (the files are really in D:/WeChat Files/wxid_a1/BackupFiles/android_1)"
    )
    state, reason = judged(fact)
    assert state is State.FAIL and "is not encrypted" in reason


def bitlocker_on_c() -> pb.PostureReport:
    """The disk-encryption fact of a real Windows 11 (manage-bde: C: fully encrypted,
    BitLocker XTS-AES 128), through the Windows disk probe."""
    replay = WindowsReplayHost()
    replay.record(cmd.MANAGE_BDE, output("manage_bde/status-en-26100-encrypted.txt"))
    report = pb.PostureReport()
    fact = windows_disk.probe(ProbeContext(replay, ProbeConfig(), report)).fact
    assert isinstance(fact, pb.DiskEncryptionFact)
    report.disk_encryption.CopyFrom(fact)
    return report


def test_wechat3_config_default_keeps_the_documents_root(tmp_path: Path) -> None:
    host, home = windows(tmp_path)
    config = home / "AppData/Roaming/Tencent/WeChat/All Users/config/3ebffe94.ini"
    config.parent.mkdir(parents=True)
    config.write_bytes((LAYOUTS / "windows-wechat3-config-3ebffe94-default.ini").read_bytes())
    _wechat3_windows_live(home / "Documents" / "WeChat Files")
    fact = collect(host)
    assert len(fact.live_data) == 1 and fact.entries_skipped == 0


# --- Windows, WeChat 4.x ----------------------------------------------------------------


def _wechat4_windows(root: Path) -> None:
    """The data root of jackwener/wx-cli#74's listing, with databases made by sqlcipher."""
    assert_listed(
        "windows-wechat4-xwechat_files-tree.txt",
        "Backup/", "WMPF/", "all_users/", "kenny_blog_ba4b/", "wxid_3vmmyby98la022_906b/",
        "message_0.db", "biz_message_0.db", "media_0.db", "msg/", "resource/",
        "wxid_lcdlrizly9bj02_7c92/",
    )  # fmt: skip
    for folder in ("Backup", "WMPF", "all_users", "kenny_blog_ba4b"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    account = root / "wxid_3vmmyby98la022_906b"
    for db in ("message_0.db", "biz_message_0.db", "media_0.db", "message_1.db"):
        dated(sqlcipher_db(account / "db_storage" / "message" / db), 0)
    (account / "msg").mkdir()
    (account / "resource").mkdir()
    # The second account's contents are elided in that listing; the db_storage of
    # LC044/WeChatMsg#581 (4.0.3.22) gives them.
    assert_listed("windows-wechat4-db_storage-tree.txt", "session.db", "contact.db")
    other = root / "wxid_lcdlrizly9bj02_7c92" / "db_storage"
    dated(sqlcipher_db(other / "session" / "session.db"), 0)
    dated(sqlcipher_db(other / "contact" / "contact.db"), 0)


def test_windows_wechat4_live_accounts_and_an_empty_backup_folder(tmp_path: Path) -> None:
    host, home = windows(tmp_path)
    root = home / "Documents" / "xwechat_files"
    _wechat4_windows(root)
    fact = collect(host)
    assert sorted(d.account for d in fact.live_data) == [
        "wxid_3vmmyby98la022_906b",
        "wxid_lcdlrizly9bj02_7c92",
    ]
    assert {d.layout for d in fact.live_data} == {"WeChat 4.x"}
    assert len(fact.backups) == 0  # the Backup folder is empty: nothing was backed up
    assert judged(fact)[0] is State.FAIL


TREE = "windows-wechat4-backup-tree.txt"
# What the tree of 52pojie thread 2068774 shows for one account and phone: the phone's
# folder holds alt_name.dat and backup.attr, its files/<n> one backup each (39 the first,
# 44 a second with two chats and their media), and the account folder roam_device_info.dat.
# Files marked ＊ there are RMFH files (wechat4-backup-rmfh-files.txt); the contents of the
# others are not published and never sampled: a few zero bytes stand in for them.
ACCOUNT, PHONE = "wxid_0xt662v10ru629", "73cfbe036d741ddf3"
SET_39 = {
    "backup_time.dat": True, "detail.dat": False, "phoneid.dat": True,
    "phone_history.dat": True, "pkg.attr": True, "pkg_info.dat": False,
    "98dffe08c400f2b/ChatPackage/1760266855000-1760266855000": True,
    "98dffe08c400f2b/Index/1760266855000-1760266855000": True,
    "98dffe08c400f2b/Index/time.dat": True, "98dffe08c400f2b/Index/wholetime.dat": True,
}  # fmt: skip
SET_44 = {
    "pkg.attr": True, "pkg_info.dat": False, "tar_index.dat": False,
    "43d8dd89afdcd/ChatPackage/1760284755000-1761564350000": True,
    "43d8dd89afdcd/Index/1760284755000-1761564350000": True,
    "43d8dd89afdcd/Index/time.dat": True, "43d8dd89afdcd/Index/wholetime.dat": True,
    "e48f8a5ea7c263/ChatPackage/1761747730794-1761747730794": True,
}  # fmt: skip
# Media files: their header is not published ("解密后即普通的 tar 归档文件"); never sampled.
MEDIA_44 = (
    "43d8dd89afdcd/Media/1760284755000-1761564350000.tar.enc",
    "e48f8a5ea7c263/Media/1761747730794-1761747730794.tar.enc",
    "e48f8a5ea7c263/Media/2319603979416722223_m",
)


def _wechat4_backup_set(folder: Path, files: dict[str, bool], days_before: float) -> None:
    assert_listed(TREE, *(name.rsplit("/", 1)[-1] for name in files))
    assert_listed("wechat4-backup-rmfh-files.txt", "RMFH", "RMFT")
    for seed, (name, rmfh) in enumerate(sorted(files.items())):
        path = folder / name
        if rmfh:
            rmfh_file(path, seed=seed)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(5))
        dated(path, days_before)


def _wechat4_backups(backup: Path) -> Path:
    """The account's backups as the tree shows them, files/39 made 10 days ago and files/44
    2 days ago; the folders above the sets written "now" (a restore reads backup.attr)."""
    assert_listed(TREE, ACCOUNT, PHONE, "roam_device_info.dat", "alt_name.dat", "backup.attr",
                  "files", "─39 ", "─44 ", *(m.rsplit("/", 1)[-1] for m in MEDIA_44))  # fmt: skip
    phone = backup / ACCOUNT / PHONE
    _wechat4_backup_set(phone / "files" / "39", SET_39, 10)
    _wechat4_backup_set(phone / "files" / "44", SET_44, 2)
    for name in MEDIA_44:
        dated(encrypted_file(phone / "files" / "44" / name), 2)
    for above in (backup / ACCOUNT / "roam_device_info.dat", phone / "alt_name.dat"):
        above.write_bytes(bytes(5))
    rmfh_file(phone / "backup.attr", seed=99)
    return phone


def test_windows_wechat4_backup_sets_each_with_their_own_age(tmp_path: Path) -> None:
    """Each files/<n> of Backup/<account>/<phone> is one backup ("序号不同的多份备份会并存"),
    dated by its own files: not the live store, nor the phone's and account's files above it."""
    host, home = windows(tmp_path)
    root = home / "Documents" / "xwechat_files"
    _wechat4_windows(root)
    _wechat4_backups(root / "Backup")
    fact = collect(host)
    assert len(fact.live_data) == 2 and fact.entries_skipped == 0
    sets = {b.location.rsplit("/", 1)[-1]: b for b in fact.backups}
    assert sorted(sets) == ["39", "44"]
    for number, days, count in (("39", 10, len(SET_39)), ("44", 2, len(SET_44) + 3)):
        found = sets[number]
        assert found.location == (
            f"~/Documents/xwechat_files/Backup/{ACCOUNT}/{PHONE}/files/{number}"
        )
        assert found.kind == pb.BACKUP_KIND_APP_BACKUP and found.app == pb.CHAT_APP_WECHAT
        assert found.account == ACCOUNT and found.format == "WeChat 4.x PC backup"
        assert found.newest_backup_at.seconds == NOW - days * DAY
        assert found.file_count == count
        assert found.encryption == pb.ENCRYPTION_STATE_ENCRYPTED
        assert found.encryption_evidence.startswith("RMFH header: a WeChat 4.x backup file")
    state, reason = judged(fact)
    assert state is State.PASS and f"{PHONE}/files/44" in reason


def test_a_restore_does_not_make_an_old_wechat4_backup_look_new(tmp_path: Path) -> None:
    """Restoring files/39 to a phone opens files/39/pkg.lock (the source's FileActivityWatch
    list): a file WeChat writes when a set is used, not when it is made."""
    assert_listed(TREE, "\\files\\39\\pkg.lock")
    host, home = windows(tmp_path)
    phone = home / "Documents" / "xwechat_files" / "Backup" / ACCOUNT / PHONE
    _wechat4_backup_set(phone / "files" / "39", SET_39, 40)
    lock = phone / "files" / "39" / "pkg.lock"
    lock.write_bytes(b"")
    dated(lock, 0)
    (found,) = collect(host).backups
    assert found.newest_backup_at.seconds == NOW - 40 * DAY
    state, reason = judged(collect(host))
    assert state is State.FAIL and "older than 30 days" in reason


def test_a_wechat4_set_whose_chats_are_not_rmfh_is_judged_by_their_headers(
    tmp_path: Path,
) -> None:
    """The chats (ChatPackage files) are what is sampled: a plain SQLite file there is a plain
    backup, whatever the set's other files are."""
    host, home = windows(tmp_path)
    folder = home / "Documents" / "xwechat_files" / "Backup" / ACCOUNT / PHONE / "files" / "44"
    _wechat4_backup_set(folder, SET_44, 1)
    chats = folder / "e48f8a5ea7c263" / "ChatPackage" / "1761747730794-1761747730794"
    chats.unlink()
    with sqlite3.connect(chats) as conn:
        conn.execute("create table t (x)")
    dated(chats, 1)
    (found,) = collect(host).backups
    assert found.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED
    assert "SQLite format 3" in found.encryption_evidence


def test_a_folder_in_backup_that_holds_no_wechat4_set_is_unknown_not_a_backup(
    tmp_path: Path,
) -> None:
    """An HTML chat export kept in xwechat_files/Backup (public code reads
    Backup/data/聊天记录/<name>(wxid)/<name>.html) is not a WeChat backup set: before, each
    Backup/<name> folder counted as one, and this plain file made a fresh backup of it."""
    assert_listed("wechat4-backup-paths-public-code.txt", "xwechat_files/Backup/data/聊天记录",
                  "耀子大人(wxid_ho8pac35ipa322)/耀子大人.html")  # fmt: skip
    host, home = windows(tmp_path)
    root = home / "Documents" / "xwechat_files"
    _wechat4_windows(root)
    export = root / "Backup/data/聊天记录/耀子大人(wxid_ho8pac35ipa322)/耀子大人.html"
    export.parent.mkdir(parents=True)
    export.write_text("<html><body>聊天记录</body></html>", encoding="utf-8")
    dated(export, 1)
    fact = collect(host)
    assert len(fact.backups) == 0 and fact.entries_skipped == 1
    (reason,) = fact.skipped_reasons
    assert reason.startswith("~/Documents/xwechat_files/Backup/data: holds files but no WeChat")
    assert is_phrase(reason)
    state, shown = judged(fact)
    assert state is State.UNKNOWN and "Backup/data" in shown
    # Beside a real set it is still named, and the set decides.
    _wechat4_backups(root / "Backup")
    fact = collect(host)
    assert len(fact.backups) == 2 and fact.entries_skipped == 1
    assert judged(fact)[0] is State.PASS


def test_a_copied_wechat4_set_in_a_policy_folder_is_an_app_backup(tmp_path: Path) -> None:
    host, home = windows(tmp_path)
    _wechat4_backup_set(home / "微信备份" / "44", SET_44, 3)
    config = ProbeConfig(backup_folders=("~/微信备份",))
    (found,) = collect(host, config).backups
    assert found.kind == pb.BACKUP_KIND_APP_BACKUP and found.format == "WeChat 4.x PC backup"
    assert found.encryption == pb.ENCRYPTION_STATE_ENCRYPTED


def test_windows_wechat4_moved_root_is_followed(tmp_path: Path) -> None:
    """The real ini of Chunyu33/viap ("E:\\data" + CRLF): the data is in E:\\data\\xwechat_files."""
    host, home = windows(tmp_path)
    config = home / "AppData/Roaming/Tencent/xwechat/config/51a1fffea11325a1e4104c6b3de47af7.ini"
    config.parent.mkdir(parents=True)
    config.write_bytes(
        (LAYOUTS / "windows-wechat4-config-51a1fffea11325a1e4104c6b3de47af7.ini").read_bytes()
    )
    _wechat4_windows(tmp_path / "E" / "data" / "xwechat_files")
    fact = collect(host)
    assert {d.location for d in fact.live_data} == {
        "E:/data/xwechat_files/wxid_3vmmyby98la022_906b",
        "E:/data/xwechat_files/wxid_lcdlrizly9bj02_7c92",
    }
    assert "E:/data/xwechat_files/Backup" in watch_folders(
        ProbeContext(host, ProbeConfig(), pb.PostureReport()), BY_FAMILY[host.os_family]
    )


# --- Windows, WeCom -----------------------------------------------------------------------


def test_windows_wecom_account_is_live_and_its_backup_folder_is_not_counted(
    tmp_path: Path,
) -> None:
    host, home = windows(tmp_path)
    names = ("Applets", "Avator", "Backup", "Cache", "CacheMapping", "Data", "Emotion",
             "Index", "WeDrive")  # fmt: skip
    assert_listed("windows-wecom-account-dir-listing.txt", "WXWork\\1688853079763804", *names)
    account = home / "Documents" / "WXWork" / "1688853079763804"
    for name in names:
        (account / name).mkdir(parents=True)
    encrypted_file(account / "Backup" / "x.dat")  # format unpublished: never counted
    fact = collect(host)
    assert [(d.app, d.account) for d in fact.live_data] == [(pb.CHAT_APP_WECOM, "1688853079763804")]
    assert len(fact.backups) == 0


# --- macOS, WeChat 3.x and 4.x ------------------------------------------------------------


def mac(tmp_path: Path) -> tuple[MappedHost, Path]:
    home = tmp_path / "Users" / "zhang"
    home.mkdir(parents=True)
    return MappedHost(pb.OS_FAMILY_MACOS, "/Users/zhang", {"/Users": tmp_path / "Users"}), home


MAC_WECHAT3 = (
    "Library/Containers/com.tencent.xinWeChat/Data/Library/Application Support/"
    "com.tencent.xinWeChat"
)


def test_macos_wechat3_live_store_and_backup_set(tmp_path: Path) -> None:
    host, home = mac(tmp_path)
    version = home / MAC_WECHAT3 / "2.0b4.0.9"
    assert_listed("macos-wechat3-appsupport-tree.txt", "2.0b4.0.9",
                  "0161db58398a990538738fe832018b02", "Backup", "KeyValue", "CGI")  # fmt: skip
    assert_listed("macos-wechat3-account-db-files.txt", "Message/msg_0.db",
                  "Session/session_new.db")  # fmt: skip
    account = version / "0161db58398a990538738fe832018b02"
    for db in ("Message/msg_0.db", "Message/msg_1.db", "Session/session_new.db"):
        dated(sqlcipher_db(account / db), 0)
    (version / "KeyValue" / "0161db58398a990538738fe832018b02").mkdir(parents=True)
    (version / "CGI").mkdir()
    fact = collect(host)
    assert [d.account for d in fact.live_data] == ["0161db58398a990538738fe832018b02"]
    assert len(fact.backups) == 0
    # A set as smile365/blog annotates it (account hash / device id) with the files of
    # shadow000902's `ls -l`.
    assert_listed("macos-wechat3-backup-tree-annotated.txt", "d6f236797ba7e567290cae85346f1ced",
                  "A46345f3ab607b1e")  # fmt: skip
    assert_listed("macos-wechat3-backup-set-ls.txt", "BAK_0_MEDIA", "BAK_0_TEXT", "Backup.db")
    backup_set = version / "Backup" / "d6f236797ba7e567290cae85346f1ced" / "A46345f3ab607b1e"
    for name in ("BAK_0_MEDIA", "BAK_0_TEXT", "Backup.db"):
        dated(encrypted_file(backup_set / name), 3)
    (found,) = collect(host).backups
    assert found.account == "d6f236797ba7e567290cae85346f1ced"
    assert found.location.startswith("~/Library/Containers/com.tencent.xinWeChat/")
    assert found.newest_backup_at.seconds == NOW - 3 * DAY
    assert found.encryption == pb.ENCRYPTION_STATE_ENCRYPTED


def test_macos_wechat4_live_store_is_not_a_backup(tmp_path: Path) -> None:
    host, home = mac(tmp_path)
    root = home / "Library/Containers/com.tencent.xinWeChat/Data/Documents/xwechat_files"
    dated(sqlcipher_db(root / "wxid_m4c0s_1a2b" / "db_storage" / "session" / "session.db"), 0)
    fact = collect(host)
    assert [(d.account, d.layout) for d in fact.live_data] == [("wxid_m4c0s_1a2b", "WeChat 4.x")]
    assert len(fact.backups) == 0


def test_macos_wechat4_backup_set_in_the_containers_backup_folder(tmp_path: Path) -> None:
    """A Mac's 4.x backups are in xwechat_files/Backup/<account> (a public backup script's
    path); the format is the same on every desktop (52pojie thread 2068774)."""
    assert_listed("wechat4-backup-paths-public-code.txt", "com.tencent.xinWeChat/Data/Documents/"
                  "xwechat_files/Backup/wxid_8855798557612")  # fmt: skip
    host, home = mac(tmp_path)
    root = home / "Library/Containers/com.tencent.xinWeChat/Data/Documents/xwechat_files"
    dated(sqlcipher_db(root / "wxid_8855798557612_1a2b/db_storage/session/session.db"), 0)
    folder = root / "Backup" / "wxid_8855798557612" / PHONE / "files" / "39"
    _wechat4_backup_set(folder, SET_39, 5)
    (found,) = collect(host).backups
    assert found.account == "wxid_8855798557612"
    assert found.newest_backup_at.seconds == NOW - 5 * DAY
    assert found.encryption == pb.ENCRYPTION_STATE_ENCRYPTED
    # A user moved a 30 GB Backup to an external disk behind a symbolic link: still read.
    assert_listed("wechat4-backup-paths-public-code.txt", "xwechat_files/Backup` trỏ tới "
                  "`/Volumes/BINGNET/Kevin_Data/xwechat_files/Backup`")  # fmt: skip
    external = tmp_path / "Volumes" / "BINGNET" / "Kevin_Data" / "xwechat_files" / "Backup"
    external.parent.mkdir(parents=True)
    (root / "Backup").rename(external)
    (root / "Backup").symlink_to(external, target_is_directory=True)
    (moved,) = collect(host).backups
    assert moved.location == found.location and moved.newest_backup_at == found.newest_backup_at
    # FileVault (a real `fdesetup status`) keeps the startup disk; the external disk under
    # /Volumes is another volume, whose encryption the fact does not give: unknown, where it
    # read "on FileVault" by the link's place.
    host = MappedHost(pb.OS_FAMILY_MACOS, "/Users/zhang",
                      {"/Users": tmp_path / "Users", "/Volumes": tmp_path / "Volumes"})  # fmt: skip
    (moved,) = collect(host, report=mac_report()).backups
    assert not moved.HasField("on_encrypted_volume")
    assert moved.volume_evidence == (
        "no volume in the disk-encryption fact holds it (the files are really in"
        f" /Volumes/BINGNET/Kevin_Data/xwechat_files/Backup/wxid_8855798557612/{PHONE}/files/39)"
    )


# --- Linux, WeChat 4.x ----------------------------------------------------------------------


def test_linux_flatpak_wechat4_live_store(tmp_path: Path) -> None:
    assert_listed("linux-wechat4-flatpak-xwechat_files-tree.txt", "wxid_xxx_4433",
                  "message_0.db", "message_fts.db", "session.db", "contact.db")  # fmt: skip
    root = tmp_path / ".var/app/com.tencent.WeChat/xwechat_files/wxid_xxx_4433/db_storage"
    for db in ("message/message_0.db", "message/message_fts.db", "session/session.db",
               "contact/contact.db"):  # fmt: skip
        dated(sqlcipher_db(root / db), 0)
    host = MappedHost(pb.OS_FAMILY_LINUX, "/home/u", {"/home/u": tmp_path})
    fact = collect(host)
    assert [d.location for d in fact.live_data] == [
        "~/.var/app/com.tencent.WeChat/xwechat_files/wxid_xxx_4433"
    ]
    assert len(fact.backups) == 0


def test_linux_pointer_that_is_not_understood_is_skipped_with_its_reason(tmp_path: Path) -> None:
    config = tmp_path / ".xwechat/config/51a1fffea11325a1e4104c6b3de47af7.ini"
    config.parent.mkdir(parents=True)
    config.write_bytes(
        (LAYOUTS / "linux-wechat4-config-51a1fffea11325a1e4104c6b3de47af7-appdata.ini").read_bytes()
    )
    host = MappedHost(pb.OS_FAMILY_LINUX, "/home/u", {"/home/u": tmp_path})
    fact = collect(host)
    assert fact.entries_skipped == 1
    assert "the moved data folder it names is unknown" in fact.skipped_reasons[0]
    state, reason = judged(fact)
    assert state is State.UNKNOWN and ".xwechat/config" in reason


# --- the pointer files' values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "family", "expected"),
    [
        ("windows-wechat3-config-3ebffe94-default.ini", "windows", None),
        ("linux-wechat4-config-default.ini", "posix", None),
        (
            "windows-wechat4-config-51a1fffea11325a1e4104c6b3de47af7.ini",
            "windows",
            DataFolderRef("absolute", "E:/data"),
        ),
    ],
)
def test_pointer_values_published(fixture: str, family: str, expected: object) -> None:
    data = (LAYOUTS / fixture).read_bytes()
    assert parse_data_folder(data, family) == expected  # type: ignore[arg-type]


def test_pointer_value_forms() -> None:
    assert parse_data_folder(b"MyDocument:\\", "windows") is None
    assert parse_data_folder(b"MyDocument:\\sub", "windows") == DataFolderRef("documents", "sub")
    assert parse_data_folder(b"MyDocument:.var/app/com.tencent.WeChat", "posix") == (
        DataFolderRef("home", ".var/app/com.tencent.WeChat")
    )
    assert parse_data_folder(b"\\\\nas\\share\\wx", "windows") == DataFolderRef(
        "absolute", "//nas/share/wx"
    )
    for bad in (b"Appdata:.xwechat", b"relative\\path", b"\xff\xfe\x00", b"a\nb"):
        with pytest.raises(ValueError):
            parse_data_folder(bad, "windows")


def test_the_watcher_watches_backup_folders_never_live_stores(tmp_path: Path) -> None:
    """WeChat writes its live store every minute: watching it would collect every minute."""
    host, home = windows(tmp_path)
    account = _wechat3_windows_live(home / "Documents" / "WeChat Files")
    _wechat4_windows(home / "Documents" / "xwechat_files")
    ctx = ProbeContext(host, ProbeConfig(backup_folders=("~/微信备份",)), pb.PostureReport())
    watched = watch_folders(ctx, BY_FAMILY[host.os_family])
    assert "C:/Users/li/Documents/WeChat Files/wxid_4k2m9x0p1q2r22/BackupFiles" in watched
    assert "C:/Users/li/Documents/xwechat_files/Backup" in watched
    assert "C:/Users/li/微信备份" in watched
    live = [str(account / "Msg"), "C:/Users/li/Documents/WeChat Files/wxid_4k2m9x0p1q2r22",
            "C:/Users/li/Documents/xwechat_files/wxid_3vmmyby98la022_906b"]  # fmt: skip
    assert not [w for w in watched if any(w == p or p.startswith(w + "/") for p in live)]
