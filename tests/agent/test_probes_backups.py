"""Chat backups on real files in a temporary home folder, read through LiveHost."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from agent.host import LiveHost
from agent.probes import ProbeConfig
from agent.probes.backup_locations import LINUX
from agent.probes.linux import backups
from agent.probes.outcome import ProbeContext
from devposture.v1 import devposture_pb2 as pb


class TempHomeHost(LiveHost):
    """The real computer, except that the only user's home is a temporary folder."""

    def __init__(self, home: Path) -> None:
        super().__init__()
        self._home = str(home)

    def home_dirs(self) -> list[str]:
        return [self._home]


def _collect(home: Path, config: ProbeConfig | None = None) -> pb.ChatBackupFact:
    ctx = ProbeContext(TempHomeHost(home), config or ProbeConfig(), pb.PostureReport())
    fact = backups.probe(ctx).fact
    assert isinstance(fact, pb.ChatBackupFact)
    return fact


def test_no_backup_anywhere(tmp_path: Path) -> None:
    fact = _collect(tmp_path)
    assert len(fact.backups) == 0
    # Every plain default was looked at; Wine patterns expand to nothing without a prefix.
    plain = [rel for _, rel in LINUX if "*" not in rel]
    assert fact.locations_checked == len(plain) == 5


def test_plain_sqlite_backup_is_not_encrypted(tmp_path: Path) -> None:
    folder = tmp_path / "Documents" / "WeChat Files" / "wxid_abc" / "Msg"
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / "MSG0.db") as conn:
        conn.execute("create table MSG (content text)")
    (folder / "old.txt").write_text("x" * 10)
    os.utime(folder / "old.txt", (1_600_000_000, 1_600_000_000))
    fact = _collect(tmp_path)
    (backup,) = fact.backups
    assert backup.app == pb.CHAT_APP_WECHAT
    assert backup.location == "~/Documents/WeChat Files"
    assert str(tmp_path) not in str(fact)
    assert backup.file_count == 2
    assert backup.total_bytes == (folder / "MSG0.db").stat().st_size + 10
    assert backup.newest_backup_at.seconds > 1_600_000_000
    assert backup.encryption == pb.ENCRYPTION_STATE_NOT_ENCRYPTED
    assert "SQLite" in backup.encryption_evidence


def test_configured_folder_with_age_files_is_encrypted(tmp_path: Path) -> None:
    archive = tmp_path / "chat-archive"
    archive.mkdir()
    # The age format's own first line (age-encryption.org/v1 spec); the rest is opaque.
    (archive / "2026-01.tar.age").write_bytes(b"age-encryption.org/v1\n-> X25519 abc\n" + bytes(64))
    fact = _collect(tmp_path, ProbeConfig(backup_folders=("~/chat-archive",)))
    (backup,) = fact.backups
    assert backup.app == pb.CHAT_APP_UNSPECIFIED and backup.location == "~/chat-archive"
    assert backup.encryption == pb.ENCRYPTION_STATE_ENCRYPTED
