"""The agent's own words inside reasons: worded in the reader's language where declared, any
other text as it came, and every place the agent writes one held to the declared list (a
phrase reworded in the agent and not here would silently read English again)."""

from __future__ import annotations

import ast
import datetime as dt
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from devposture.agent.parsers import file_headers
from devposture.agent.parsers.mdatp import parse_mdatp_health
from devposture.agent.parsers.windows.update_search import search_failure
from devposture.agent.probes.backup_volume import judge, on_volume
from devposture.policy.catalogs import LANGS, Lang
from devposture.policy.phrases import is_phrase, worded
from devposture.policy.reasons import encode, item, render
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
AGENT = ROOT / "agent"
BEIJING = dt.timezone(dt.timedelta(hours=8))


@pytest.mark.parametrize(
    ("text", "chinese"),
    [
        ("public", "公用网络"),
        ("nft is not installed (not found on the search path)", "nft 未安装，搜索路径中找不到它"),
        # A tool's own words inside a phrase stay as the tool wrote them.
        ("apt-get exited with status 100: E: Could not get lock /var/lib/dpkg/lock",
         "apt-get 运行失败，退出状态 100：E: Could not get lock /var/lib/dpkg/lock"),
        # A phrase inside a phrase is worded too.
        ("the Windows Update Agent search failed with 0x8024401C (WU_E_PT_HTTP_STATUS_REQUEST_"
         "TIMEOUT: the update server timed out)",
         "Windows 更新代理搜索更新失败，错误 0x8024401C，WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT："
         "更新服务器响应超时"),
        # The names the agent looked for, enumerated as Chinese lists them.
        ("no firewall tool is installed (nft, iptables, ufw, firewall-cmd)",
         "未安装任何防火墙工具，已查找：nft、iptables、ufw、firewall-cmd"),
        ("ZIP archive without encryption; only the first 500 files were counted",
         "未加密的 ZIP 压缩包；只统计了前 500 个文件"),
        # A path, a tool's name or its output is never worded, even when it reads like one.
        ("public does not exist", "public 不存在"),
        ("apt-get exited with status 1: public", "apt-get 运行失败，退出状态 1：public"),
        # A probe past its deadline names its fact by the enum name: said as the fact's word.
        ("FACT_FIREWALL probe did not finish within 10 s", "防火墙检测未在 10 秒内完成"),
        ("FACT_NEWER probe did not finish within 10 s", "FACT_NEWER检测未在 10 秒内完成"),
        ("FACT_CHAT_BACKUPS probe still running since 2026-12-05 17:00 (UTC+08:00): it did not"
         " finish within 60 s then, and is not started again until it does",
         "聊天备份检测自 2026-12-05 17:00（UTC+08:00）起仍在运行：它当时未在 60 秒内完成，"
         "完成之前不会再次启动"),
        # Anything else is shown as it came: a product's own words, a name that looks like one.
        ("full disk access has not been granted", "full disk access has not been granted"),
        ("public Wi-Fi", "public Wi-Fi"),
    ],
)  # fmt: skip
def test_a_phrase_is_worded_and_anything_else_shown_as_it_came(text: str, chinese: str) -> None:
    assert worded(text, "zh") == chinese
    assert worded(text, "en") == text


def test_only_parameters_of_the_agents_words_are_worded() -> None:
    """A Wi-Fi network named "public" is a name (kind text), a Windows profile named "public"
    is the agent's word (kind phrases)."""
    assert render(encode("fw.on", profiles=["domain", "private", "public"]), "zh", BEIJING) == (
        "防火墙正在过滤入站流量：域网络、专用网络、公用网络"
    )
    shown = render(encode("wifi.public", sessions=[item("wifi.no_vpn", network="public",
                                                          at=0)]), "zh", BEIJING)  # fmt: skip
    assert "连接 public" in shown and "公用网络" not in shown



