"""What an auditor and IT read from the command lines, in the reader's language: real processes
under `LANG=zh_CN.UTF-8` and `LANG=C.UTF-8`. A tampered bundle's findings (`audit verify`), a
table edited behind the collector's back (`audit check`, and the export it refuses), a move to
a database already in use (`migrate --to`), and `devposture-agent setup`'s and `cleanup`'s
lines come in Chinese for the one; for the other the English is what it always was, byte for
byte, since scripts, installers' logs and older tests compare it. The verdict (the exit code)
is the same in both."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import zipfile
from pathlib import Path

import pytest

from devposture.collector.store import Store
from devposture.collector.tokens import new_token
from tests.databases import fresh_postgres, on_postgresql
from tests.e2e.conftest import AGENT, COLLECTOR, run
from tests.e2e.test_cli_language import EN, ZH, _in

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _both(*argv: str, code: int) -> tuple[str, str]:
    """`argv`'s standard output and error in Chinese and in English; it exits `code` in both."""
    zh, en = _in(ZH, *argv), _in(EN, *argv)
    assert zh.returncode == en.returncode == code, (zh.stderr, en.stderr)
    return zh.stdout + zh.stderr, en.stdout + en.stderr


def _site(tmp_path: Path) -> Path:
    """A collector's data folder on its SQLite file (the edits below are an operator's, with
    the file), with two audit-log entries on the evidence chain."""
    data = tmp_path / "collector"
    assert run(COLLECTOR, "init", "--data", str(data), "--listen", "127.0.0.1").returncode == 0
    for _ in range(2):
        assert run(COLLECTOR, "token", "create", "--data", str(data)).returncode == 0
    return data


