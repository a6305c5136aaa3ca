"""`devposture-agent run` as a real process: reports at start-up, reports a new backup within a
minute, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from collector.store import Store
from devposture.v1 import devposture_pb2 as pb
from tests.e2e.conftest import AGENT, CollectorProcess, enroll

NEW_BACKUP_PROMISE = 60.0


def _wait_for_reports(data: Path, count: int, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        store = Store.open(data / "devposture.db")
        try:
            ids = store.report_ids()
        finally:
            store.close()
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        time.sleep(0.2)


def _body(data: Path, report_id: str) -> pb.PostureReport:
    store = Store.open(data / "devposture.db")
    try:
        body = store.report_body(report_id)
    finally:
        store.close()
    assert body is not None
    return pb.PostureReport.FromString(body)


def test_run_reports_at_start_and_when_a_backup_appears(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(collector_process.token())
    state = tmp_path / "agent"
    enrolled = enroll(collector_process, state, token)
    assert enrolled.returncode == 0, enrolled.stderr
    backups = tmp_path / "WeChat backups"
    backups.mkdir()
    agent = subprocess.Popen(
        [AGENT, "run", "--state", str(state), "--interval", "3600", "--network-interval", "0.5",
         "--backup-settle", "0.5", "--backup-folder", str(backups)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        first = _wait_for_reports(collector_process.data, 1, 60)
        assert len(first) == 1, "no start-up report"
        start_up = _body(collector_process.data, first[0])
        (before,) = [b for b in start_up.chat_backups.backups if b.location == str(backups)]
        assert before.file_count == 0
        written = time.monotonic()
        (backups / "wechat-backup-2026-11-24.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(58))
        after = _wait_for_reports(collector_process.data, 2, NEW_BACKUP_PROMISE)
        took = time.monotonic() - written
        assert len(after) == 2, "the new backup was not reported"
        assert took < NEW_BACKUP_PROMISE
        print(f"new backup reported after {took:.1f} s")
        latest = _body(collector_process.data, after[1])
        (backup,) = [b for b in latest.chat_backups.backups if b.location == str(backups)]
        assert backup.file_count == 1 and backup.HasField("newest_backup_at")
    finally:
        agent.send_signal(signal.SIGTERM)
        output, _ = agent.communicate(timeout=30)
    assert agent.returncode == 0, output
    assert "devposture agent stopped" in output
    assert list((state / "outbox").glob("*.report")) == []