def _string(node: ast.expr) -> list[str]:
    """The texts an expression can be: a string, an f-string (each part in braces written as
    "X1"), either side of `a or b` and `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(
            str(part.value) if isinstance(part, ast.Constant) else "X1" for part in node.values
        )]  # fmt: skip
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _string(value)]
    if isinstance(node, ast.IfExp):
        return _string(node.body) + _string(node.orelse)
    return []


def _assigned(module: Path, name: str) -> list[str]:
    """The texts assigned to the variable `name` in `module` (`+=` after a text: "X1...")."""
    found = []
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            found += _string(node.value)
        elif isinstance(node, ast.AugAssign) and getattr(node.target, "id", "") == name:
            found += ["X1" + text for text in _string(node.value)]
    return found


def _written(module: Path, calls: set[str], position: int) -> list[str]:
    """The texts passed as argument `position` to the calls named `calls` in `module`."""
    found = []
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and len(node.args) > position:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in calls:
                found += _string(node.args[position])
    return found


@pytest.mark.parametrize("os_name", ["linux", "macos", "windows"])
def test_why_a_chat_clients_version_is_unknown_is_declared(os_name: str) -> None:
    written = _assigned(AGENT / "probes" / os_name / "chat_clients.py", "why")
    assert written and [t for t in written if not is_phrase(t)] == []


ERRORS = {"HostError", "CommandNotFoundError", "HostPermissionError", "CommandTimeoutError",
          "SourceMissingError", "CommandFailedError", "ProbeFailure", "error"}  # fmt: skip
# Written by the agent, read by people, and not (yet) declared: each says why.
NOT_DECLARED = {
    "X1 X1 failed: X1",  # an uncommon OS error, with the OS's own words (strerror)
    "permission denied X1 X1",  # declared as its forms (reading, listing, inspecting, resolving)
    "X1 is not listed in agent/probes/commands.py",  # a bug in the agent, for its developers
    "empty argv",
}


@pytest.mark.parametrize(
    ("module", "calls", "position"),
    [
        ("host/live.py", ERRORS, 0),
        ("host/errors.py", ERRORS, 0),
        ("probes/windows/commands.py", ERRORS, 0),
        ("probes/linux/firewall.py", ERRORS, 1),
        ("probes/linux/updates.py", ERRORS, 1),
        ("probes/linux/wifi.py", ERRORS, 1),
        ("probes/windows/wifi.py", ERRORS, 1),
        ("probes/linux/antivirus.py", ERRORS, 2),
        ("probes/linux/clamav_updates.py", ERRORS, 2),
        ("probes/macos/antivirus.py", ERRORS, 2),
        ("probes/windows/antivirus.py", ERRORS, 2),
        ("probes/linux/chat_clients.py", ERRORS, 0),
        ("probes/linux/chat_packages.py", ERRORS, 0),
        ("parsers/file_headers.py", {"HeaderVerdict"}, 1),
        ("parsers/mdatp.py", {"append"}, 0),
        ("probes/runner.py", {"_timeout"}, 1),
        ("probes/windows/vpn.py", ERRORS, 2),
        ("probes/linux/vpn.py", ERRORS, 2),
    ],
)  # fmt: skip
def test_what_the_agent_writes_at_these_places_is_declared(
    module: str, calls: set[str], position: int
) -> None:
    written = [t for t in _written(AGENT / module, calls, position) if t not in NOT_DECLARED]
    assert [t for t in written if not is_phrase(t)] == []


def test_the_agents_other_phrases_are_declared() -> None:
    """Made by running the agent's own code: Defender for Endpoint's problems from a real
    health output, a failed update search from its real stderr, a ZIP written by Python's
    zipfile, a backup's volume from disk-encryption facts."""
    mdatp = FIXTURES / "macos" / "mdatp" / "mdatp-health-macos-kext-enabled-not-available.out"
    health = parse_mdatp_health(mdatp.read_text(encoding="utf-8"))
    own = set(health.problems()) - set(health.health_issues)
    assert own and all(is_phrase(p) for p in own)
    stderr = (FIXTURES / "windows" / "windows_update" / "search-stderr-8024401c.txt").read_text(
        encoding="utf-8"
    )
    assert is_phrase(search_failure(stderr))
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("chat.txt", "not encrypted")
    assert is_phrase(file_headers.sniff(buffer.getvalue()).evidence)
    for method, encrypted in (("LUKS", True), ("", True), ("", False), (None, None)):
        report = pb.PostureReport()
        volume = report.disk_encryption.volumes.add(device="/dev/sda2", mount_point="/home")
        if method is not None:
            volume.method = method
        if encrypted is not None:
            volume.encrypted = encrypted
        backup = pb.ChatBackup()
        on_volume(backup, "/home/li/backup", report, pb.OS_FAMILY_LINUX)
        assert is_phrase(backup.volume_evidence), backup.volume_evidence
        # Behind a link to elsewhere, and a link that leads nowhere.
        host = ReplayHost(real_paths={"/home/li/backup": "/home/shared/backup"})
        for path in ("/home/li/backup", "/home/li/gone"):
            backup = pb.ChatBackup()
            judge(backup, path, host, report, str)
            assert is_phrase(backup.volume_evidence), backup.volume_evidence
    for empty in (pb.PostureReport(disk_encryption=pb.DiskEncryptionFact()), pb.PostureReport()):
        backup = pb.ChatBackup()
        on_volume(backup, "/home/li/backup", empty, pb.OS_FAMILY_LINUX)
        assert is_phrase(backup.volume_evidence), backup.volume_evidence
    # A share under a home ("~/NAS") whose mounts cannot be read again to know whose home.
    shared = pb.PostureReport()
    shared.disk_encryption.volumes.add(device="//nas/backup", mount_point="~/NAS")
    backup = pb.ChatBackup()
    judge(backup, "/home/li/backup", ReplayHost(real_paths={"/home/li/backup": "/home/li/backup"}),
          shared, str)  # fmt: skip
    assert backup.volume_evidence.startswith("which mount holds it is unknown: ")
    assert is_phrase(backup.volume_evidence), backup.volume_evidence


@pytest.mark.parametrize("lang", LANGS)
def test_a_phrase_parameter_renders_in_every_language_without_failing(lang: Lang) -> None:
    stored = encode("fact.unread", fact="firewall", errors=[
        item("probe.error", cause="probe_command_not_found",
             detail="no firewall tool is installed (nft, iptables, ufw, firewall-cmd)"),
    ])  # fmt: skip
    comma = "、" if lang == "zh" else ", "  # the names, enumerated as the language does
    assert comma.join(["nft", "iptables", "ufw", "firewall-cmd"]) in render(stored, lang, BEIJING)
