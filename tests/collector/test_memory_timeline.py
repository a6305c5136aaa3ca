"""bench/memory_timeline.py: the collector's command runs in its process, its exit code comes
back, and the timeline's samples are read from this process's own memory (the figures
themselves depend on the machine: only their presence and sense are held)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

ROOT = Path(__file__).resolve().parents[2]


def test_a_command_runs_with_its_memory_sampled(tmp_path: Path) -> None:
    command = ["audit", "verify", str(tmp_path / "nothing.zip"), "--public-key",
               str(tmp_path / "key.pem")]  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "memory_timeline.py"), "--every", "3600", "--",
         *command],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    alone = subprocess.run([sys.executable, "-m", "devposture.collector", *command],
                           capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert alone.returncode != 0  # no such key or bundle: the command's own error
    assert run.returncode == alone.returncode
    found = re.search(r"peak RSS of the process \(ru_maxrss\): ([\d.]+) MB", run.stderr)
    assert found is not None, run.stderr
    assert 10 < float(found.group(1)) < 2000  # a Python process with the collector loaded
    # The sample taken at the end, however short the command (no tick of --every came).
    samples = re.findall(r"RSS +([\d.]+) MB +Python blocks +([\d.]+) M", run.stderr)
    assert len(samples) == 2, run.stderr  # its line, and the same again as the peak
    assert all(float(rss) > 0 and float(blocks) > 0 for rss, blocks in samples)
