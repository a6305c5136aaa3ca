"""Words a sweep of every command found still in the wrong language or clock: real processes of
`devposture-collector` and `devposture-agent` under `LANG=zh_CN.UTF-8` and `LANG=C.UTF-8`.

A waiver's log gave its expiry in UTC ("expires 2026-12-31T16:00:00+00:00" for a waiver that
lasts all of the 31st in Beijing) and its actions as codes, and a revoked waiver read as a
revoked token ("已吊销"); `audit facts` answered in English and Chinese at once, a remote
`audit export` showed its progress in both and named the collector's temporary file, and
`setup` named the keys it could not set with ASCII commas inside a Chinese sentence. Files
(JSON) keep what they always held."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, enrolled_state, run
from tests.e2e.test_cli_language import EN, ZH, _in, _remote

CHINESE = re.compile(r"[\u4e00-\u9fff]")
UTC_TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?\+00:00")


def _table(lang: str, *argv: str) -> str:
    done = _in(lang, COLLECTOR, *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_waivers_log_reads_in_the_company_zone_and_files_keep_the_stored_text(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    c = collector_process
    device = json.loads((enrolled_state(c, tmp_path) / "agent.json").read_text())["device_id"]
    local = ("--data", str(c.data))
    day = (dt.datetime.now(ZoneInfo("Asia/Shanghai")) + dt.timedelta(days=10)).date()
    added = run(COLLECTOR, "waiver", "add", *local, "--device", device, "--check", "firewall",
                "--owner", "王芳", "--reason", "换新电脑",
                "--expires", day.isoformat())  # fmt: skip
    assert added.returncode == 0, added.stderr
    waiver = re.search(r"w-[0-9a-f]{8}", added.stdout)
    assert waiver is not None, added.stdout
    revoked = run(COLLECTOR, "waiver", "revoke", waiver[0], "--reason", "不再需要", *local)
    assert revoked.returncode == 0, revoked.stderr
    # The waiver lasts all of `day` in Beijing: it ends at the next local midnight.
    # In Chinese its offset is in full-width brackets.
    ends = {EN: f"{day + dt.timedelta(days=1)} 00:00 (UTC+08:00)",
            ZH: f"{day + dt.timedelta(days=1)} 00:00（UTC+08:00）"}  # fmt: skip
    remote = _remote(c, tmp_path, "Li Wei", "auditor")
    for where in (local, remote):  # on the collector machine and over the admin port alike
        for lang in (ZH, EN):
            log = _table(lang, "waiver", "list", "--log", *where)
            assert ends[lang] in log and not UTC_TIME.search(log), log
            assert "换新电脑" in log and "不再需要" in log
        files = json.loads(_table(ZH, "waiver", "list", "--log", "--format", "json", *where))
        assert [e["action"] for e in files] == ["add", "revoke"]
        assert files[0]["detail"].endswith("+00:00: 换新电脑"), files[0]  # as stored
        assert files[1]["detail"] == "不再需要"
    # A revoked waiver is not worded as a revoked token or credential is (吊销).
    listing = _table(ZH, "waiver", "list", "--all", *local)
    assert waiver[0] in listing and "已吊销" not in listing, listing
    files = json.loads(_table(ZH, "waiver", "list", "--all", "--format", "json", *local))
    assert [w["status"] for w in files] == ["revoked"]


def test_audit_facts_answers_in_the_readers_language_only(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    bundle = tmp_path / "evidence.zip"
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    end = dt.datetime.now(dt.UTC).isoformat()
    done = run(COLLECTOR, "audit", "export", "--data", str(collector_process.data),
               "--from", start, "--to", end, "--out", str(bundle))  # fmt: skip
    assert done.returncode == 0, done.stderr
    argv = (COLLECTOR, "audit", "facts", str(bundle), "--report", "nope")
    zh, en = _in(ZH, *argv), _in(EN, *argv)
    assert zh.returncode == en.returncode == 1
    assert en.stderr.startswith("devposture-collector: error: evidence.zip holds no body for"
                                " report nope: check the id")  # fmt: skip
    assert not CHINESE.search(en.stderr), en.stderr
    assert zh.stderr.startswith("devposture-collector：错误：") and zh.stderr.count("\n") == 1


def test_a_remote_exports_progress_and_summary_are_the_readers_own(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    """Its progress in the reader's language only (it said each update in both), one update a
    line into a pipe (carriage returns made one line of a log hold them all), and a summary
    that never names the collector's own temporary file: a period that ends in the future
    (a second line says so) showed ".../export-…/bundle.zip" to the remote reader, and the
    summary's command to check the bundle named "bundle.zip", not the reader's file."""
    remote = _remote(collector_process, tmp_path, "Li Wei", "auditor")
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    for lang, name in ((EN, "en.zip"), (ZH, "zh.zip")):
        done = _in(lang, COLLECTOR, "audit", "export", *remote, "--from", start, "--to", end,
                   "--out", str(tmp_path / name), "--progress")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert str(tmp_path / name) in done.stdout, done.stdout
        assert str(collector_process.data) not in done.stdout, done.stdout
        # The summary is the local export's, naming the file written here: it told the
        # reader to verify "bundle.zip", the collector's temporary name.
        assert f"audit verify {name} --public-key" in done.stdout, done.stdout
        assert "bundle.zip" not in done.stdout, done.stdout
        assert done.stdout.count(str(tmp_path / name)) == 1, done.stdout
        lines = done.stderr.split("\n")[:-1]  # (a carriage return reads as a line end here)
        assert lines and all(lines) and len(lines) == len(set(lines)), lines
        if lang == EN:
            assert lines[-1].startswith("audit export: downloaded "), lines
            assert not CHINESE.search(done.stderr), done.stderr
        else:
            assert not any("downloaded" in line and "下载" in line for line in lines), lines


def test_setup_lists_the_keys_it_cannot_set_as_the_readers_language_enumerates(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "agent.toml").write_text('collector.addresses = ["old.example:7443"]\n')
    argv = (AGENT, "setup", "--config-folder", str(folder), "--installer", "script",
            "--collector", "collector.corp.example:7443", "--state", str(tmp_path / "state"))
    zh, en = _in(ZH, *argv), _in(EN, *argv)
    assert zh.returncode == en.returncode == 1, (zh.stderr, en.stderr)
    assert "[collector] addresses、[state] folder" in zh.stderr, zh.stderr
    assert "cannot be edited safely to set [collector] addresses, [state] folder:" in en.stderr
    assert not CHINESE.search(en.stderr)
