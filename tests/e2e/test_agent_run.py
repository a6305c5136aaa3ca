"""`devposture-agent run` as a real process: reports at start-up (and once more under the policy
the first acknowledgement handed it), reports a new backup within a minute, and stops cleanly
and promptly on SIGTERM, also while backing off from a collector that is down."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from devposture.agent.outbox import Outbox
from devposture.v1 import devposture_pb2 as pb
from tests import warm_commands
from tests.e2e.conftest import AGENT, CollectorProcess, enrolled_state, open_store
from tests.ports import free_port

NEW_BACKUP_PROMISE = 60.0


def _wait_for_reports(data: Path, count: int, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        store = open_store(data)
        try:
            ids = store.reports.report_ids()
        finally:
            store.close()
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        time.sleep(0.2)


def _body(data: Path, report_id: str) -> pb.PostureReport:
    store = open_store(data)
    try:
        body = store.reports.report_body(report_id)
    finally:
        store.close()
    assert body is not None
    return pb.PostureReport.FromString(body)


def _openssl_mapped(pid: int) -> list[str]:
    """The system's OpenSSL libraries among what process `pid` has mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    # address, permissions, offset, device, inode, then the path (which may hold spaces, and
    # ends in " (deleted)" where the file was replaced since it was mapped).
    fields = (line.split(maxsplit=5) for line in maps)
    files = {f[5].removesuffix(" (deleted)") for f in fields if len(f) == 6}
    return sorted(f for f in files if Path(f).name.startswith(("libssl.so", "libcrypto.so")))


def test_run_reports_at_start_and_when_a_backup_appears(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    state = enrolled_state(collector_process, tmp_path)
    backups = tmp_path / "WeChat backups"
    backups.mkdir()
    warm_commands.seed(state)
    agent = subprocess.Popen(
        [AGENT, "run", "--state", str(state), "--interval", "3600", "--network-interval", "0.5",
         "--backup-settle", "0.5", "--backup-folder", str(backups)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # A fresh agent: the start-up report, then one under the configuration it was handed.
        first = _wait_for_reports(collector_process.data, 2, 60)
        assert len(first) == 2, "no start-up report, or none under the policy's configuration"
        start_up, under_policy = (_body(collector_process.data, i) for i in first)
        assert start_up.trigger == pb.COLLECTION_TRIGGER_START_UP
        assert under_policy.trigger == pb.COLLECTION_TRIGGER_POLICY_CHANGE
        assert start_up.delivery.max_bytes > 0 and start_up.delivery.pending_reports == 0
        # Having collected and delivered, the service has not loaded the system's OpenSSL
        # (agent/launch.py: 4.8 MB of its memory); gRPC's own TLS carried the reports.
        assert _openssl_mapped(agent.pid) == []
        # The folder is looked at, and is empty: no backup set in it.
        assert not [b for b in under_policy.chat_backups.backups
                    if b.location.startswith(str(backups))]  # fmt: skip
        time.sleep(1.0)
        assert len(_wait_for_reports(collector_process.data, 3, 0)) == 2, "a loop of rounds"
        written = time.monotonic()
        (backups / "wechat-backup-2026-11-24.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(58))
        after = _wait_for_reports(collector_process.data, 3, NEW_BACKUP_PROMISE)
        took = time.monotonic() - written
        assert len(after) == 3, "the new backup was not reported"
        assert took < NEW_BACKUP_PROMISE
        print(f"new backup reported after {took:.1f} s")
        latest = _body(collector_process.data, after[2])
        assert latest.trigger == pb.COLLECTION_TRIGGER_NEW_BACKUP
        archive = str(backups / "wechat-backup-2026-11-24.7z")
        (backup,) = [b for b in latest.chat_backups.backups if b.location == archive]
        assert backup.file_count == 1 and backup.HasField("newest_backup_at")
        assert backup.kind == pb.BACKUP_KIND_ARCHIVE and backup.format == "7z archive"
        time.sleep(0.5)  # waiting for the next interval now
    finally:
        asked = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        output, _ = agent.communicate(timeout=30)
    took = time.monotonic() - asked
    assert agent.returncode == 0, output
    assert "devposture agent stopped" in output
    assert took < 2.0, f"took {took:.1f} s to stop"
    assert list((state / "outbox").glob("*.report")) == []


def test_run_keeps_its_report_and_stops_promptly_while_the_collector_is_down(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    state = enrolled_state(collector_process, tmp_path)
    # The collector moves away: the agent's report port now answers nothing.
    agent_file = state / "agent.json"
    enrollment = json.loads(agent_file.read_text())
    enrollment["report_port"] = free_port()
    agent_file.write_text(json.dumps(enrollment))
    warm_commands.seed(state)
    agent = subprocess.Popen(
        [AGENT, "run", "--state", str(state), "--interval", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not list((state / "outbox").glob("*.report")):
            assert time.monotonic() < deadline and agent.poll() is None, "no report written"
            time.sleep(0.1)
        time.sleep(2.0)  # a failed delivery or two: backing off now
    finally:
        asked = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        output, _ = agent.communicate(timeout=30)
    took = time.monotonic() - asked
    assert agent.returncode == 0, output
    assert "devposture agent stopped" in output
    assert "delivery failed" in output and "trying again in" in output
    assert took < 2.0, f"took {took:.1f} s to stop"
    (kept,) = Outbox(state / "outbox").pending()
    assert kept.report.trigger == pb.COLLECTION_TRIGGER_START_UP
