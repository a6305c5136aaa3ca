"""The command lines speak the reader's language, as a person meets them: real processes of
`devposture-collector` and `devposture-agent` under `LANG=zh_CN.UTF-8` and `LANG=C.UTF-8`.
Errors (a bad option value, a missing device, an unreadable file, a refusal from a remote
collector's admin port, another module's error: an unreachable collector, an enrollment file
others can read, agent.toml's mistakes line by line, a folder that cannot be a data folder, a
policy's mistakes, a port in use, a token used up), what a command did (init, policy check,
enroll, once, a remote admin command) and help come in Chinese for the one, in English for the
other."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests import warm_commands
from tests.databases import init_arguments
from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, enrolled_state, run
from tests.ports import free_port

CHINESE = re.compile(r"[\u4e00-\u9fff]")
NO_SUCH_DEVICE = "0123456789abcdef0123456789abcdef"


def _in(lang: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`argv` run with only LANG saying the language (gettext's other variables removed)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}  # fmt: skip
    env["LANG"] = lang
    warm_commands.seed_for(argv)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          check=False)  # fmt: skip


def _closed_port() -> int:
    """A loopback port nothing listens on (the kernel's, released at once)."""
    return free_port()


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
    assert zh == (f"devposture-agent：错误：无法读取令牌文件 {missing}：文件或目录不存在；"
                  "请检查路径\n")  # fmt: skip
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


def _remote(collector: CollectorProcess, tmp_path: Path, name: str, role: str) -> tuple[str, ...]:
    """The options that reach `collector`'s admin port with a new credential of `role`."""
    done = run(COLLECTOR, "admin", "add", name, "--role", role, "--data", str(collector.data))
    assert done.returncode == 0, done.stderr
    credential = tmp_path / f"{role}.credential"
    credential.write_text(done.stdout)
    credential.chmod(0o600)
    return ("--collector", f"127.0.0.1:{collector.admin_port}", "--ca-fingerprint",
            collector.fingerprint, "--credential-file", str(credential))  # fmt: skip


def test_a_remote_refusal_is_worded_in_the_remote_readers_language(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    """The collector runs in English (its own locale); the person at the remote command line
    reads its refusals in theirs."""
    remote = _remote(collector_process, tmp_path, "Wang Fang", "viewer")

    zh, en = _both(COLLECTOR, "device", "show", NO_SUCH_DEVICE, *remote)
    assert zh == (f"devposture-collector：错误：没有设备 {NO_SUCH_DEVICE}：设备 ID 见"
                  " `devposture-collector device list`（NOT_FOUND）\n")  # fmt: skip
    assert en == (f"devposture-collector: error: no device {NO_SUCH_DEVICE}: see the ids in"
                  " `devposture-collector device list` (NOT_FOUND)\n")  # fmt: skip

    zh, en = _both(COLLECTOR, "token", "create", *remote)
    assert "不允许：`token create` 需要管理员角色，Wang Fang（" in zh  # Chinese brackets
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


def test_an_unreachable_collector_is_told_in_the_readers_language(tmp_path: Path) -> None:
    """Enrolling at two addresses where nothing answers: the CA pinning's error for each,
    under the enrollment's own sentence, every line worded."""
    token = tmp_path / "token.txt"
    token.write_text("dpt_0123456789abcdef\n")
    token.chmod(0o600)
    first, second = _closed_port(), _closed_port()
    zh, en = _both(AGENT, "enroll", "--token-file", str(token), "--state", str(tmp_path / "s"),
                   "--collector", f"127.0.0.1:{first}", "--collector", f"127.0.0.1:{second}",
                   "--ca-fingerprint", "sha256:" + "ab" * 32)  # fmt: skip
    assert zh.startswith("devposture-agent：错误：采集器的 2 个地址都没有应答：\n")
    assert f"\n  无法连接 127.0.0.1:{first} 上的采集器（" in zh
    assert f"\n  无法连接 127.0.0.1:{second} 上的采集器（" in zh
    assert "请检查地址，并确认 `devposture-collector serve` 正在运行且本机能访问到它" in zh
    assert en.startswith("devposture-agent: error: none of the collector's 2 addresses answered:")
    assert f"\n  cannot reach the collector at 127.0.0.1:{first} (" in en
    # The system's words for the refused connection, in the reader's language (issue 19 item 3);
    # English keeps the system's own text.
    assert "（连接被拒绝，该端口上没有程序在监听）" in zh and "Errno" not in zh
    assert "([Errno 111] Connection refused)" in en


def test_an_enrollment_file_others_can_read_is_refused_in_the_readers_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "enroll.token"
    shared.write_text("dpt_0123456789abcdef\n")
    shared.chmod(0o644)
    monkeypatch.setenv("DEVPOSTURE_AGENT_ENROLLMENT_FILE", str(shared))
    zh, en = _both(AGENT, "enroll", "--state", str(tmp_path / "s"))
    assert zh == (f"devposture-agent：错误：{shared} 其他用户也能读取或修改（权限 0644），"
                  "而它存放着注册密钥：因此没有使用。请用 `chmod 600"
                  f" {shared}` 设为仅本人可读（如果别人可能已复制过，"
                  "请吊销该令牌并重新生成注册值）\n")  # fmt: skip
    assert en.startswith(f"devposture-agent: error: {shared} can be read or changed by other")


def test_the_agents_settings_mistakes_are_worded_line_by_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[collector]\naddresses = 5\n\n[logging]\nlevel = "loud"\n')
    zh, en = _both(AGENT, "config", "--config", str(config))
    assert zh == (
        f"devposture-agent：错误：{config} 第 2 行：[collector] addresses 应为方括号中的加引号文本"
        '列表，而不是 5：例如写成 `addresses = ["collector.corp.example:7443"]`\n'
        f"{config} 第 5 行：[logging] level：应为 'debug'、'info'、'warning'、'error' 之一，而不是"
        " 'loud'\n"
        f"{config}：共 2 处问题；逐一改正后再运行\n"
    )
    assert f"{config}:5: [logging] level: must be one of 'debug'" in en
    assert not CHINESE.search(en)
    # A command that needs an enrollment, on a computer without one: the state's words.
    zh, en = _both(AGENT, "once", "--state", str(tmp_path / "s"))
    assert zh == ("devposture-agent：错误：本机尚未注册（状态文件夹中没有 agent.json）：请先运行"
                  " `devposture-agent enroll`\n")  # fmt: skip
    assert en.startswith("devposture-agent: error: this computer is not enrolled")


def test_a_folder_that_cannot_be_a_data_folder_is_told_in_the_readers_language(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("not a collector\n")
    zh, en = _both(COLLECTOR, "init", "--data", str(tmp_path))
    assert zh == (f"devposture-collector：错误：{tmp_path} 已存在且不是空的："
                  "请指定一个空的或新的文件夹\n")  # fmt: skip
    assert en == (f"devposture-collector: error: {tmp_path} exists and is not empty: give an"
                  " empty or new folder\n")  # fmt: skip
    zh, en = _both(COLLECTOR, "report", "fleet", "--data", str(tmp_path), "--as-of", "1/11/2026",
                   code=2)  # fmt: skip
    assert "'1/11/2026' 不是日期或时间：请写成 2026-11-01" in zh
    assert "未写时区的日期按公司时区计" in zh
    assert "'1/11/2026' is not a date or time: use 2026-11-01" in en and not CHINESE.search(en)


def test_init_refuses_what_would_only_fail_at_serve(tmp_path: Path) -> None:
    # Each was accepted (a traceback for the file), the folder made, and `serve` failed later
    # with a misleading "port in use", or the certificate carried the bad name.
    (tmp_path / "token.txt").write_text("x")
    zh, en = _both(COLLECTOR, "init", "--data", str(tmp_path / "token.txt"))
    assert "是一个文件，不是文件夹" in zh and "is a file, not a folder" in en
    assert "Traceback" not in zh + en
    folder = str(tmp_path / "new")
    zh, en = _both(COLLECTOR, "init", "--data", folder, "--enroll-port", "7443",
                   "--report-port", "7443")  # fmt: skip
    assert "注册端口和报告端口必须不同：两者都给了 7443" in zh
    assert "the enrollment and report ports must differ: 7443 was given for both" in en
    zh, en = _both(COLLECTOR, "init", "--data", folder, "--san", "bad name!")
    assert "--san 'bad name!' 既不是 IP 地址也不是 DNS 名称" in zh
    assert "--san 'bad name!' is neither an IP address nor a DNS name" in en
    zh, en = _both(COLLECTOR, "init", "--data", folder, "--listen", "999.1.1.1")
    assert "--listen '999.1.1.1' is neither an IP address nor a host name" in en
    assert not (tmp_path / "new").exists()  # nothing was made
    # A Windows domain's host name may hold an underscore: it is a name.
    done = _in(EN, COLLECTOR, "init", "--data", folder, "--san", "file_srv.corp.example")
    assert done.returncode == 0, done.stderr
    zh, en = _both(COLLECTOR, "tls", "rotate", "--data", folder, "--san", "bad name!")
    assert "--san 'bad name!' is neither an IP address nor a DNS name" in en  # as init says


def test_group_headings_end_with_the_readers_colon() -> None:
    zh, en = _in(ZH, AGENT, "--help").stdout, _in(EN, AGENT, "--help").stdout
    assert "\n位置参数：\n" in zh and "\n选项：\n" in zh and "位置参数:" not in zh
    assert "\npositional arguments:\n" in en and "\noptions:\n" in en


def _out(lang: str, *argv: str) -> str:
    """`argv`'s standard output in `lang`; it succeeds."""
    done = _in(lang, *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_init_says_what_it_did_in_the_readers_language(tmp_path: Path) -> None:
    zh_data, en_data = tmp_path / "zh", tmp_path / "en"
    zh = _out(ZH, COLLECTOR, "init", "--data", str(zh_data), "--listen", "127.0.0.1",
              *init_arguments())  # fmt: skip
    en = _out(EN, COLLECTOR, "init", "--data", str(en_data), "--listen", "127.0.0.1",
              *init_arguments())  # fmt: skip
    pin = _out(ZH, COLLECTOR, "ca", "fingerprint", "--data", str(zh_data)).strip()
    assert zh.startswith(f"已创建采集器数据目录 {zh_data}\n")
    assert f"\nCA 指纹：{pin}\n" in zh
    assert f"令牌用 `devposture-collector token create --data {zh_data}` 生成。" in zh
    assert en.startswith(f"Created collector data folder {en_data}\nDatabase: ")
    assert "\nCA fingerprint: sha256:" in en and not CHINESE.search(en)
    # What a script reads stays as it is: the fingerprint alone.
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pin)
    # The CA rollover's state, for the person who finishes it weeks later.
    assert _out(ZH, COLLECTOR, "ca", "rollover", "status", "--data", str(zh_data)).startswith(
        f"当前没有进行中的 CA 轮换。由 CA 1 签发：{pin}\n")


def test_policy_check_in_the_readers_language(tmp_path: Path) -> None:
    good = tmp_path / "policy.toml"
    good.write_text(_out(EN, COLLECTOR, "policy", "default"))
    zh, en = _out(ZH, COLLECTOR, "policy", "check", str(good)), _out(
        EN, COLLECTOR, "policy", "check", str(good))
    # The checks' names listed as Chinese enumerates them, not with ASCII commas.
    assert zh.startswith(f"{good}：没有问题：3 个条款，6 项检查（antivirus、firewall、os-updates、")
    assert en.startswith(f"{good}: OK: 3 clauses, 6 checks (antivirus, ")
    bad = tmp_path / "bad.toml"
    bad.write_text('stale_after_hours = 0\nreport_interval_minutes = 60\ntime_zone = "Mars/Base"\n'
                   "colour = 1\n")
    zh, en = _both(COLLECTOR, "policy", "check", str(bad))
    assert f"{bad} 第 1 行：stale_after_hours：必须是不小于 1 的整数，而不是 0\n" in zh
    assert f"{bad} 第 3 行：time_zone：'Mars/Base' 不是时区名称：请写 IANA 名称" in zh
    assert f"{bad} 第 4 行：colour：未知的键（应为以下之一：" in zh
    assert f"{bad}：checks：至少需要一个 [[checks]] 表\n" in zh
    assert f"{bad}:1: stale_after_hours: must be a whole number of at least 1, not 0\n" in en
    assert f"{bad}: checks: at least one [[checks]] table is needed\n" in en
    assert not CHINESE.search(en)


def test_serve_on_a_port_in_use_says_which_and_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "collector"
    assert run(COLLECTOR, "init", "--data", str(data), "--listen", "127.0.0.1",
               *init_arguments()).returncode == 0  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = (COLLECTOR, "serve", "--data", str(data), "--enroll-port", str(port),
                "--report-port", str(_closed_port()), "--admin-port", "0", "--web-port", "0",
                "--metrics-port", "0")  # fmt: skip
        zh, en = _both(*argv)
    assert (f"devposture-collector：错误：注册端口 {port} 已被占用"
            "（另一个采集器或其他程序正在监听）：请停掉它，或者用 --enroll-port/--report-port"
            " 换别的端口") in zh
    assert (f"devposture-collector: error: the enrollment port {port} is already in use"
            " (another collector, or another program, listens there): stop it, or choose other"
            " ports with --enroll-port/--report-port") in en


def test_enrolling_reporting_and_a_used_up_token_in_the_readers_language(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    """The enrollment port's refusal comes worded from a real collector (running in English):
    the agent words it in its reader's language; the outcome lines likewise."""
    token = tmp_path / "token.txt"
    token.write_text(collector_process.token())
    token.chmod(0o600)
    target = ("--collector", f"127.0.0.1:{collector_process.enroll_port}", "--ca-fingerprint",
              collector_process.fingerprint, "--token-file", str(token))  # fmt: skip
    first = _out(ZH, AGENT, "enroll", *target, "--state", str(tmp_path / "first"))
    assert re.fullmatch(r"注册成功：这台电脑的设备 ID 是 [0-9a-f]{32}\n报告将通过双向 TLS 发送到"
                        rf" 127\.0\.0\.1:{collector_process.report_port}。\n", first)
    once = _out(ZH, AGENT, "once", "--state", str(tmp_path / "first"))
    assert re.fullmatch(r"采集器已确认收到报告 [0-9a-f-]{36}。\n", once)
    zh, en = _in(ZH, AGENT, "enroll", *target, "--state", str(tmp_path / "zh")), _in(
        EN, AGENT, "enroll", *target, "--state", str(tmp_path / "en"))
    assert zh.returncode == en.returncode == 1, (zh.stderr, en.stderr)
    assert zh.stderr == ("devposture-agent：错误：采集器拒绝了令牌：该注册令牌的使用次数已用完："
                         "请向 IT 要一个新的（`devposture-collector token create`）\n")
    assert en.stderr == ("devposture-agent: error: the collector refused the token: the"
                         " enrollment token was already used up: ask IT for a new one"
                         " (`devposture-collector token create`)\n")


def test_a_remote_commands_outcome_is_worded_in_the_remote_readers_language(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    """A result's sentence travels worded (trailing metadata) beside its English: the remote
    reader gets it in their language, the audit log keeps the English."""
    remote = _remote(collector_process, tmp_path, "Li Wei", "admin")
    first, second = (collector_process.token().split("_")[1] for _ in range(2))
    zh = _out(ZH, COLLECTOR, "token", "revoke", first, *remote)
    en = _out(EN, COLLECTOR, "token", "revoke", second, *remote)
    assert zh == f"令牌 {first} 已吊销：不能再用它注册设备\n"
    assert en == f"token {second} revoked: it enrolls no more devices\n"
    log = _out(ZH, COLLECTOR, "audit", "log", "--data", str(collector_process.data),
               "--format", "json")  # fmt: skip
    assert f"token {first} revoked: it enrolls no more devices" in log and "已吊销" not in log
    # A remote export's summary too (its trailing metadata), the local export's, naming the
    # file written here, never the collector's.
    out = tmp_path / "evidence.zip"
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    end = dt.datetime.now(dt.UTC).isoformat()
    exported = _out(ZH, COLLECTOR, "audit", "export", *remote, "--from", start, "--to", end,
                    "--out", str(out))  # fmt: skip
    assert exported.startswith(f"已写入 {out}：") and "证据包" not in exported
    assert "由 " in exported and "`devposture-collector audit verify evidence.zip" in exported


def test_a_revoked_devices_refusal_is_worded_in_the_employees_language(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    """The report port's refusal of the device itself comes worded from a real collector
    (running in English): `once` and `status` say it whole in the employee's language, with
    no English clause inside the Chinese sentence; in English, the collector's own words."""
    c = collector_process
    state = enrolled_state(c, tmp_path)
    device_id = json.loads((state / "agent.json").read_text())["device_id"]
    before = _beijing_day()
    revoked = run(COLLECTOR, "device", "revoke", device_id, "--reason", "laptop stolen",
                  "--data", str(c.data))  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    zh, en = _in(ZH, AGENT, "once", "--state", str(state)), _in(EN, AGENT, "once", "--state",
                                                               str(state))  # fmt: skip
    assert zh.returncode == en.returncode == 1, (zh.stderr, en.stderr)
    found = re.search(r"IT 于 (\d{4}-\d{2}-\d{2}) 设置", zh.stderr)
    assert found is not None and found[1] in (before, _beijing_day()), zh.stderr
    day = found[1]  # the day of the revocation in the company's zone (Beijing)
    said_zh = (f"设备 {device_id} 的状态为“已吊销”（IT 于 {day} 设置）：它不能再报告。请联系 IT；"
               "重新注册需要新的令牌和新的密钥（enroll --force）")  # fmt: skip
    assert said_zh in zh.stderr, zh.stderr
    assert f"device {device_id} was revoked by IT on {day}: it can no longer report" in en.stderr
    status_zh, status_en = (_in(lang, AGENT, "status", "--state", str(state)) for lang in (ZH, EN))
    first_zh, first_en = status_zh.stdout.splitlines()[0], status_en.stdout.splitlines()[0]
    # `status` names the computer by its hostname (what it shows every user holds no id).
    host = socket.gethostname()
    assert said_zh.replace(device_id, host) in first_zh, status_zh.stdout
    words = first_zh.replace(host, "").replace("enroll --force", "").replace("IT", "")
    assert not re.search(r"[A-Za-z]{2,}", words), first_zh
    assert f"device {host} was revoked by IT on {day}" in first_en, status_en.stdout


def _beijing_day() -> str:
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")
