"""The command lines speak the reader's language, as a person meets them: real processes of
`devposture-collector` and `devposture-agent` under `LANG=zh_CN.UTF-8` and `LANG=C.UTF-8`.
Errors (a bad option value, a missing device, an unreadable file, a refusal from a remote
collector's admin port) and help come in Chinese for the one, in English for the other."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, run

CHINESE = re.compile(r"[\u4e00-\u9fff]")
NO_SUCH_DEVICE = "0123456789abcdef0123456789abcdef"


def _in(lang: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`argv` run with only LANG saying the language (gettext's other variables removed)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}  # fmt: skip
    env["LANG"] = lang
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          check=False)  # fmt: skip


ZH, EN = "zh_CN.UTF-8", "C.UTF-8"


def _both(*argv: str, code: int = 1) -> tuple[str, str]:
    """`argv`'s standard error in Chinese and in English; it exits `code` in both."""
    zh, en = _in(ZH, *argv), _in(EN, *argv)
    assert zh.returncode == en.returncode == code, (zh.stderr, en.stderr)
    return zh.stderr, en.stderr


def test_a_bad_option_value_is_refused_in_the_readers_language(tmp_path: Path) -> None:
    zh, en = _both(COLLECTOR, "report", "failing", "--data", str(tmp_path), "--limit", "0",
                   code=2)  # fmt: skip
    assert zh.startswith("用法：devposture-collector report failing")
    assert "devposture-collector report failing：错误：参数 --limit：--limit 须为不小于 1 的整数行数，而不是 '0'" in zh  # noqa: E501
    assert en.startswith("usage: devposture-collector report failing")
    assert "error: argument --limit: --limit takes a whole number of rows, 1 or more, not '0'" in en
    assert not CHINESE.search(en)
    # argparse's own refusal (a choice it does not know), worded again
    choice = _in(ZH, COLLECTOR, "report", "failing", "--format", "pdf").stderr
    assert "参数 --format：无效的选择：'pdf'（可选：" in choice


def test_an_unreadable_file_is_named_in_the_readers_language(tmp_path: Path) -> None:
    missing = tmp_path / "token.txt"
    zh, en = _both(AGENT, "enroll", "--token-file", str(missing), "--state", str(tmp_path / "s"))
    assert zh == (f"devposture-agent：错误：无法读取令牌文件 {missing}：No such file or"
                  " directory；请检查路径\n")  # fmt: skip
    assert en == (f"devposture-agent: error: cannot read the token file {missing}: No such file"
                  " or directory; check the path\n")  # fmt: skip
    argv = (COLLECTOR, "audit", "verify", str(missing), "--public-key", str(missing))
    assert "无法读取公钥" in _in(ZH, *argv).stderr
    assert "cannot read the public key" in _in(EN, *argv).stderr


def test_help_is_in_the_locales_language() -> None:
    zh = _in(ZH, COLLECTOR, "waiver", "add", "--help")
    en = _in(EN, COLLECTOR, "waiver", "add", "--help")
    assert zh.returncode == en.returncode == 0
    assert zh.stdout.startswith("用法：devposture-collector waiver add")
    assert "豁免的责任人" in zh.stdout and "显示此帮助信息并退出" in zh.stdout
    assert "who is accountable for the exemption" in en.stdout and not CHINESE.search(en.stdout)
    status = _in(ZH, AGENT, "status", "--help").stdout
    assert "退出状态：\n  0  每个检查项都合规或已豁免" in status
    status = _in(EN, AGENT, "status", "--help").stdout
    assert "exit status:\n  0  every check compliant or exempt" in status


def test_a_remote_refusal_is_worded_in_the_remote_readers_language(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    """The collector runs in English (its own locale); the person at the remote command line
    reads its refusals in theirs."""
    done = run(COLLECTOR, "admin", "add", "Wang Fang", "--role", "viewer", "--data",
               str(collector_process.data))  # fmt: skip
    assert done.returncode == 0, done.stderr
    credential = tmp_path / "viewer.credential"
    credential.write_text(done.stdout)
    credential.chmod(0o600)
    remote = ("--collector", f"127.0.0.1:{collector_process.admin_port}", "--ca-fingerprint",
              collector_process.fingerprint, "--credential-file", str(credential))  # fmt: skip

    zh, en = _both(COLLECTOR, "device", "show", NO_SUCH_DEVICE, *remote)
    assert zh == (f"devposture-collector：错误：没有设备 {NO_SUCH_DEVICE}：设备 ID 见"
                  " `devposture-collector device list`（NOT_FOUND）\n")  # fmt: skip
    assert en == (f"devposture-collector: error: no device {NO_SUCH_DEVICE}: see the ids in"
                  " `devposture-collector device list` (NOT_FOUND)\n")  # fmt: skip

    zh, en = _both(COLLECTOR, "token", "create", *remote)
    assert "不允许：`token create` 需要管理员角色，Wang Fang (" in zh
    assert "的角色是查看者。请向采集器的管理员申请一个管理员角色的凭据" in zh
    assert "not allowed: `token create` needs the admin role; Wang Fang (" in en
    assert not CHINESE.search(en)

    # The same locally, on the data folder: the same words.
    local = _in(ZH, COLLECTOR, "device", "show", NO_SUCH_DEVICE, "--data",
                str(collector_process.data))  # fmt: skip
    assert local.stderr == (f"devposture-collector：错误：没有设备 {NO_SUCH_DEVICE}：设备 ID 见"
                            " `devposture-collector device list`\n")  # fmt: skip
    # The audit log keeps the English, whatever the reader's language.
    log = _in(ZH, COLLECTOR, "audit", "log", "--data", str(collector_process.data),
              "--format", "json").stdout  # fmt: skip
    assert f"no device {NO_SUCH_DEVICE}: see the ids" in log and "没有设备" not in log
