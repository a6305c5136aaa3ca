"""bench/format5_floor.py on a small fleet: both formats made from the same reports, every
format-5 report's fact set found by the verifier's replay and every format-4 body matching
its record (the script asserts both as it measures), and the figures printed."""

from __future__ import annotations

import pytest

from bench import format5_floor

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def test_the_floor_runs_both_formats_on_the_bench_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    assert format5_floor.main(["--devices", "30", "--days", "1", "--every", "1"]) == 0
    out = capsys.readouterr().out
    assert "720 reports" in out and "distinct fact sets" in out
    for phase in ("ingest", "export", "deflate", "verify"):
        assert phase in out
