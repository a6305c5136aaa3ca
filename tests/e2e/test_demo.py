"""`make demo`, run as a new user would: one row per check, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from devposture.policy.checks import CHECKS

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_one_verdict_per_check_and_cleans_up(tmp_path: Path) -> None:
    # An agent installed on the developer's machine publishes its status (for every user)
    # where its settings say: the demo's agent must never write there. (It published into
    # /run/devposture-agent, over a real agent's copy, and left it behind.)
    installed = tmp_path / "installed-agent-status"
    installed.mkdir(mode=0o755)
    work = tmp_path / "tmp"
    work.mkdir()
    env = {**os.environ, "TMPDIR": str(work), "DEVPOSTURE_AGENT_PUBLIC_FOLDER": str(installed)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    device = done.stdout.split("==> This machine, check by check", 1)[1].split("==>", 1)[0]
    lines = [line for line in device.splitlines() if line and not line.startswith("$")]
    header = lines[0].split()
    assert header[:8] == [
        "DEVICE",
        "HOSTNAME",
        "OS",
        "CLAUSE",
        "CHECK",
        "VERDICT",
        "STATE",
        "SINCE",
    ]
    rows = lines[1:]
    assert [row.split()[4] for row in rows] == [c.check_id for c in CHECKS]
    for row in rows:
        verdict, state = row.split()[5:7]
        assert verdict in {"PASS", "FAIL", "UNKNOWN"}, row
        assert state in {"PASS", "FAIL", "GRACE", "UNKNOWN"}, row
        assert len(row.split()) > 9, f"no reason given: {row}"
    fleet = done.stdout.split("==> Fleet compliance table", 1)[1].split("==>", 1)[0]
    fleet_lines = [line for line in fleet.splitlines() if line and not line.startswith("$")]
    assert fleet_lines[0].split()[:4] == ["CLAUSE", "CHECK", "DEVICES", "PASS"]
    assert [line.split()[1] for line in fleet_lines[1:]] == [c.check_id for c in CHECKS]
    assert all(line.split()[2] == "1" for line in fleet_lines[1:])
    assert "collector stopped (exit 0)" in done.stdout
    # No process and no file left behind.
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(work) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
    assert list(work.iterdir()) == []
    assert list(installed.iterdir()) == []
