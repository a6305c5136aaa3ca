"""The admin command line as IT and an auditor use it, in Chinese and in English, on a real
collector (its data folder, and its admin port over real TLS): what a person's table words,
what the files scripts read keep, and a remote command printing what the local one prints."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector import company_time
from devposture.collector.admin.commands import Actor, Denied, Runner
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, VIEWER
from devposture.policy import catalogs, cli_messages
from tests.collector.cli_fleet import DEVICES, CliFleet, cli_fleet  # noqa: F401
from tests.collector.test_admin import AdminCollector, admin_collector
from tests.conftest import enroll_agent
from tests.databases import init_arguments

MARK = "〔{}〕"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[AdminCollector]:
    with admin_collector(tmp_path / "collector") as running:
        yield running


def _in(monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", lang)


@pytest.fixture
def marked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line's Chinese sentences as their English in brackets: a cell worded for
    the reader shows so, whether or not the catalogs have its Chinese yet; a code left as it
    is shows bare."""
    real = catalogs.translate

    def translate(lang: catalogs.Lang, context: str, english: str) -> str:
        if lang == "zh" and context == cli_messages.CONTEXT:
            return MARK.format(english)
        return real(lang, context, english)

    monkeypatch.setattr(cli_messages, "translate", translate)


def _listings(collector: AdminCollector, tmp_path: Path) -> None:
    """A waiver in force and one revoked, a token usable and one revoked, a credential revoked,
    and an audit log with an entry denied and one in error."""
    device = enroll_agent(collector.live, tmp_path / "agent", hostname="laptop-1")
    store = collector.store()
    try:
        runner = Runner(store, collector.live.config)
        admin = Actor("Zhang Wei (IT)", ADMIN, "0123456789abcdef")
        expires = (utcnow() + dt.timedelta(days=30)).date().isoformat()
        for check in ("firewall", "antivirus"):
            runner.run(["waiver", "add"], {"device": device.enrollment.device_id, "check": check,
                                           "owner": "张伟", "reason": "等待新电脑",
                                           "expires": expires}, admin, peer="local",
                       remote=False)  # fmt: skip
        waiver = store.waivers.recorded()[-1].waiver_id
        runner.run(["waiver", "revoke"], {"waiver_id": waiver, "reason": "已修好"}, admin,
                   peer="local", remote=False)  # fmt: skip
        token = runner.run(["token", "create"], {}, admin, peer="local", remote=False)
        runner.run(["token", "create"], {}, admin, peer="local", remote=False)
        runner.run(["token", "revoke"], {"token_id": str(token.rows[0]["token"])}, admin,
                   peer="local", remote=False)  # fmt: skip
        gone = runner.run(["admin", "add"], {"name": "Former"}, admin, peer="local",
                          remote=False)  # fmt: skip
        runner.run(["admin", "revoke"], {"credential_id": str(gone.rows[0]["credential"])},
                   admin, peer="local", remote=False)  # fmt: skip
        with pytest.raises(Denied):
            runner.run(["token", "create"], {}, Actor("Li Wei", VIEWER, "fedcba9876543210"),
                       peer="local", remote=False)  # fmt: skip
    finally:
        store.close()


# (command, the codes its JSON and CSV keep, the words its Chinese table shows)
STATUSES = [
    # A waiver's own words: a revoked waiver is not a revoked token (已撤销, not 已吊销).
    (["waiver", "list", "--all"], {"active", "revoked"}, {"in force", "revoked early"}),
    (["token", "list"], {"usable", "revoked"}, {"usable", "revoked"}),
    (["audit", "log"], {"ok", "denied"}, {"ok", "denied"}),
]


