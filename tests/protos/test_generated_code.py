"""The checked-in generated modules must be exactly what `make protos` produces now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_modules_are_not_stale(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    written = [Path(line) for line in done.stdout.split()]
    assert len(written) == 8
    stale = [
        str(path.relative_to(tmp_path))
        for path in written
        if path.read_bytes() != (ROOT / "protos" / path.relative_to(tmp_path)).read_bytes()
    ]
    assert stale == [], f"generated code is stale, run `make protos`: {stale}"