def _export(data: Path, out: Path) -> Path:
    """The whole history exported to `out`; the public key beside it."""
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()
    done = run(COLLECTOR, "audit", "export", "--data", str(data), "--from", start, "--to", end,
               "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    key = out.with_suffix(".pem")
    key.write_text(run(COLLECTOR, "audit", "public-key", "--data", str(data)).stdout)
    return key


def test_a_tampered_bundles_findings_in_the_readers_language(tmp_path: Path) -> None:
    data = _site(tmp_path)
    bundle = tmp_path / "evidence.zip"
    key = _export(data, bundle)
    zh, en = _both(COLLECTOR, "audit", "verify", str(bundle), "--public-key", str(key), code=0)
    assert zh.startswith("已验证：共 ")
    assert zh.endswith("验证通过：证据完整，未被修改、删除或重排。\n")
    assert en.startswith("VERIFIED: ") and "Nothing was changed, removed or reordered." in en

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(tampered, "w") as out:
        for name in source.namelist():
            content = source.read(name)
            if name == "chain.jsonl":  # the first entry's command, edited
                content = content.replace(b"token create", b"token revoke", 1)
            out.writestr(name, content)
        out.writestr("notes.txt", b"added after signing")
    zh, en = _both(COLLECTOR, "audit", "verify", str(tampered), "--public-key", str(key), code=1)
    assert "问题：证据包成员 chain.jsonl 在采集器签名后被修改\n" in zh
    assert "问题：证据包中被添加了成员 notes.txt\n" in zh
    assert "问题：admin 记录序号 1（1）与它的哈希不符：被修改\n" in zh
    assert re.search(r"\n未通过验证：共 \d+ 个问题。验证失败：", zh) and "problem" not in zh
    # The English as scripts and older tests read it, line for line.
    assert en.startswith("problem: member chain.jsonl was changed after the collector signed it\n"
                         "problem: member notes.txt was added to the bundle\n"
                         "problem: admin record seq 1 (1) does not match its hash: edited\n")
    assert re.search(r"\nNOT VERIFIED: \d+ problems: this bundle is not the evidence the"
                     r" collector signed with this key\. 验证失败：", en)  # fmt: skip
    assert not CHINESE.search(en.split("NOT VERIFIED")[0])


def test_a_table_edited_outside_the_collector_in_the_readers_language(tmp_path: Path) -> None:
    data = _site(tmp_path)
    with sqlite3.connect(data / "devposture.db") as database:  # as someone with the file would
        database.execute("DROP TRIGGER audit_log_is_append_only_update")
        database.execute("UPDATE audit_log SET outcome = 'denied' WHERE entry_id = 1")
    database.close()
    zh, en = _both(COLLECTOR, "audit", "check", "--data", str(data), code=1)
    assert ("问题：审计日志（表 audit_log）[entry_id 1]（证据链序号 1）与证据链不符（被修改）。"
            "详情：与它在证据链中的记录不符：outcome 在这里是 'denied'，"
            "在证据链中是 'ok'。\n") in zh
    assert "不一致：共 1 处。核对失败：" in zh
    assert ("problem: audit_log row [entry_id 1] (chain seq 1): differs from its chain entry:"
            " outcome is 'denied' here, 'ok' in the chain. 审计日志与证据链不符（被修改）。\n"
            ) in en  # fmt: skip
    assert "DISAGREE: 1 finding: the tables do not agree with the evidence chain" in en
    # The export refuses the period, naming the row in the reader's language too.
    refused = [_in(lang, COLLECTOR, "audit", "export", "--data", str(data), "--from",
                   "2020-01-01", "--to", "2100-01-01", "--out", str(tmp_path / f"{lang}.zip"))
               for lang in (ZH, EN)]  # fmt: skip
    assert [done.returncode for done in refused] == [1, 1]
    zh, en = (done.stderr for done in refused)
    assert ("错误：导出被拒绝：本期有 1 条记录与写入时的数据表不再一致：\n"
            "  审计日志（表 audit_log）") in zh  # fmt: skip
    assert "请运行 `devposture-collector audit check` 查看全部差异" in zh
    assert ("error: audit export refused: the tables no longer hold 1 record of the period as"
            " they were written (导出被拒绝：本期记录与数据表不一致):\n  audit_log row"
            " [entry_id 1]") in en  # fmt: skip


@pytest.mark.skipif(not on_postgresql(), reason="needs a PostgreSQL server to move into")
def test_a_move_into_a_database_in_use_is_refused_in_the_readers_language(
    tmp_path: Path,
) -> None:
    data = _site(tmp_path)
    used = fresh_postgres()
    other = Store.open(used)
    try:
        now = dt.datetime.now(dt.UTC)
        other.identity.add_token(new_token(), now, now + dt.timedelta(hours=1), uses=1)
    finally:
        other.close()
    zh, en = _both(COLLECTOR, "migrate", "--data", str(data), "--to", used.url, code=1)
    assert ("PostgreSQL 数据库里已经有采集器的数据（表 enrollment_tokens 不是空的）：请提供一个"
            "为本站点新建的空数据库") in zh  # fmt: skip
    assert ("the PostgreSQL database already holds collector data (table enrollment_tokens is"
            " not empty): give an empty database, made for this site") in en  # fmt: skip


def test_setup_and_cleanup_say_what_they_did_in_the_readers_language(tmp_path: Path) -> None:
    def setup(lang: str) -> tuple[str, Path, Path]:
        etc, state = tmp_path / lang / "etc", tmp_path / lang / "state"
        done = _in(lang, AGENT, "setup", "--config-folder", str(etc), "--collector",
                   "collector.example.cn:8443", "--state", str(state))  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout, etc, state

    (zh, zh_etc, zh_state), (en, en_etc, en_state) = setup(ZH), setup(EN)
    assert zh == (f"{zh_etc}/agent.toml：[collector] addresses = collector.example.cn:8443\n"
                  f"{zh_etc}/agent.toml：[state] folder = {zh_state}\n")
    assert en == (f"{en_etc}/agent.toml: [collector] addresses = collector.example.cn:8443\n"
                  f"{en_etc}/agent.toml: [state] folder = {en_state}\n")
    zh = _in(ZH, AGENT, "cleanup", "--config-folder", str(zh_etc), "--purge=0").stdout
    en = _in(EN, AGENT, "cleanup", "--config-folder", str(en_etc), "--purge=0").stdout
    assert zh == (f"已保留 {zh_etc}（设备身份和尚未发送的报告）：如需删除，请运行"
                  " `devposture-agent cleanup --purge=1`\n")
    assert en == (f"kept {en_etc} (the device's identity and unsent reports): run"
                  " `devposture-agent cleanup --purge=1` to delete it\n")
    zh = _in(ZH, AGENT, "cleanup", "--config-folder", str(zh_etc), "--purge=1", "--state",
             str(zh_state)).stdout  # fmt: skip
    en = _in(EN, AGENT, "cleanup", "--config-folder", str(en_etc), "--purge=1", "--state",
             str(en_state)).stdout  # fmt: skip
    assert zh == f"已删除 {zh_state}\n已删除 {zh_etc}\n"
    assert en == f"deleted {en_state}\ndeleted {en_etc}\n"