@pytest.mark.usefixtures("marked")
def test_a_listings_status_is_worded_in_a_chinese_table_and_kept_as_its_code_in_files(
    collector: AdminCollector,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`waiver list`, `token list`, `admin list` and `audit log` showed their status codes
    ("active", "expired", "ok") in English in a Chinese table, where `device list` words a
    device's; scripts read the codes in JSON and CSV, which keep them in every language."""
    _listings(collector, tmp_path)
    credential = tmp_path / "credential"
    credential.write_text(collector.credential("审计 王", "auditor") + "\n")
    credential.chmod(0o600)
    local = ["--data", str(collector.live.config.data_dir)]
    remote = ["--collector", f"127.0.0.1:{collector.admin_port}", "--ca-fingerprint",
              collector.live.ca_fingerprint, "--credential-file", str(credential)]  # fmt: skip
    for command, codes, words in STATUSES:
        column = "outcome" if command[0] == "audit" else "status"
        for where in (local, remote):
            files = {}
            for lang in ("zh_CN.UTF-8", "C.UTF-8"):
                _in(monkeypatch, lang)
                assert collector_cli([*command, *where, "--format", "json"]) == 0
                rows = json.loads(capsys.readouterr().out)
                assert {row[column] for row in rows} >= codes
                files[lang] = {row[column] for row in rows}
            assert files["zh_CN.UTF-8"] == files["C.UTF-8"]
            _in(monkeypatch, "zh_CN.UTF-8")
            assert collector_cli([*command, *where]) == 0
            table = capsys.readouterr().out
            for word in words:
                assert MARK.format(word) in table, (command, where is remote, table)
            _in(monkeypatch, "C.UTF-8")
            assert collector_cli([*command, *where, "--format", "csv"]) == 0
            csv = capsys.readouterr().out
            assert all(f",{code}" in csv for code in codes), csv
    _in(monkeypatch, "zh_CN.UTF-8")
    assert collector_cli(["admin", "list", *local]) == 0
    table = capsys.readouterr().out
    assert MARK.format("active") in table and "〔revoked " in table
    assert collector_cli(["admin", "list", *local, "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert ",active\r\n" in csv and ",revoked 20" in csv
    # A role reads as the dashboard says it (管理员, 审计员) in a person's table, local or
    # remote; its code (`--role auditor`) in the files.
    for command, where in ((["admin", "list"], local), (["audit", "log"], local),
                           (["audit", "log"], remote)):  # fmt: skip
        _in(monkeypatch, "zh_CN.UTF-8")
        assert collector_cli([*command, *where]) == 0
        cells = capsys.readouterr().out.split()
        assert MARK.format("auditor") in cells and "auditor" not in cells, (command, where)
        _in(monkeypatch, "C.UTF-8")
        assert collector_cli([*command, *where, "--format", "json"]) == 0
        roles = {row["role"] for row in json.loads(capsys.readouterr().out)}
        assert "auditor" in roles and roles <= {"viewer", "auditor", "admin", "", None}


@pytest.mark.usefixtures("marked")
def test_a_state_still_going_on_reads_in_the_readers_language_in_report_history(
    cli_fleet: CliFleet,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`report history` ended a state still going on with 'now', in English in a Chinese
    table (and 'now' under `--as-of` last week, when it meant then). JSON keeps 'now'."""
    device_id = DEVICES[0][0]
    data = ["--data", str(cli_fleet.data)]
    _in(monkeypatch, "zh_CN.UTF-8")
    assert collector_cli(["report", "history", device_id, *data]) == 0
    table = capsys.readouterr().out
    assert MARK.format("ongoing") in table and "now" not in table.split()
    for lang in ("zh", "en"):
        assert collector_cli(["report", "history", device_id, *data, "--format", "json",
                          "--lang", lang]) == 0  # fmt: skip
        assert [row["until"] for row in json.loads(capsys.readouterr().out)] == ["now"]
    assert collector_cli(["report", "history", device_id, *data, "--lang", "en"]) == 0
    assert " now " in capsys.readouterr().out


def test_report_fleet_takes_lang_as_the_other_reports_do(
    cli_fleet: CliFleet,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`report fleet --lang zh` was refused ('unrecognized arguments: --lang zh', exit 2)
    while `report failing`, `device` and `history` take it: IT's script asking every report
    in Chinese stopped at the first. It heads the table in that language; its files do not
    change."""
    data = ["--data", str(cli_fleet.data)]
    _in(monkeypatch, "C.UTF-8")
    assert collector_cli(["report", "fleet", *data, "--lang", "zh"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["条款", "检查项"]
    _in(monkeypatch, "zh_CN.UTF-8")
    assert collector_cli(["report", "fleet", *data, "--lang", "en"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["CLAUSE", "CHECK"]
    files = []
    for lang in ("zh", "en"):
        assert collector_cli(["report", "fleet", *data, "--format", "csv", "--lang", lang]) == 0
        files.append(capsys.readouterr().out)
    assert files[0] == files[1]


def test_report_fleet_says_how_to_start_where_no_device_was_ever_enrolled(
    cli_fleet: CliFleet,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A new site's first `report fleet` says that no device is enrolled and how to enroll
    one, in the reader's language; a fleet's says nothing of the kind (either engine)."""
    empty = tmp_path / "new-site"
    assert collector_cli(["init", "--data", str(empty), *init_arguments()]) == 0
    capsys.readouterr()
    told = {"en": "No devices enrolled yet", "zh_CN": "还没有设备注册"}
    for lang, words in told.items():
        _in(monkeypatch, f"{lang}.UTF-8")
        assert collector_cli(["report", "fleet", "--data", str(empty)]) == 0
        captured = capsys.readouterr()
        assert words in captured.out + captured.err
        assert "devposture-collector token create" in captured.out + captured.err
        assert collector_cli(["report", "fleet", "--data", str(cli_fleet.data)]) == 0
        captured = capsys.readouterr()
        assert words not in captured.out + captured.err
        assert captured.out.strip()


def test_a_date_that_is_not_one_lists_the_forms_in_the_readers_words() -> None:
    """The forms a date may take were an English list inside the Chinese sentence
    ("请写成 2026-11-01, 2026-11-01T09:30 or 2026-11-01T09:30+08:00")."""
    with pytest.raises(company_time.NotATime) as refused:
        company_time.typed("2026/11/01", dt.timezone(dt.timedelta(hours=8)))
    chinese = refused.value.worded("zh")
    assert "2026-11-01T09:30 或 2026-11-01T09:30+08:00" in chinese and " or " not in chinese
    assert "2026-11-01T09:30 or 2026-11-01T09:30+08:00" in refused.value.worded("en")


@pytest.mark.usefixtures("marked")
def test_verdicts_and_states_are_worded_in_a_chinese_table_and_kept_as_codes_in_files(
    cli_fleet: CliFleet,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`report device` and `report history` showed PASS, FAIL, UNKNOWN as codes in a Chinese
    table, where the dashboard says 通过, 失败, 未知. A person's table words them; JSON, CSV and
    an English table keep the codes scripts compare."""
    device_id = DEVICES[0][0]
    data = ["--data", str(cli_fleet.data)]
    codes = {"PASS", "GRACE", "FAIL", "UNKNOWN", "EXEMPT", "STALE"}
    _in(monkeypatch, "zh_CN.UTF-8")
    for command in (["report", "device", device_id], ["report", "history", device_id]):
        assert collector_cli([*command, *data]) == 0
        cells = set(capsys.readouterr().out.split())
        assert not cells & codes, command
        assert cells & {MARK.format(code) for code in codes}, command
        assert collector_cli([*command, *data, "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert {row["state"] for row in rows} <= codes and rows, command
        assert collector_cli([*command, *data, "--format", "csv"]) == 0
        csv = capsys.readouterr().out
        assert any(f",{code}," in csv for code in codes), command
        assert collector_cli([*command, *data, "--lang", "en"]) == 0
        assert set(capsys.readouterr().out.split()) & codes, command
