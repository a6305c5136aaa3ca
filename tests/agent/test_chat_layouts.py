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
from devposture.agent.probes.chat_backups import scan, watch_folders
from devposture.agent.probes.chat_layouts import BY_FAMILY
from devposture.agent.probes.outcome import ProbeContext
from devposture.policy.checks import CheckParameters, State, check_chat_backup
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.test_probes_backups import DAY, NOW, dated, sqlcipher_db, tool

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


def collect(host: LiveHost, config: ProbeConfig | None = None) -> pb.ChatBackupFact:
    ctx = ProbeContext(host, config or ProbeConfig(), pb.PostureReport())
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


def test_windows_wechat4_live_accounts_and_backup_folder(tmp_path: Path) -> None:
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
    # A backup made with 迁移与备份: Backup/<account without its suffix>/...
    made = dated(encrypted_file(root / "Backup" / "wxid_3vmmyby98la022" / "backup_0.dat"), 2)
    (found,) = collect(host).backups
    assert found.account == "wxid_3vmmyby98la022"
    assert found.location == "~/Documents/xwechat_files/Backup/wxid_3vmmyby98la022"
    assert found.newest_backup_at.seconds == int(made.stat().st_mtime)
    assert found.format.startswith("WeChat 4.x PC backup")
    assert judged(collect(host))[0] is State.PASS


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
