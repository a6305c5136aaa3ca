"""Editing the policy file changes verdicts in a running collector, without a restart; a broken
edit is refused and the policy in force stays."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, enroll, run
from tests.gpg_files import encrypt_symmetric

RELOAD_WITHIN = 15.0


def _chat_backup_state(collector: CollectorProcess) -> str:
    rows = json.loads(
        run(COLLECTOR, "report", "device", "--data", str(collector.data), "--format", "json").stdout
    )
    (row,) = [r for r in rows if r["check"] == "chat-backup"]
    return str(row["state"])


def _wait_for_state(collector: CollectorProcess, state: str) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < RELOAD_WITHIN:
        if _chat_backup_state(collector) == state:
            return time.monotonic() - start
        time.sleep(0.3)
    return None


def _encrypted_backup_ten_days_old(folder: Path) -> None:
    gpg = shutil.which("gpg")
    if gpg is None:
        if os.environ.get("CI"):
            pytest.fail("gpg is needed (.ci/run installs gnupg)")
        pytest.skip("gpg is not installed")
    folder.mkdir()
    (folder / "chats.txt").write_text("work chats")
    encrypt_symmetric(gpg, folder.parent, folder / "chats.txt", folder / "chats.txt.gpg")
    (folder / "chats.txt").unlink()
    ten_days_ago = time.time() - 10 * 86400
    os.utime(folder / "chats.txt.gpg", (ten_days_ago, ten_days_ago))


def test_threshold_change_applies_without_restart(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    _encrypted_backup_ten_days_old(backups)
    token = tmp_path / "token"
    token.write_text(collector_process.token())
    state = tmp_path / "agent"
    assert enroll(collector_process, state, token).returncode == 0
    sent = run(AGENT, "once", "--state", str(state), "--backup-folder", str(backups))
    assert sent.returncode == 0, sent.stderr
    assert _chat_backup_state(collector_process) == "PASS"  # 10 days old, 30 allowed

    policy = collector_process.data / "policy.toml"
    original = policy.read_text()
    policy.write_text(original.replace('severity = "high"', 'severity = "loud"'))
    time.sleep(3)  # longer than the collector's polling: the broken file was seen and refused
    assert _chat_backup_state(collector_process) == "PASS"

    policy.write_text(original.replace("backup_max_age_days = 30", "backup_max_age_days = 5"))
    # A fresh failure: the policy gives chat-backup 72 grace hours before it counts as FAIL.
    took = _wait_for_state(collector_process, "GRACE")
    assert took is not None, "the new threshold was not applied"
    print(f"policy change applied after {took:.1f} s")
