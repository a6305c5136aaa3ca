"""Where a check's remedy is done on each OS, in English: the msgids of the catalogs.

The policy's remedy says what to achieve and is the company's to edit; it names no OS's tools,
since the same text goes to every device. These steps say where that is done on one OS, so a
Linux PC is never sent to Windows Security, nor a Mac to BitLocker. The words a person reads
come from the catalogs (`devposture.policy.catalogs`, context "steps.<check>.<os>"); the agent
shows them under the policy's remedy (`agent/employee/remediation.py`).
"""

from __future__ import annotations

from typing import Literal

OsName = Literal["linux", "windows", "macos"]

STEPS: dict[tuple[str, OsName], str] = {
    ("antivirus", "linux"): (
        "Install and run an antivirus, for example ClamAV: sudo apt install clamav clamav-"
        "freshclam (Fedora, RHEL: sudo dnf install clamav clamav-update), and keep the clamav-"
        "freshclam service running so that its signatures update."
    ),
    ("antivirus", "windows"): (
        "Open Windows Security > Virus & threat protection: turn on Real-time protection, then "
        "under Virus & threat protection updates choose Check for updates."
    ),
    ("antivirus", "macos"): (
        "Open the antivirus the company installed on this Mac, turn on real-time protection and"
        " update its signatures; if there is none, ask IT."
    ),
    ("firewall", "linux"): (
        "Turn the firewall on: sudo ufw enable (Ubuntu, Debian), or sudo systemctl enable --now"
        " firewalld (Fedora, RHEL). If firewalld runs and the reason names a zone that accepts"
        " all traffic, put that network in a filtering zone: sudo nmcli connection modify"
        " \"NETWORK\" connection.zone public, then connect to it again."
    ),
    ("firewall", "windows"): (
        "Open Windows Security > Firewall & network protection and turn the firewall on for "
        "every network (domain, private, public)."
    ),
    ("firewall", "macos"): (
        "Open System Settings > Network > Firewall and turn it on (macOS 12 and earlier: System"
        " Preferences > Security & Privacy > Firewall)."
    ),
    ("os-updates", "linux"): (
        "Open the system's updater (Ubuntu: Software Updater; UOS, Deepin: Control Center > "
        "Updates), or run sudo apt update && sudo apt upgrade (Ubuntu, Debian) or sudo dnf "
        "upgrade --refresh (Fedora, RHEL); restart when asked."
    ),
    ("os-updates", "windows"): (
        "Open Settings > Windows Update (Windows 10: Settings > Update & Security > Windows "
        "Update), choose Check for updates, install them all and restart when asked."
    ),
    ("os-updates", "macos"): (
        "Open System Settings > General > Software Update (macOS 12 and earlier: System "
        "Preferences > Software Update), install every update and restart when asked."
    ),
    ("public-wifi", "macos"): (
        "If the network name shows as hidden, allow devposture in System Settings > Privacy & "
        "Security > Location Services."
    ),
    ("chat-backup", "linux"): (
        "Put backups in an encrypted archive (for example 7z a -p -mhe=on backup.7z FOLDER), or"
        " keep them on a LUKS-encrypted disk."
    ),
    ("chat-backup", "windows"): (
        "Back up with desktop WeChat's Backup and Restore (Migrate and Backup in newer "
        "versions); encrypt the disk in Settings > Privacy & security > Device encryption "
        "(Windows 10: Settings > Update & Security > Device encryption), or with BitLocker."
    ),
    ("chat-backup", "macos"): (
        "Back up with WeChat for Mac's Backup and Restore; encrypt the disk in System Settings "
        "> Privacy & Security > FileVault (macOS 12 and earlier: System Preferences > Security "
        "& Privacy > FileVault)."
    ),
    ("chat-app-updates", "linux"): (
        "Install the latest WeChat from the app store (UOS, Deepin), linux.weixin.qq.com or "
        "your package manager; for WeCom, ask IT."
    ),
    ("chat-app-updates", "windows"): (
        "Use Check for updates in the app, or download it from pc.weixin.qq.com (WeChat) or "
        "work.weixin.qq.com (WeCom)."
    ),
    ("chat-app-updates", "macos"): (
        "Update from the App Store, or download it from weixin.qq.com (WeChat) or "
        "work.weixin.qq.com (WeCom)."
    ),
}


def context(check_id: str, os_name: OsName) -> str:
    """The catalog context of one step."""
    return f"steps.{check_id}.{os_name}"


def every_message() -> list[tuple[str, str]]:
    """(context, English) of every step."""
    return [(context(c, o), english) for (c, o), english in STEPS.items()]
