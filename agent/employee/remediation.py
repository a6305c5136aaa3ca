"""What to do on *this* computer, per check and per OS, in Chinese and English.

The policy's remedy (in every verdict) says what to achieve and is the company's to edit; it
names no OS's tools, since the same text goes to every device. These steps say where that is
done on this OS, so a Linux PC is never sent to Windows Security or Microsoft Defender, nor a
Mac to BitLocker. A check without steps for an OS shows the policy's remedy alone.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from devposture.agent.employee.language import Lang

OsName = Literal["linux", "windows", "macos"]


@dataclass(frozen=True)
class Steps:
    zh: str
    en: str

    def text(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


def this_os(platform: str = sys.platform) -> OsName:
    if platform == "win32":
        return "windows"
    return "macos" if platform == "darwin" else "linux"


STEPS: dict[tuple[str, OsName], Steps] = {
    ("antivirus", "linux"): Steps(
        "安装并运行杀毒软件,例如 ClamAV:sudo apt install clamav clamav-freshclam"
        "(Fedora、RHEL:sudo dnf install clamav clamav-update),"
        "并让 clamav-freshclam 服务保持运行,病毒库才会更新。",
        "Install and run an antivirus, for example ClamAV: sudo apt install clamav"
        " clamav-freshclam (Fedora, RHEL: sudo dnf install clamav clamav-update), and keep the"
        " clamav-freshclam service running so that its signatures update.",
    ),
    ("antivirus", "windows"): Steps(
        "打开 Windows 安全中心 > 病毒和威胁防护:开启“实时保护”,"
        "再在“病毒和威胁防护更新”中点“检查更新”。",
        "Open Windows Security > Virus & threat protection: turn on Real-time protection, then"
        " under Virus & threat protection updates choose Check for updates.",
    ),
    ("antivirus", "macos"): Steps(
        "打开公司为这台 Mac 安装的杀毒软件,开启实时防护并更新病毒库;没有安装的,请联系 IT。",
        "Open the antivirus the company installed on this Mac, turn on real-time protection and"
        " update its signatures; if there is none, ask IT.",
    ),
    ("firewall", "linux"): Steps(
        "打开防火墙:sudo ufw enable(Ubuntu、Debian),或 sudo systemctl enable --now firewalld"
        "(Fedora、RHEL)。",
        "Turn the firewall on: sudo ufw enable (Ubuntu, Debian), or sudo systemctl enable --now"
        " firewalld (Fedora, RHEL).",
    ),
    ("firewall", "windows"): Steps(
        "打开 Windows 安全中心 > 防火墙和网络保护,为每种网络(域、专用、公用)打开防火墙。",
        "Open Windows Security > Firewall & network protection and turn the firewall on for"
        " every network (domain, private, public).",
    ),
    ("firewall", "macos"): Steps(
        "打开 系统设置 > 网络 > 防火墙,开启防火墙。",
        "Open System Settings > Network > Firewall and turn it on.",
    ),
    ("os-updates", "linux"): Steps(
        "sudo apt update && sudo apt upgrade(Ubuntu、Debian),或 sudo dnf upgrade --refresh"
        "(Fedora、RHEL);提示需要时重启。",
        "sudo apt update && sudo apt upgrade (Ubuntu, Debian), or sudo dnf upgrade --refresh"
        " (Fedora, RHEL); restart when asked.",
    ),
    ("os-updates", "windows"): Steps(
        "打开 设置 > Windows 更新,点“检查更新”,安装全部更新,按提示重启。",
        "Open Settings > Windows Update, choose Check for updates, install them all and restart"
        " when asked.",
    ),
    ("os-updates", "macos"): Steps(
        "打开 系统设置 > 通用 > 软件更新,安装全部更新,按提示重启。",
        "Open System Settings > General > Software Update, install every update and restart"
        " when asked.",
    ),
    ("public-wifi", "macos"): Steps(
        "若显示“网络名称被隐藏”,请在 系统设置 > 隐私与安全性 > 定位服务 中"
        "允许 devposture 读取网络名称。",
        "If the network name shows as hidden, allow devposture in System Settings > Privacy &"
        " Security > Location Services.",
    ),
    ("chat-backup", "linux"): Steps(
        "把备份放进加密压缩包(例如 7z a -p -mhe=on 备份.7z 备份文件夹),"
        "或保存在 LUKS 加密的磁盘上。",
        "Put backups in an encrypted archive (for example 7z a -p -mhe=on backup.7z FOLDER), or"
        " keep them on a LUKS-encrypted disk.",
    ),
    ("chat-backup", "windows"): Steps(
        "在电脑版微信中用“备份与恢复”(新版为“迁移与备份”)备份;"
        "加密磁盘:设置 > 隐私和安全性 > 设备加密(或 BitLocker)。",
        "Back up with desktop WeChat's Backup and Restore (Migrate and Backup in newer"
        " versions); encrypt the disk in Settings > Privacy & security > Device encryption (or"
        " BitLocker).",
    ),
    ("chat-backup", "macos"): Steps(
        "在 Mac 版微信中用“备份与恢复”备份;加密磁盘:系统设置 > 隐私与安全性 > 文件保险箱。",
        "Back up with WeChat for Mac's Backup and Restore; encrypt the disk in System Settings >"
        " Privacy & Security > FileVault.",
    ),
    ("chat-app-updates", "linux"): Steps(
        "从 linux.weixin.qq.com 或软件包管理器安装最新版微信;企业微信请联系 IT。",
        "Install the latest WeChat from linux.weixin.qq.com or your package manager; for WeCom,"
        " ask IT.",
    ),
    ("chat-app-updates", "windows"): Steps(
        "在应用内点“检查更新”,或从 pc.weixin.qq.com(微信)、work.weixin.qq.com(企业微信)下载安装。",
        "Use Check for updates in the app, or download it from pc.weixin.qq.com (WeChat) or"
        " work.weixin.qq.com (WeCom).",
    ),
    ("chat-app-updates", "macos"): Steps(
        "从 App Store 更新,或从 weixin.qq.com(微信)、work.weixin.qq.com(企业微信)下载安装。",
        "Update from the App Store, or download it from weixin.qq.com (WeChat) or"
        " work.weixin.qq.com (WeCom).",
    ),
}


def steps_for(check_id: str, os_name: OsName) -> Steps | None:
    return STEPS.get((check_id, os_name))
