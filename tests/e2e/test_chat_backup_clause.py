"""Clause 6.2.1 end to end, with a real collector process and the real agent CLI.

The agent scans a home folder the test controls (HOME): WeChat's live databases (made by
sqlcipher, laid out as WeChat 4.x for Linux and WeChat 3.x under Wine keep them), then an app
backup set, a 7z archive and a ZIP archive made by the real tools. File times are set relative
to now (40 days against the policy's 30): no test here races the clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests import warm_commands
from tests.agent.test_probes_backups import sqlcipher_db, tool
from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, enrolled_state, run

DAY = 86_400


def _age(path: Path, days: float) -> Path:
    when = time.time() - days * DAY
    os.utime(path, (when, when))
    return path


def _encrypted(path: Path) -> Path:
    """An AES-256 file from OpenSSL, standing in for the app's own encrypted backup files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([tool("openssl"), "enc", "-aes-256-cbc", "-pbkdf2", "-pass", "pass:k",
                    "-out", str(path)], input=os.urandom(2048), check=True)  # fmt: skip
    return path


def _verdict(c: CollectorProcess) -> dict[str, str]:
    done = run(COLLECTOR, "report", "device", "--data", str(c.data), "--format", "json",
               "--lang", "en")  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = [r for r in json.loads(done.stdout) if r["check"] == "chat-backup"]
    return {"verdict": row["verdict"], "reason": row["reason_text"]}


def test_live_data_old_backup_fresh_backup_plain_backup(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    state = enrolled_state(c, tmp_path)
    home = tmp_path / "home"
    archive = home / "微信备份"
    archive.mkdir(parents=True)
    env = {**os.environ, "HOME": str(home)}

    def once() -> dict[str, str]:
        warm_commands.seed(state)
        sent = subprocess.run(
            [AGENT, "once", "--state", str(state), "--backup-folder", "~/微信备份"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        return _verdict(c)

    # WeChat installed and used, no backup ever made: its live databases are no backup.
    sqlcipher_db(home / "Documents/xwechat_files/wxid_e2e1_9a8b/db_storage/message/message_0.db")
    wine_account = home / ".wine/drive_c/users/u/Documents/WeChat Files/wxid_e2e2"
    sqlcipher_db(wine_account / "Msg" / "MicroMsg.db")
    sqlcipher_db(wine_account / "Msg" / "Multi" / "MSG0.db")
    now = once()
    assert now["verdict"] == "FAIL", now
    assert "no WeChat or WeCom backup found" in now["reason"]
    assert "2 accounts found, not a backup" in now["reason"]

    # A 40-day-old app backup beside the live databases: judged by its own age.
    backup_set = wine_account / "BackupFiles" / "android_5e1f"
    for name in ("Backup.db", "BAK_0_TEXT", "BAK_0_MEDIA"):
        _age(_encrypted(backup_set / name), 40)
    now = once()
    assert now["verdict"] == "FAIL", now
    assert "BackupFiles/android_5e1f" in now["reason"] and "older than 30 days" in now["reason"]

    # A fresh 7z archive with a password, made by 7-Zip in the policy's folder: PASS.
    (archive / "chats.txt").write_text("工作聊天记录", encoding="utf-8")
    subprocess.run([tool("7z"), "a", "-pS3cret", "-mhe=on", "2026-12.7z", "chats.txt"],
                   cwd=archive, check=True, capture_output=True)  # fmt: skip
    (archive / "chats.txt").unlink()
    now = once()
    assert now["verdict"] == "PASS", now
    assert "~/微信备份/2026-12.7z" in now["reason"] and "AES-256" in now["reason"]

    # A plain ZIP beside it: not kept safe, whatever else exists. The evidence names the volume.
    (archive / "export.txt").write_text("客户沟通记录", encoding="utf-8")
    subprocess.run([tool("zip"), "-q", "export.zip", "export.txt"], cwd=archive, check=True)
    (archive / "export.txt").unlink()
    now = once()
    assert now["verdict"] == "FAIL", now
    assert "plain backup ~/微信备份/export.zip" in now["reason"]
    assert "ZIP archive without encryption" in now["reason"] and "volume" in now["reason"]

    # The employee deletes the plain ZIP and the 7z, and makes a new backup in WeChat: PASS.
    (archive / "export.zip").unlink()
    (archive / "2026-12.7z").unlink()
    _encrypted(backup_set / "BAK_1_TEXT")
    now = once()
    assert now["verdict"] == "PASS", now
    assert "WeChat Files/wxid_e2e2/BackupFiles/android_5e1f" in now["reason"]
