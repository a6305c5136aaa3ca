"""The command line's tables head their columns in the reader's language: `--lang`, else the
locale as gettext reads it, English (the column names) when none is set. The files keep the
names: programs read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devposture.collector import column_words, reports
from devposture.collector.admin import commands
from devposture.collector.cli import main as collector_cli
from devposture.collector.datadir import initialize
from devposture.collector.render import headed, render
from tests.collector.cli_fleet import DEVICES, CliFleet, cli_fleet  # noqa: F401
from tests.databases import collector_database


def test_every_column_a_command_shows_has_a_heading_in_the_catalogs() -> None:
    shown = {"fingerprint"}  # `audit public-key`'s, the one not in a constant
    for module in (commands, reports):
        for name in dir(module):
            value = getattr(module, name)
            if name.endswith("_COLUMNS") and isinstance(value, tuple):
                shown |= set(value)
    assert shown <= set(column_words.COLUMNS)
    headings = {column_words.heading(c, "zh") for c in column_words.COLUMNS}
    assert len(headings) == len(column_words.COLUMNS)  # no two columns read alike
    assert not {c.upper() for c in column_words.COLUMNS} & headings  # every one translated


@pytest.mark.parametrize(
    ("environ", "chosen", "lang"),
    [
        ({"LANG": "zh_CN.UTF-8"}, None, "zh"),
        ({"LANG": "C.UTF-8"}, None, "en"),
        ({"LANGUAGE": "zh_CN:en", "LANG": "en_US.UTF-8"}, None, "zh"),
        ({}, None, "en"),  # nothing set: the names, as scripts and older versions read them
        ({"LANG": "zh_CN.UTF-8"}, "en", "en"),  # --lang wins
        ({"LANG": "C"}, "zh", "zh"),
    ],
)
def test_the_language_is_the_option_then_the_locale(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], chosen: str | None, lang: str
) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert column_words.table_language(chosen) == lang


def test_a_table_is_headed_in_chinese_and_its_files_keep_the_names() -> None:
    rows = [{"device": "abc", "hostname": "笔记本-1", "failing_since": "2026-12-01", "days": 2}]
    columns = ("device", "hostname", "failing_since", "days")
    with headed("zh"):
        table = render(rows, columns, "table").splitlines()
        assert json.loads(render(rows, columns, "json")) == rows
        csv_header = render(rows, columns, "csv").splitlines()[0]
        assert csv_header == "\ufeffdevice,hostname,failing_since,days"
    assert table[0].split() == ["设备", "主机名", "失败起始", "天数"]
    assert render(rows, columns, "table").splitlines()[0].split() == [
        "DEVICE", "HOSTNAME", "FAILING_SINCE", "DAYS"]  # fmt: skip


def test_the_command_line_heads_its_tables_by_the_locale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    data = ["--data", str(config.data_dir)]
    assert collector_cli(["token", "create", *data, "--group", "财务部"]) == 0
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    capsys.readouterr()
    assert collector_cli(["token", "list", *data]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[:3] == ["令牌", "分组", "创建时间"]
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert collector_cli(["token", "list", *data]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:3] == ["TOKEN", "GROUP", "CREATED"]


def test_a_waiver_s_reason_is_headed_as_a_reason_not_a_code() -> None:
    """`waiver list` is the one table showing `reason` itself (the reports show `reason_text`
    instead): a person's words ("出差期间使用4G热点"), which the Chinese heading called 原因代码
    (reason code)."""
    rows = [{"waiver": "w-1", "owner": "李伟", "reason": "出差期间使用4G热点"}]
    with headed("zh"):
        table = render(rows, commands.WAIVER_COLUMNS, "table").splitlines()
    assert "理由" in table[0].split() and "原因代码" not in table[0]


def test_device_show_names_its_fields_in_the_reader_s_language(
    cli_fleet: CliFleet,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`device show` in Chinese named every field by its English column name (hostname,
    last_report, certificate_expires …) while `device list` above it was headed in Chinese."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    data = ["--data", str(cli_fleet.data)]
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    capsys.readouterr()
    assert collector_cli(["device", "show", DEVICES[0][0], *data]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[:3]]
    assert names == ["设备", "主机名", "分组"]
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert collector_cli(["device", "show", DEVICES[0][0], *data]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[:3]]
    assert names == ["device", "hostname", "group"]  # as before, for English readers
