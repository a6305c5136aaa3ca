"""The Chinese proposed for the agent's phrases (devposture.policy.phrases), until the catalogs
hold their own: the tests that show what a Chinese reader sees word a phrase with the catalog's
msgstr when it has one, else with the one proposed here. Once every phrase is in the catalogs,
this module and the fixture that reads it can go.

No bracket inside a phrase that is shown in brackets (a probe's detail, a backup's evidence):
"缺少所需的工具（未安装任何防火墙工具，已查找：…）", not "（…（…））".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devposture.policy import phrases
from devposture.policy.catalogs import Lang, translate

PROPOSED = {
    "domain": "域网络",
    "private": "专用网络",
    "public": "公用网络",
    "application": "应用程序防火墙",
    "{tool} is not installed (not found on the search path)": "{tool} 未安装，搜索路径中找不到它",
    "{tool} could not be started: not found": "无法启动 {tool}：找不到该程序",
    "{tool} could not be started: permission denied": "无法启动 {tool}：权限不足",
    "{tool} did not finish within {seconds} s": "{tool} 在 {seconds} 秒内未完成",
    "{tool} exited with status {status}": "{tool} 运行失败，退出状态 {status}",
    "{tool} exited with status {status}: {output}": "{tool} 运行失败，退出状态 {status}：{output}",
    "{tool} was refused by Windows: {reason}": "Windows 拒绝运行 {tool}：{reason}",
    "{path} does not exist": "{path} 不存在",
    "{path} is a folder, not a file": "{path} 是文件夹，不是文件",
    "{path} is not a folder": "{path} 不是文件夹",
    "permission denied reading {path}": "无权读取 {path}",
    "permission denied listing {path}": "无权列出 {path} 的内容",
    "permission denied inspecting {path}": "无权查看 {path}",
    "no firewall tool is installed ({tools})": "未安装任何防火墙工具，已查找：{tools}",
    "no supported package manager is installed (apt-get, dnf)":
        "未安装支持的软件包管理器：apt-get 或 dnf",
    "dpkg-query is not installed: only dpkg's package database is read on Linux":
        "未安装 dpkg-query：在 Linux 上只读取 dpkg 的软件包数据库",
    "a wireless interface exists but nmcli (NetworkManager) is not installed":
        "有无线网卡，但未安装 NetworkManager 的 nmcli",
    "Wi-Fi is connected but nmcli listed no access point in use":
        "已连接无线网络，但 nmcli 没有列出正在使用的接入点",
    "cannot list network interfaces: {error}": "无法列出网络接口：{error}",
    "netsh wlan show interfaces: {error}": "运行 netsh wlan show interfaces 失败：{error}",
    "the WLAN AutoConfig service (wlansvc) is not running, so Windows cannot report Wi-Fi;"
    " start the service to read it":
        "WLAN AutoConfig 服务 wlansvc 未运行，Windows 无法报告无线网络；请启动该服务",
    "netsh needs location permission to read WLAN information (Windows 11 24H2); turn on"
    " location access for desktop apps":
        "Windows 11 24H2 上 netsh 需要位置权限才能读取无线网络信息；请为桌面应用打开位置访问权限",
    "ClamAV is installed but has no signature database": "已安装 ClamAV，但没有病毒库",
    "freshclam.conf sets no UpdateLogFile: freshclam's update state is not read":
        "freshclam.conf 未设置 UpdateLogFile，无法读取 freshclam 的更新状态",
    "freshclam's log holds no finished update attempt": "freshclam 的日志中没有已完成的更新记录",
    "XProtect.bundle was not found": "找不到 XProtect.bundle",
    "no antivirus source ran": "没有运行任何杀毒软件检测来源",
    "softwareupdate could not read Apple's update catalog: {detail}":
        "softwareupdate 无法读取 Apple 的更新目录：{detail}",
    "the Windows Update Agent search failed with {code} ({meaning})":
        "Windows 更新代理搜索更新失败，错误 {code}，{meaning}",
    "the Windows Update Agent search failed with {code}":
        "Windows 更新代理搜索更新失败，错误 {code}",
    "the Windows Update Agent search failed: it returned an update without UpdateID":
        "Windows 更新代理搜索更新失败：返回了一个没有 UpdateID 的更新",
    "the Windows Update Agent search failed: {detail}": "Windows 更新代理搜索更新失败：{detail}",
    "WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT: the update server timed out":
        "WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT：更新服务器响应超时",
    "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED: the proxy or update server name cannot be resolved":
        "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED：无法解析代理服务器或更新服务器的名称",
    "ERROR_WINHTTP_TIMEOUT: the connection to the update server timed out":
        "ERROR_WINHTTP_TIMEOUT：连接更新服务器超时",
    "ERROR_WINHTTP_NAME_NOT_RESOLVED: the update server name cannot be resolved":
        "ERROR_WINHTTP_NAME_NOT_RESOLVED：无法解析更新服务器的名称",
    "the Windows Update service is disabled": "Windows 更新服务已被禁用",
    "installed for one user only: the agent reads system-wide flatpak apps":
        "只为一个用户安装：客户端只读取系统级的 flatpak 应用",
    "Info.plist has no {key}": "Info.plist 中没有 {key}",
    "the Uninstall key names no folder and no version": "卸载信息中既没有文件夹也没有版本号",
    "{location} holds the launcher but no version folder":
        "{location} 中有启动程序，但没有版本文件夹",
    "no version folder in {location}": "{location} 中没有版本文件夹",
    "{reason}; the Uninstall key's DisplayVersion is not a version number":
        "{reason}；卸载信息中的 DisplayVersion 不是版本号",
    "real-time protection enabled but not available": "实时防护已开启但不可用",
    "real-time protection subsystem unavailable": "实时防护子系统不可用",
    "passive mode: detects but does not block or remediate": "被动模式：只检测，不拦截也不处理",
    "not licensed (not onboarded to a tenant)": "未授权：尚未加入组织的租户",
    "mdatp reports the product unhealthy": "mdatp 报告产品运行不正常",
    "empty file": "空文件",
    "no files to sample": "没有可抽样检查的文件",
    "unrecognised file header": "无法识别的文件头",
    "age encrypted file": "age 加密文件",
    "age encrypted file (armored)": "文本格式的 age 加密文件",
    "armored OpenPGP message (encrypted or only signed)":
        "文本格式的 OpenPGP 消息，可能已加密，也可能只是签名",
    "OpenPGP message starting with {packet}": "以{packet}开头的 OpenPGP 消息",
    "public-key encrypted session key": "公钥加密的会话密钥",
    "passphrase (symmetric-key) encrypted session key": "口令（对称密钥）加密的会话密钥",
    "integrity-protected encrypted data": "带完整性保护的加密数据",
    "AEAD encrypted data": "AEAD 加密数据",
    "compressed data (not encrypted)": "未加密的压缩数据",
    "SQLite format 3 header: plain database": "SQLite 3 文件头：未加密的数据库",
    "LUKS encrypted container": "LUKS 加密容器",
    "OpenSSL enc encrypted file": "OpenSSL enc 加密文件",
    "OpenSSL enc encrypted file (base64)": "OpenSSL enc 加密文件，base64 编码",
    "xz stream: compressed, not encrypted": "xz 压缩流：只压缩，未加密",
    "zstd frame: compressed, not encrypted": "zstd 压缩帧：只压缩，未加密",
    "LZ4 frame: compressed, not encrypted": "LZ4 压缩帧：只压缩，未加密",
    "lzip stream: compressed, not encrypted": "lzip 压缩流：只压缩，未加密",
    "bzip2 stream: compressed, not encrypted": "bzip2 压缩流：只压缩，未加密",
    "gzip stream: compressed, not encrypted": "gzip 压缩流：只压缩，未加密",
    "RAR archive: its encryption is not read": "RAR 压缩包：未检查是否加密",
    "7z archive: encryption not visible in its first bytes":
        "7z 压缩包：从开头的字节看不出是否加密",
    "7z archive with AES-256 encryption": "使用 AES-256 加密的 7z 压缩包",
    "7z archive without encryption": "未加密的 7z 压缩包",
    "7z archive with a compressed header: encryption of its contents not visible":
        "文件头已压缩的 7z 压缩包：看不出内容是否加密",
    "ZIP archive with WinZip AES encryption": "使用 WinZip AES 加密的 ZIP 压缩包",
    "ZIP archive with encrypted entries": "含加密条目的 ZIP 压缩包",
    "ZIP archive without encryption": "未加密的 ZIP 压缩包",
    "ZIP archive with an entry not encrypted ({count} read)":
        "ZIP 压缩包中有未加密的条目，已读取 {count} 个",
    "ZIP archive, all {count} entries encrypted": "ZIP 压缩包，全部 {count} 个条目均已加密",
    "ZIP archive: its first {count} entries encrypted, the rest not read":
        "ZIP 压缩包：前 {count} 个条目已加密，其余未读取",
    "ZIP archive: no file entry in its central directory": "ZIP 压缩包：中央目录中没有文件条目",
    "weak evidence: the first bytes look random (high entropy, no known header), as in"
    " SQLCipher or other encrypted files":
        "证据较弱：开头的字节看起来是随机的，熵高且没有已知文件头，与 SQLCipher 等加密文件相似",
    "base64 or hex text: encoded data, encrypted or not":
        "base64 或十六进制文本：编码过的数据，可能加密也可能未加密",
    "readable text: a plain export": "可读文本：未加密的导出文件",
    "{evidence}; only the first {count} files were counted":
        "{evidence}；只统计了前 {count} 个文件",
    "disk encryption could not be read": "无法读取磁盘加密情况",
    "no volume in the disk-encryption fact holds it": "磁盘加密信息中没有包含它的卷",
    "on volume {device} mounted at {mount}, whose encryption is unknown":
        "位于挂载在 {mount} 的卷 {device} 上，该卷是否加密未知",
    "on volume {device} mounted at {mount}, not encrypted":
        "位于挂载在 {mount} 的卷 {device} 上，该卷未加密",
    "on encrypted volume {device} mounted at {mount}": "位于挂载在 {mount} 的加密卷 {device} 上",
    "on {method} volume {device} mounted at {mount}":
        "位于挂载在 {mount} 的 {method} 加密卷 {device} 上",
    "{path}: this home folder cannot be read ({error}), so its chat backups are unknown: run"
    " the agent as its service (root)":
        "{path}：无法读取这个主文件夹（{error}），其中的聊天记录备份情况未知：请以服务方式（root）"
        "运行客户端",
    "{path}: the moved data folder it names is unknown: {reason}":
        "{path}：无法确定它指向的已移动数据文件夹：{reason}",
    "{count} older backup set(s) not reported": "另有 {count} 组较早的备份未上报",
}  # fmt: skip


@pytest.fixture
def phrases_in_chinese(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The phrases in Chinese: the catalog's word where it has one, else the proposal."""

    def chinese_first(lang: Lang, context: str, english: str) -> str:
        said = translate(lang, context, english)
        if lang == "zh" and context == phrases.CONTEXT and said == english:
            return PROPOSED.get(english, english)
        return said

    monkeypatch.setattr(phrases, "translate", chinese_first)
    phrases._worded.cache_clear()  # results worded with the real catalogs
    yield
    phrases._worded.cache_clear()
