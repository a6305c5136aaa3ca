"""Issue 4's scenario, with a real collector process and a real agent: a device passes, starts
failing (within grace, then FAIL), gets a waiver (EXEMPT), the waiver expires (FAIL again), the
device is fixed (PASS); the fleet as of a moment in the middle shows that moment; a device that
stops reporting becomes STALE.

The agent reports this machine live; the chat-backup check is steered through a backup folder
the test controls (a real gpg-encrypted backup; a real plain SQLite database beside it).
Time is data here: what happens after the grace period, after the waiver's expiry or after
48 silent hours is read `--as-of` that moment, never waited for, so the scenario holds on a
machine as slow as it may be.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, enroll, run, serving_collector
from tests.gpg_files import encrypt_symmetric

HOUR = dt.timedelta(hours=1)


def _standing(c: CollectorProcess, at: dt.datetime | None = None) -> dict[str, str]:
    argv = [COLLECTOR, "report", "device", "--data", str(c.data), "--format", "json", "--lang",
            "en"]  # fmt: skip
    if at is not None:
        argv += ["--as-of", at.isoformat()]
    done = run(*argv)
    assert done.returncode == 0, done.stderr
    (row,) = [r for r in json.loads(done.stdout) if r["check"] == "chat-backup"]
    return {"state": row["state"], "verdict": row["verdict"], "reason": row["reason_text"]}


def _fleet(c: CollectorProcess, at: dt.datetime) -> dict[str, int]:
    done = run(COLLECTOR, "report", "fleet", "--data", str(c.data), "--format", "json",
               "--as-of", at.isoformat())  # fmt: skip
    (row,) = [r for r in json.loads(done.stdout) if r["check"] == "chat-backup"]
    return {k: row[k] for k in ("pass", "grace", "fail", "exempt", "stale")}


def _gpg_backup(folder: Path) -> None:
    gpg = shutil.which("gpg")
    if gpg is None:
        if os.environ.get("CI"):
            pytest.fail("gpg is needed (.ci/run installs gnupg)")
        pytest.skip("gpg is not installed")
    (folder / "chats.txt").write_text("work chats")
    encrypt_symmetric(gpg, folder.parent, folder / "chats.txt", folder / "chats.txt.gpg")
    (folder / "chats.txt").unlink()


def _one_hour_of_grace(data: Path) -> None:
    """This company gives chat backups one hour of grace (read by the collector at start)."""
    policy = data / "policy.toml"
    text = policy.read_text()
    at_chat = text.index('id = "chat-backup"')
    policy.write_text(
        text[:at_chat] + text[at_chat:].replace("grace_hours = 72", "grace_hours = 1", 1)
    )


def test_pass_grace_fail_waiver_expiry_fix_as_of_and_stale(tmp_path: Path) -> None:
    with serving_collector(tmp_path, _one_hour_of_grace) as c:
        _scenario(c, tmp_path)


def _scenario(c: CollectorProcess, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    _gpg_backup(backups)
    token = tmp_path / "token"
    token.write_text(c.token())
    state = tmp_path / "agent"
    assert enroll(c, state, token).returncode == 0

    def report() -> None:
        sent = run(AGENT, "once", "--state", str(state), "--backup-folder", str(backups))
        assert sent.returncode == 0, sent.stderr

    report()
    assert _standing(c)["state"] == "PASS"

    # A plain, unencrypted database appears beside the backup: a fresh failure.
    with sqlite3.connect(backups / "MSG0.db") as db:
        db.execute("create table MSG (content text)")
    report()
    failing_since = dt.datetime.now(dt.UTC)
    now = _standing(c)
    assert now["verdict"] == "FAIL" and now["state"] == "GRACE"
    assert "within grace until" in now["reason"] and "not encrypted" in now["reason"]
    assert _standing(c, failing_since + 2 * HOUR)["state"] == "FAIL"  # once grace has run out

    # IT grants a waiver for a day; as of after its expiry, the device fails again by itself.
    device = json.loads(run(COLLECTOR, "report", "device", "--data", str(c.data),
                            "--format", "json").stdout)[0]["device"]  # fmt: skip
    expires = dt.datetime.now(dt.UTC) + 24 * HOUR
    added = run(COLLECTOR, "waiver", "add", "--data", str(c.data), "--device", device,
                "--check", "chat-backup", "--owner", "IT", "--reason", "encrypting this week",
                "--expires", expires.isoformat())  # fmt: skip
    assert added.returncode == 0, added.stderr
    waiver_id = _waiver_id(c)
    waived_at = dt.datetime.now(dt.UTC)
    assert _standing(c)["state"] == "EXEMPT"
    assert _standing(c, expires - HOUR)["state"] == "EXEMPT"
    assert _standing(c, expires + HOUR)["state"] == "FAIL"  # expired: fails again

    # The employee removes the plain copy: fixed; IT ends the waiver early.
    (backups / "MSG0.db").unlink()
    report()
    # A moment while the waiver was surely in force: after `waiver add` returned, before
    # `waiver revoke` started (not a fixed second later, which a fast machine outruns).
    while_waived = waived_at + (dt.datetime.now(dt.UTC) - waived_at) / 2
    revoked = run(COLLECTOR, "waiver", "revoke", waiver_id, "--data", str(c.data),
                  "--reason", "fixed")  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    assert _standing(c)["state"] == "PASS"

    # The fleet as it stood while the waiver was active, and while still in grace.
    assert _fleet(c, while_waived)["exempt"] == 1
    assert _fleet(c, failing_since)["grace"] == 1  # stored just before, waiver not yet made
    # Since when it failed and how long the fix took, and the waiver's audit trail.
    history = json.loads(run(COLLECTOR, "report", "history", device, "--data", str(c.data),
                             "--format", "json").stdout)  # fmt: skip
    backup_states = [
        (h["state"], h["until"] == "now") for h in history if h["check"] == "chat-backup"
    ]
    assert backup_states == [("PASS", False), ("FAIL", False), ("PASS", True)]
    log = run(COLLECTOR, "waiver", "list", "--log", "--data", str(c.data), "--format", "csv")
    assert ",add," in log.stdout and "encrypting this week" in log.stdout
    assert ",revoke," in log.stdout
    # A device that stops reporting becomes STALE.
    stale = _standing(c, dt.datetime.now(dt.UTC) + 49 * HOUR)
    assert stale["state"] == "STALE" and "silent for more than 48 h" in stale["reason"]


def _waiver_id(c: CollectorProcess) -> str:
    listed = run(COLLECTOR, "waiver", "list", "--data", str(c.data), "--format", "json")
    (waiver,) = json.loads(listed.stdout)
    return str(waiver["waiver"])
