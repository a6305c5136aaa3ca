"""Real freshclam, real log, real lock: the updater's state as the agent reads it.

freshclam runs with a configuration of its own in a temporary folder (its database folder,
its log), pointed at a private mirror on a closed local port, so it fails at once and the
same way with or without internet, and the machine's ClamAV is never touched. No daemon is
started. `.ci/run` installs Debian's clamav; without freshclam the tests skip, saying why.
The host layer's `read_tail` is tested live and through a diagnostic bundle here too.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devposture.agent.host import LiveHost, SourceMissingError
from devposture.agent.host.bundle import BundleHost, RecordingHost
from devposture.agent.parsers.freshclam import FAILED, LOCKED, parse_update_log
from devposture.agent.probes import ProbeConfig
from devposture.policy.checks import State, evaluate
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb


def _freshclam() -> str:
    path = shutil.which("freshclam")
    if path is None:
        message = "freshclam is not installed here (.ci/run installs Debian's clamav)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _config(folder: Path) -> Path:
    (folder / "db").mkdir()
    config = folder / "freshclam.conf"
    config.write_text(
        f"DatabaseOwner {getpass.getuser()}\n"
        f"DatabaseDirectory {folder / 'db'}\n"
        f"UpdateLogFile {folder / 'freshclam.log'}\n"
        "LogTime yes\n"
        "MaxAttempts 1\n"
        "ConnectTimeout 5\n"
        "PrivateMirror http://127.0.0.1:9\n"  # the discard port: nothing listens
    )
    return config


def _run(freshclam: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [freshclam, f"--config-file={config}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )


def test_a_real_failed_update_read_from_the_end_of_its_log(tmp_path: Path) -> None:
    freshclam = _freshclam()
    config = _config(tmp_path)
    before = datetime.now(UTC).replace(microsecond=0)
    result = _run(freshclam, config)
    after = datetime.now(UTC)
    assert result.returncode != 0, result.stdout
    data = LiveHost().read_tail(str(tmp_path / "freshclam.log"), 64 * 1024)
    state = parse_update_log(data.decode(), datetime.now().astimezone().tzinfo)
    assert state is not None and state.outcome == FAILED
    assert state.detail.startswith("Database update process failed")
    assert state.attempted_at is not None and before <= state.attempted_at <= after
    assert state.succeeded_at is None
    # What the collector makes of it: no signature date and no success is never a PASS.
    report = pb.PostureReport()
    product = report.antivirus.products.add(
        name="ClamAV", source="clamav-db", enabled=True, real_time_protection=True
    )
    product.signature_update.outcome = state.outcome
    product.signature_update.detail = state.detail
    verdict = {c.check_id: v for c, v in evaluate(report, after)}["antivirus"]
    assert verdict.state is State.UNKNOWN
    assert "last signature update failed" in render(verdict.reason, "en", UTC)


def test_a_real_freshclam_refused_by_a_held_lock(tmp_path: Path) -> None:
    freshclam = _freshclam()
    config = _config(tmp_path)
    log = tmp_path / "freshclam.log"
    with log.open("a") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running freshclam holds
        result = _run(freshclam, config)
    assert result.returncode != 0
    state = parse_update_log(result.stdout + result.stderr, UTC)
    assert state is not None and state.outcome == LOCKED, result.stdout + result.stderr
    assert "Failed to lock the log file" in state.detail
    assert log.read_bytes() == b""  # a refused freshclam writes nothing into the log


def test_read_tail_live_and_replayed_from_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(b"first line\nsecond line\nthird line\n")
    live = LiveHost()
    assert live.read_tail(str(path), 11) == b"third line\n"
    assert live.read_tail(str(path), 4096) == path.read_bytes()
    assert live.read_tail(str(path), 0) == b""
    with pytest.raises(SourceMissingError):
        live.read_tail(str(tmp_path / "absent.log"), 10)
    recording = RecordingHost(live)
    assert recording.read_tail(str(path), 11) == b"third line\n"
    with pytest.raises(SourceMissingError):
        recording.read_tail(str(tmp_path / "absent.log"), 10)
    replay = BundleHost(recording.bundle("test", ProbeConfig()))
    path.write_bytes(b"changed since\n")  # the replay answers from the recording
    assert replay.read_tail(str(path), 11) == b"third line\n"
    with pytest.raises(SourceMissingError):
        replay.read_tail(str(tmp_path / "absent.log"), 10)
