"""Tables that fit the terminal (cut by display width, Chinese counted twice; `--wide` for
everything; whole when piped) and `--limit`, with the real CLI on a real pseudo-terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devposture.collector.cli import main as collector_cli
from devposture.collector.render import fitting, render
from devposture.collector.table_fit import cut, display_width
from tests.collector.cli_fleet import DEVICES, REASON, CliFleet, cli_fleet
from tests.collector.on_terminal import run_on_terminal

__all__ = ["cli_fleet"]  # the fixture
COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")


def test_cells_are_cut_by_display_width() -> None:
    assert display_width("防火墙off") == 9
    assert cut("防火墙未开启", 7) == "防火墙…"  # 6 columns of text and the ellipsis
    assert cut("防火墙未开启", 8) == "防火墙…"  # a fourth character would need 2 more
    assert cut("firewall", 8) == "firewall"
    assert display_width(cut(REASON, 30)) <= 30


def test_a_fitted_table_never_passes_the_width() -> None:
    rows = [{"device": d, "hostname": h, "reason": REASON} for d, h in DEVICES]
    columns = ("device", "hostname", "reason")
    with fitting(60):
        fitted = render(rows, columns, "table").splitlines()
    assert all(display_width(line) <= 60 for line in fitted)
    assert any(line.endswith("…") for line in fitted[1:])
    whole = render(rows, columns, "table").splitlines()  # outside `fitting`: as wide as needed
    assert all(REASON in line for line in whole[1:])


def test_report_failing_fits_an_80_column_terminal(cli_fleet: CliFleet) -> None:
    argv = [COLLECTOR, "report", "failing", "--data", str(cli_fleet.data)]
    shown = run_on_terminal(argv, columns=80)
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert len(lines) == 1 + len(DEVICES)
    assert all(display_width(line) <= 80 for line in lines), lines
    assert "…" in shown.out and REASON not in shown.out
    wide = run_on_terminal([*argv, "--wide"], columns=80)
    assert wide.code == 0 and REASON in wide.out
    assert max(display_width(line) for line in wide.out.splitlines()) > 80
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert piped.returncode == 0 and REASON in piped.stdout  # a script gets every cell whole
    assert "财务部-笔记本-王芳" in run_on_terminal(argv, columns=200).out


def test_limit_shows_the_first_rows_and_says_how_many_more(
    cli_fleet: CliFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(cli_fleet.data)
    assert collector_cli(["report", "failing", "--data", data, "--limit", "1"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2  # the header and one row
    assert "2 more rows not shown (3 in all)" in err
    assert collector_cli(["report", "failing", "--data", data, "--limit", "1",
                          "--lang", "zh"]) == 0  # fmt: skip
    assert "另有 2 行未显示（共 3 行）" in capsys.readouterr().err
    assert collector_cli(["report", "device", "--data", data, "--limit", "2",
                          "--format", "json"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 2 and "16 more rows not shown (18 in all)" in err
    # One row left out is one row, in English; Chinese counts it the same way.
    assert collector_cli(["report", "failing", "--data", data, "--limit", "2"]) == 0
    assert "… 1 more row not shown (3 in all)" in capsys.readouterr().err
    assert collector_cli(["report", "failing", "--data", data, "--limit", "2",
                          "--lang", "zh"]) == 0  # fmt: skip
    assert "另有 1 行未显示（共 3 行）" in capsys.readouterr().err
    assert collector_cli(["device", "list", "--data", data, "--limit", "3"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 4 and "not shown" not in err  # all there: nothing to say
    with pytest.raises(SystemExit):
        collector_cli(["report", "failing", "--data", data, "--limit", "0"])
    assert "1 or more" in capsys.readouterr().err
