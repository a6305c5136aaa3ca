"""Every dashboard table downloads as CSV (with Excel's BOM), XLSX (read back with openpyxl)
and JSON (numbers as numbers), with the page's filters and every matching row, over HTTP
from the real dashboard of a real collector's fleet."""

from __future__ import annotations

import csv
import http.client
import io
import json
import re
from urllib.parse import urlencode

import pytest
from openpyxl import load_workbook

from devposture.collector.reports import DEVICE_COLUMNS, FAILING_COLUMNS, FLEET_COLUMNS
from tests.web.conftest import FINANCE, Fleet, fetch, login


def _download(fleet: Fleet, cookie: str | None, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", fleet.dashboard.port, timeout=60)
    try:
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


def _rows(fmt: str, body: bytes) -> list[dict[str, object]]:
    if fmt == "json":
        rows: list[dict[str, object]] = json.loads(body)
        return rows
    if fmt == "csv":
        assert body.startswith(b"\xef\xbb\xbf")  # Excel's BOM
        return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(body)).worksheets[0]
    assert sheet.freeze_panes == "A2"
    header, *lines = [[c.value for c in line] for line in sheet.iter_rows()]
    return [dict(zip(header, line, strict=True)) for line in lines]  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_each_table_downloads_with_every_row(fleet: Fleet, fmt: str) -> None:
    cookie = login(fleet)
    media = {"csv": "text/csv", "xlsx": "spreadsheetml", "json": "application/json"}[fmt]
    for table, query, columns, count in (
        ("fleet", {}, FLEET_COLUMNS, 6),
        ("failing", {}, FAILING_COLUMNS, 1),
        ("devices", {}, None, len(fleet.all_devices)),  # every page's devices, not 50
        ("device", {"device": fleet.failing_device}, DEVICE_COLUMNS, 6),
        ("history", {"device": fleet.failing_device}, None, None),
    ):
        status, headers, body = _download(
            fleet, cookie, f"/download/{table}?{urlencode(query | {'format': fmt})}"
        )
        assert status == 200, (table, body[:200])
        assert media in headers["content-type"]
        assert re.fullmatch(rf'attachment; filename="devposture-{table}-[0-9-]+\.{fmt}"',
                            headers["content-disposition"])  # fmt: skip
        rows = _rows(fmt, body)
        assert rows, table
        if columns is not None:
            assert list(rows[0]) == list(columns)
        if count is not None:
            assert len(rows) == count, table
    fleet_rows = _rows(fmt, _download(fleet, cookie, f"/download/fleet?format={fmt}")[2])
    wifi = next(r for r in fleet_rows if r["check"] == "public-wifi")
    if fmt != "csv":  # CSV has no types; JSON and XLSX keep numbers as numbers
        assert isinstance(wifi["devices"], int) and isinstance(wifi["pass_rate_percent"], float)
    assert wifi["clause"] == "6.3.2" and wifi["clause_text_zh"]


def test_a_download_keeps_the_page_s_filters(fleet: Fleet) -> None:
    cookie = login(fleet)
    query = urlencode({"check": "public-wifi", "state": "FAIL", "format": "json", "page": "2"})
    _, _, body = _download(fleet, cookie, f"/download/devices?{query}")
    assert [r["device"] for r in json.loads(body)] == [fleet.failing_device]
    query = urlencode({"group": FINANCE, "format": "json"})
    _, _, body = _download(fleet, cookie, f"/download/fleet?{query}")
    assert {r["devices"] for r in json.loads(body)} == {2}  # the group's two devices


def test_every_table_has_its_download_links(fleet: Fleet) -> None:
    cookie = login(fleet)
    pages = {"/": ["fleet"], "/devices?state=FAIL": ["devices"], "/failing": ["failing"],
             f"/devices/{fleet.failing_device}": ["device", "history"]}  # fmt: skip
    for path, tables in pages.items():
        html = fetch(fleet, "GET", path, cookie=cookie).text
        for table in tables:
            links = re.findall(rf'href="(/download/{table}\?[^"]+)"', html)
            assert len(links) == 3, (path, table)
            assert {re.search(r"format=(\w+)", link).group(1) for link in links} == {  # type: ignore[union-attr]
                "csv", "xlsx", "json",
            }  # fmt: skip
    devices = fetch(fleet, "GET", "/devices?state=FAIL&page=1&lang=en", cookie=cookie).text
    assert "/download/devices?state=FAIL&amp;format=csv" in devices  # not the page or language


def test_downloads_need_a_session_and_a_known_table(fleet: Fleet) -> None:
    status, headers, _ = _download(fleet, None, "/download/fleet?format=csv")
    assert status == 303 and headers["location"].startswith("/login?next=")
    cookie = login(fleet)
    assert _download(fleet, cookie, "/download/credentials?format=csv")[0] == 404
    assert _download(fleet, cookie, "/download/fleet?format=exe")[0] == 404


@pytest.mark.parametrize(("lang", "words"), [("zh", "公共无线网络"), ("en", "public Wi-Fi")])
def test_downloads_word_the_reasons_in_the_page_s_language(
    fleet: Fleet, lang: str, words: str
) -> None:
    """Failing longest's file carries the reason in words as `report failing` writes it: its
    `reason_text` column was empty. And every file's words follow the dashboard's language:
    a reader of the English page got the device's reasons and evidence in Chinese."""
    cookie = login(fleet)
    _download(fleet, cookie, f"/?lang={lang}")  # the switch, remembered by the session
    _, _, body = _download(fleet, cookie, "/download/failing?format=json")
    (longest,) = json.loads(body)
    assert longest["reason"] and words in longest["reason_text"]
    query = urlencode({"device": fleet.failing_device, "format": "json"})
    for table in ("device", "history"):
        rows = json.loads(_download(fleet, cookie, f"/download/{table}?{query}")[2])
        failing = [r for r in rows if r["check"] == "public-wifi" and r["state"] != "PASS"]
        assert failing and all(words in r["reason_text"] for r in failing), table
    rows = json.loads(_download(fleet, cookie, f"/download/device?{query}")[2])
    evidence = {"zh": "报告采集于 ", "en": "report collected "}[lang]
    assert all(str(r["evidence"]).startswith(evidence) for r in rows if r["evidence"])
