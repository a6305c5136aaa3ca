"""`devposture-collector backup` of a collector that is taking reports, and the copy put back
in place of the data folder: it serves, and its evidence answers to its tables."""

from __future__ import annotations

import json
import shutil
import stat
import threading
from pathlib import Path

from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, enrolled_state, run


def test_a_backup_taken_while_reports_arrive_is_a_data_folder_to_restore(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    states = [enrolled_state(collector_process, tmp_path, f"agent-{n}") for n in range(2)]
    stop = threading.Event()
    sent: list[int] = []

    def report(state: Path) -> None:  # agents keep reporting while the backup runs
        while not stop.is_set():
            done = run(AGENT, "once", "--state", str(state))
            assert done.returncode == 0, done.stderr
            sent.append(1)

    agents = [threading.Thread(target=report, args=(state,)) for state in states]
    for agent in agents:
        agent.start()
    try:
        copy = tmp_path / "backup"
        # A remote export's bundle being streamed (or left by a killed collector) is report
        # bodies, not the site's state: not copied.
        streaming = collector_process.data / "export-4kq1z8"
        streaming.mkdir(mode=0o700)
        (streaming / "bundle.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 1024)
        taken = run(COLLECTOR, "backup", "--data", str(collector_process.data), "--out",
                    str(copy))  # fmt: skip
    finally:
        stop.set()
        for agent in agents:
            agent.join(120)
    assert taken.returncode == 0, taken.stderr
    assert "one consistent copy taken while the collector served" in taken.stdout
    assert (copy / "devposture.db").is_file() and not (copy / "collector.lock").exists()
    assert not list(copy.glob("export-*"))
    for key in ("ca/ca.key", "evidence-signing.key", "network-hash.key"):
        assert stat.S_IMODE((copy / key).stat().st_mode) & 0o077 == 0, key  # still private
    again = run(COLLECTOR, "backup", "--data", str(collector_process.data), "--out", str(copy))
    assert again.returncode == 1 and "exists already: give a new folder" in again.stderr

    # Put back in place of a lost data folder: the copy is a data folder on its own.
    restored = tmp_path / "restored"
    shutil.copytree(copy, restored)
    checked = run(COLLECTOR, "audit", "check", "--data", str(restored))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    devices = json.loads(run(COLLECTOR, "report", "device", "--data", str(restored),
                             "--format", "json").stdout)  # fmt: skip
    assert len({row["device"] for row in devices}) == len(states)
    assert sent  # reports were arriving while it was taken
