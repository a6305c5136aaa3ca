"""Words a sweep of every command found still in the wrong language or clock: real processes of
`devposture-collector` and `devposture-agent` under `LANG=zh_CN.UTF-8` and `LANG=C.UTF-8`.

`audit facts` answered in English and Chinese at once, a remote `audit export` showed its
progress in both, and `setup` named the keys it could not set with ASCII commas inside a
Chinese sentence."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, run
from tests.e2e.test_cli_language import EN, ZH, _in, _remote

CHINESE = re.compile(r"[\u4e00-\u9fff]")


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


def test_a_remote_exports_progress_is_in_the_readers_language_only(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    remote = _remote(collector_process, tmp_path, "Li Wei", "auditor")
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    end = dt.datetime.now(dt.UTC).isoformat()
    for lang, name in ((EN, "en.zip"), (ZH, "zh.zip")):
        done = _in(lang, COLLECTOR, "audit", "export", *remote, "--from", start, "--to", end,
                   "--out", str(tmp_path / name), "--progress")  # fmt: skip
        assert done.returncode == 0, done.stderr
        progress = [line for line in done.stderr.split("\r") if line.strip()]
        assert progress, done.stderr
        if lang == EN:
            assert "audit export: downloaded " in progress[-1], progress
            assert not CHINESE.search(done.stderr), done.stderr
        else:
            assert "downloaded" not in done.stderr or "下载" not in done.stderr, done.stderr


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
