"""CSV as Excel and WPS open it on a Chinese Windows: every text a row holds reads back as the
same text, never as a number Excel rounds or strips, nor as a formula it runs.

A hostname of digits ('0012345678901234567'), a group '007' or a version '2.10' came back as
12345678901234500 (shown 1.23457E+16), 7 and 2.1: Excel reads any cell that looks like a
number as one (quoting it in the CSV changes nothing), keeps 15 significant digits and drops
leading and trailing zeros. Such a text is now written `="…"`, which Excel and WPS show as
that text (the form SAP's tests of Excel's CSV import found read alike in every version and
locale; json2csv's `excelStrings`). A text that would start a formula keeps OWASP's leading
apostrophe, now also after leading spaces and for NUL (ASVS 5.0, 1.2.10) and a line feed.
Numbers (ints, floats) stay numbers; JSON and XLSX are unchanged (XLSX types its cells)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from devposture.agent.transport import open_channel, send_report
from devposture.collector.cli import main as collector_cli
from devposture.collector.credentials import VIEWER
from devposture.collector.render import csv_text
from devposture.collector.web.server import start_dashboard
from tests.conftest import LiveCollector, enroll_agent, make_report, running_collector
from tests.web.conftest import Fleet, fetch, login

DIGITS = "0012345678901234567"  # a hostname an asset tag or a serial number gave
# A hostname with a carriage return: the CSV left it unquoted, and Excel began a new row at it,
# whose first cell was this formula.
BROKEN = "pc-9\r=cmd|' /C calc'!A0"


@pytest.mark.parametrize(
    ("text", "written"),
    [
        # Read as numbers by Excel: kept as the text they are.
        ("007", '="007"'),
        ("1234567890123456", '="1234567890123456"'),  # 16 digits: Excel keeps 15
        ("12e45", '="12e45"'),  # a hex id of digits and one e: 1.2E+46
        ("2.10", '="2.10"'),
        ("1,234", '="1,234"'),
        ("50%", '="50%"'),
        (" 0123 ", '=" 0123 "'),
        (".5", '=".5"'),
        # Formulas: a leading apostrophe (OWASP, ASVS).
        ("=1+1", "'=1+1"),
        ("-5", "'-5"),
        ("+86 138 0013 8000", "'+86 138 0013 8000"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("\n=1+1", "'\n=1+1"),
        ("\x00=1+1", "'\x00=1+1"),
        ("  =1+1", "'  =1+1"),
        # A carriage return inside a cell: quoted, one cell (it was a new row in Excel).
        ("pc\r=1+1", "pc\r=1+1"),
        # Texts Excel keeps: as they are.
        ("01cdcdcd9a7b4e2f", "01cdcdcd9a7b4e2f"),
        ("pc-10", "pc-10"),
        ("2026-12-05T23:41:32+08:00", "2026-12-05T23:41:32+08:00"),
        ("财务部", "财务部"),
        ("1.2.3", "1.2.3"),
        ("", ""),
    ],
)
def test_a_text_reads_back_as_itself(text: str, written: str) -> None:
    rows = [{"text": text, "count": 7, "rate": 0.5, "none": None}]
    text_csv = csv_text(rows, ("text", "count", "rate", "none"))
    (line,) = list(csv.reader(io.StringIO(text_csv, newline="")))[1:]
    assert line == [written, "7", "0.5", ""]  # numbers stay numbers
    assert text_csv.count("\r\n") == 2  # a row ends where it should, and only there


def _reported(collector: LiveCollector, directory: Path, hostname: str) -> str:
    agent = enroll_agent(collector, directory, "pc")
    report = make_report(agent.enrollment.device_id)
    report.host.hostname = hostname
    with open_channel(agent.state, agent.enrollment) as channel:
        send_report(channel, report)
    return agent.enrollment.device_id


def test_a_hostname_and_a_group_of_digits_open_in_excel_as_typed(tmp_path: Path) -> None:
    """Through the real command line and the dashboard's download, on a real collector; the
    JSON and the XLSX keep the text as it is."""
    with running_collector(tmp_path / "collector") as collector:
        device = _reported(collector, tmp_path / "digits", DIGITS)
        _reported(collector, tmp_path / "broken", BROKEN)
        data = ["--data", str(collector.config.data_dir)]
        assert collector_cli(["device", "group", device, "007", *data]) == 0
        for command in (["device", "list"], ["report", "device"], ["report", "fleet"]):
            out = {fmt: tmp_path / f"{'-'.join(command)}.{fmt}" for fmt in ("csv", "json")}
            for fmt, path in out.items():
                assert collector_cli([*command, *data, "--format", fmt, "-o", str(path)]) == 0
            text = out["csv"].read_bytes().decode("utf-8-sig")  # its line ends as written
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
            files = json.loads(out["json"].read_text(encoding="utf-8"))
            assert len(rows) == len(files), command  # one row each, and no more
            if command[0] == "device" or command[1] == "device":
                assert {r["hostname"] for r in rows} == {f'="{DIGITS}"', BROKEN}, command
                assert {r["hostname"] for r in files} == {DIGITS, BROKEN}, command
            if command[0] == "device":
                groups = {r["hostname"]: r["group"] for r in rows}
                assert groups[f'="{DIGITS}"'] == '="007"', command
                assert {r["group"] for r in files} == {"007", ""}, command
        xlsx = tmp_path / "devices.xlsx"
        assert collector_cli(["device", "list", *data, "--format", "xlsx", "-o", str(xlsx)]) == 0
        sheet = load_workbook(xlsx).worksheets[0]
        assert [DIGITS, "007"] in [[row[1], row[2]] for row in sheet.iter_rows(values_only=True)]
        dashboard = start_dashboard(collector.config, "127.0.0.1", 0)
        try:
            fleet = Fleet(collector, dashboard, collector.credential("李伟", VIEWER), device,
                          device, "", [device])  # fmt: skip
            answer = fetch(fleet, "GET", "/download/devices?format=csv", cookie=login(fleet))
            rows = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"), newline="")))
            assert {(r["hostname"], r["group"]) for r in rows} == {(f'="{DIGITS}"', '="007"'),
                                                                    (BROKEN, "")}  # fmt: skip
        finally:
            dashboard.stop()
