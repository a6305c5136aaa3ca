"""Every command the agent's probes run, in one place, for a reviewer to read whole.

An agent that IT installs on every employee's computer, running as root or LocalSystem, must be
auditable for what it executes (insights-core's habit: its specs are one list). The probes take
their argv from here and from nowhere else; `DECLARED` is the whole list, each command with the
system it runs on and what the agent learns from it. The agent's host refuses anything not
listed before it starts a process (`agent/host/live.py`, given `is_declared`), and the
tests' replaying host does the same, so this list cannot fall behind the code.

Nothing here changes the machine: every command reads (apt and dnf simulate or read their
caches, `-C`; nmcli lists without rescanning). `rpm -q` creates an empty database where it finds
none (Debian's rpm, in `~/.rpmdb`), so it runs only where dpkg does not own rpm
(agent/probes/linux/chat_packages.py). Three have a part that varies, declared with the shape it
must have: the freshclam.conf found (one of three paths), an app bundle's Info.plist and a chat
app's uninstall key.

Commands run elsewhere are declared in their own modules: at install time,
`agent/windows/install_commands.py` and the macOS package's scripts; the desktop notifications,
`agent/notify/commands.py`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from devposture.agent.parsers.dpkg_query import FORMAT as DPKG_FORMAT
from devposture.agent.parsers.nmcli import (
    CONNECTIVITY_FIELDS,
    DETAIL_FIELDS,
    DEVICE_FIELDS,
    WIFI_FIELDS,
)
from devposture.agent.parsers.rpm_query import FORMAT as RPM_FORMAT

LINUX, MACOS, WINDOWS = "linux", "macos", "windows"

# --- Linux ---------------------------------------------------------------------------------

NFT_RULESET = ("nft", "-j", "list", "ruleset")
IPTABLES_RULES = ("iptables", "-S")
IPTABLES_VERSION = ("iptables", "-V")
IPTABLES_LEGACY_RULES = ("iptables-legacy", "-S")
# IPv6's rules: `iptables -S` shows IPv4 alone (ip6tables ships in iptables' own package).
IP6TABLES_RULES = ("ip6tables", "-S")
# ip6tables is an alternative of its own (Debian: `update-alternatives --set ip6tables ...`).
IP6TABLES_VERSION = ("ip6tables", "-V")
IP6TABLES_LEGACY_RULES = ("ip6tables-legacy", "-S")
UFW_STATUS = ("ufw", "status", "verbose")
FIREWALLD_STATE = ("firewall-cmd", "--state")
FIREWALLD_DEFAULT_ZONE = ("firewall-cmd", "--get-default-zone")
# Runtime settings of every zone (the ones in force): each one's target and interfaces.
FIREWALLD_ZONES = ("firewall-cmd", "--list-all-zones")
LSBLK = ("lsblk", "-J", "-o", "NAME,TYPE,FSTYPE,FSVER,MOUNTPOINTS,PKNAME")
# util-linux before 2.37 knows neither FSVER nor MOUNTPOINTS.
LSBLK_OLD = ("lsblk", "-J", "-o", "NAME,TYPE,FSTYPE,MOUNTPOINT,PKNAME")
# ZFS' own encryption of every file system dataset (not snapshots), run only when a mount is of
# type zfs: a dataset is no block device, lsblk cannot tell (agent/parsers/zfs_get.py).
ZFS_ENCRYPTION = ("zfs", "get", "-t", "filesystem", "encryption,keystatus")
NMCLI_DEVICES = ("nmcli", "-t", "-f", ",".join(DEVICE_FIELDS), "device")
NMCLI_WIFI = ("nmcli", "-t", "-f", ",".join(WIFI_FIELDS), "device", "wifi", "list", "--rescan",
              "no")  # fmt: skip
NMCLI_CONNECTIVITY = ("nmcli", "-t", "-f", ",".join(CONNECTIVITY_FIELDS), "device")
# The names' bytes and the security flags, asked only when nmcli printed the name in use with
# "?" (it cannot print other characters in the C locale the agent runs it in) or its security
# empty (open, or a key management that nmcli has no word for).
NMCLI_AP_DETAILS = ("nmcli", "-t", "-f", ",".join(DETAIL_FIELDS), "device", "wifi", "list",
                    "--rescan", "no")  # fmt: skip
# Chat apps' Debian packages: WeChat's, and Deepin's and UOS's builds of WeChat and WeCom.
WECHAT_PACKAGES = ("wechat", "wechat-beta", "com.tencent.wechat", "com.qq.weixin.deepin")
WECOM_PACKAGES = ("com.qq.weixin.work.deepin", "deepin.com.weixin.work")
# Chat apps' rpm packages: Tencent's own rpm of WeChat (`wechat`), OpenCloudOS's 2024 beta, and
# a Fedora build service project's WeChat and WeCom under deepin-wine (docs/chat-clients.md).
WECHAT_RPMS = ("wechat", "wechat-beta", "fedora-deepin-wechat", "fedora-deepin-wechat-wine6")
WECOM_RPMS = ("fedora-deepin-wework", "fedora-deepin-wework-wine6")
# Each database is also asked for the two package managers: the one that lists its own is this
# system's database, and dpkg listing rpm means rpm is Debian's (agent/probes/linux/chat_packages).
PACKAGE_MANAGERS = ("dpkg", "rpm")
DPKG_QUERY = ("dpkg-query", "-W", f"-f={DPKG_FORMAT}", *PACKAGE_MANAGERS, *WECHAT_PACKAGES,
              *WECOM_PACKAGES)  # fmt: skip
RPM_QUERY = ("rpm", "-q", "--queryformat", RPM_FORMAT, "rpm", *WECHAT_RPMS, *WECOM_RPMS)
FLATPAK_LIST = ("flatpak", "list")
# Every pending update, with the archives it comes from: `dist-upgrade`, since `upgrade`
# keeps back an update that needs a new package (a kernel's security update), and held and
# phased ones included, since apt lists a kept-back package by name only and its security
# updates went uncounted (a false "no security update pending"). Simulated: nothing changes.
APT_SIMULATE = (
    "apt-get", "-s", "-o", "Debug::NoLocking=1", "-o", "APT::Ignore-Hold=true",
    "-o", "APT::Get::Always-Include-Phased-Updates=true", "dist-upgrade",
)  # fmt: skip
APT_CONFIG = ("apt-config", "dump")
DNF_UPDATEINFO = ("dnf", "-q", "-C", "updateinfo", "list", "--security")
DNF_CHECK_UPDATE = ("dnf", "-q", "-C", "check-update")
FRESHCLAM_CONFS = ("/etc/clamav/freshclam.conf", "/etc/freshclam.conf",
                   "/usr/local/etc/freshclam.conf")  # fmt: skip
# Only the options the agent needs: freshclam.conf may also hold `HTTPProxyPassword`, and
# reading it whole would put that credential into every diagnostic bundle.
FRESHCLAM_OPTIONS = ("UpdateLogFile", "DatabaseDirectory", "Example")
_FRESHCLAM_GREP = ("grep", "-E", f"^[[:space:]]*({'|'.join(FRESHCLAM_OPTIONS)})([[:space:]]|$)")

# --- Linux and macOS -----------------------------------------------------------------------

MDATP_HEALTH = ("mdatp", "health")

# --- macOS ---------------------------------------------------------------------------------

SOCKETFILTERFW = "/usr/libexec/ApplicationFirewall/socketfilterfw"
SOCKETFILTERFW_STATE = (SOCKETFILTERFW, "--getglobalstate")
SCUTIL_VPNS = ("scutil", "--nc", "list")
FDESETUP_STATUS = ("fdesetup", "status")
SYSTEM_PROFILER_WIFI = ("system_profiler", "SPAirPortDataType", "-json")
SOFTWAREUPDATE_PREFS_DOMAIN = "/Library/Preferences/com.apple.SoftwareUpdate"
SOFTWAREUPDATE_PREFS = ("defaults", "read", SOFTWAREUPDATE_PREFS_DOMAIN)
SOFTWAREUPDATE_LIST = ("softwareupdate", "-l")
SOFTWAREUPDATE_HISTORY = ("softwareupdate", "--history")
BUNDLE_VERSION_KEY = "CFBundleShortVersionString"

# --- Windows -------------------------------------------------------------------------------

# Windows PowerShell 5.1 ships with every supported Windows; -NoProfile keeps a user's
# profile script out of the agent's runs, -NonInteractive makes a prompt fail instead of hang.
POWERSHELL: tuple[str, ...] = ("powershell", "-NoProfile", "-NonInteractive", "-Command")


def powershell(command: str) -> tuple[str, ...]:
    return (*POWERSHELL, command)


FIREWALL_PROFILES = powershell("Get-NetFirewallProfile -PolicyStore ActiveStore")
NETSH_FIREWALL = ("netsh", "advfirewall", "show", "allprofiles")
CONNECTION_PROFILES = powershell("Get-NetConnectionProfile")
NETSH_WLAN = ("netsh", "wlan", "show", "interfaces")
IPCONFIG = ("ipconfig", "/all")
# The adapters again, in the NetAdapter module's list view: property names and state words that
# no display language translates (agent/parsers/windows/netadapter.py). Hidden adapters too: a
# virtual NIC may be hidden from the Network Connections folder and still carry the traffic.
NET_ADAPTERS = powershell("Get-NetAdapter -IncludeHidden | Format-List")
MANAGE_BDE = ("manage-bde", "-status")
SECURITY_CENTER = powershell(
    "Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct"
)
# The culture's date patterns and the time zone first, in the same run, so that the dates of
# Get-MpComputerStatus can be read as this machine prints them (agent/probes/windows/antivirus).
DEFENDER = powershell("(Get-Culture).DateTimeFormat; Get-TimeZone; Get-MpComputerStatus")
HOTFIX = powershell(
    "Get-HotFix | Select-Object -Property Status, Description, HotFixId, Caption, InstalledOn, "
    "InstalledBy | ConvertTo-Json"
)
AU_KEY = r"HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU"
REG_AU = ("reg", "query", AU_KEY)
# Verbatim (tabs and line ends included) so that the encoded command is byte for byte the one
# whose outputs were recorded. It searches Windows Update's own catalog and installs nothing.
UPDATE_SEARCH_SCRIPT = (
    "\n"
    "$ProgressPreference='SilentlyContinue';\n"
    '$updateSession = new-object -com "Microsoft.Update.Session"\n'
    "$searcher=$updateSession.CreateupdateSearcher()"
    ".Search((\"IsInstalled=0 and Type='Software'\"))\n"
    "$updates = $searcher.Updates | ForEach-Object {\n"
    "\t$update = $_\n"
    "\t$value = New-Object psobject -Property @{\n"
    '\t\t"UpdateID" =  $update.Identity.UpdateID;\n'
    '\t\t"Title" = $update.Title\n'
    '\t\t"MsrcSeverity" = $update.MsrcSeverity\n'
    '\t\t"RevisionNumber" =  $update.Identity.RevisionNumber;\n'
    '\t\t"CategoryIDs" = @($update.Categories | % { $_.CategoryID })\n'
    '\t\t"SecurityBulletinIDs" = $update.SecurityBulletinIDs\n'
    '\t\t"RebootRequired" = $update.RebootRequired\n'
    '\t\t"KBArticleIDs" = $update.KBArticleIDs\n'
    '\t\t"CveIDs" = @($update.CveIDs)\n'
    "\t}\n"
    "\t$value\n"
    "}\n"
    "@($updates) | ConvertTo-Json"
)
UPDATE_SEARCH = (
    "powershell.exe",
    "-EncodedCommand",
    base64.b64encode(UPDATE_SEARCH_SCRIPT.encode("utf-16-le")).decode("ascii"),
)
UNINSTALL_VIEWS = (
    r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall",
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
)
# The uninstall keys' names of WeChat 3.x and Weixin 4.x, and of WeCom.
WECHAT_PRODUCT_CODES = ("WeChat", "Weixin")
WECOM_PRODUCT_CODES = ("企业微信",)


# --- the commands with a part that varies --------------------------------------------------


def freshclam_conf_grep(path: str) -> tuple[str, ...]:
    """The lines of freshclam.conf at `path` (one of FRESHCLAM_CONFS) the agent reads."""
    return (*_FRESHCLAM_GREP, path)


def bundle_version(bundle: str) -> tuple[str, ...]:
    """The version an app bundle (`/Applications/WeChat.app`) says it is."""
    return ("defaults", "read", f"{bundle}/Contents/Info.plist", BUNDLE_VERSION_KEY)


def uninstall_query(view: str, code: str) -> tuple[str, ...]:
    """A chat app's uninstall key, in one of the registry's two views (UNINSTALL_VIEWS)."""
    return ("reg", "query", f"{view}\\{code}")


# --- the list ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Varies:
    """A part of a command that varies, with the shape it must have (matched whole)."""

    shape: str
    means: str


@dataclass(frozen=True)
class Declared:
    """One command a probe may run: on which system, what the agent learns from it."""

    systems: tuple[str, ...]
    reads: str
    argv: tuple[str | Varies, ...]

    def matches(self, argv: Sequence[str]) -> bool:
        if len(argv) != len(self.argv):
            return False
        return all(
            re.fullmatch(part.shape, given) is not None if isinstance(part, Varies)
            else part == given
            for part, given in zip(self.argv, argv, strict=True)
        )  # fmt: skip


def _one_of(values: Sequence[str]) -> str:
    return "|".join(re.escape(value) for value in values)


_CHAT_CODES = WECHAT_PRODUCT_CODES + WECOM_PRODUCT_CODES
_UNINSTALL_KEYS = rf"({_one_of(UNINSTALL_VIEWS)})\\({_one_of(_CHAT_CODES)})"


DECLARED: tuple[Declared, ...] = (
    Declared((LINUX,), "firewall: nftables' rules", NFT_RULESET),
    Declared((LINUX,), "firewall: iptables' rules", IPTABLES_RULES),
    Declared((LINUX,), "firewall: whether iptables is the nf_tables variant", IPTABLES_VERSION),
    Declared((LINUX,), "firewall: the legacy iptables tables, when loaded", IPTABLES_LEGACY_RULES),
    Declared((LINUX,), "firewall: ip6tables' rules (IPv6), when IPv6 is in use", IP6TABLES_RULES),
    Declared((LINUX,), "firewall: whether ip6tables is the nf_tables variant", IP6TABLES_VERSION),
    Declared((LINUX,), "firewall: legacy ip6tables tables, when loaded", IP6TABLES_LEGACY_RULES),
    Declared((LINUX,), "firewall: ufw's state and defaults", UFW_STATUS),
    Declared((LINUX,), "firewall: whether firewalld runs", FIREWALLD_STATE),
    Declared((LINUX,), "firewall: firewalld's default zone", FIREWALLD_DEFAULT_ZONE),
    Declared((LINUX,), "firewall: firewalld's zones in force, their targets and interfaces",
             FIREWALLD_ZONES),
    Declared((LINUX,), "disk encryption: block devices and their file systems", LSBLK),
    Declared((LINUX,), "disk encryption: the same, on util-linux before 2.37", LSBLK_OLD),
    Declared((LINUX,), "disk encryption: ZFS datasets' own encryption and key status",
             ZFS_ENCRYPTION),
    Declared((LINUX,), "Wi-Fi: network devices and their state", NMCLI_DEVICES),
    Declared((LINUX,), "Wi-Fi: the access point in use (no new scan)", NMCLI_WIFI),
    Declared((LINUX,), "Wi-Fi: each device's connectivity (a captive portal)",
             NMCLI_CONNECTIVITY),
    Declared((LINUX,), "Wi-Fi: the bytes of a network's name nmcli could not print, and the "
             "security flags of one it printed no security for", NMCLI_AP_DETAILS),
    Declared((LINUX,), "chat apps: installed Debian packages' versions, and whether dpkg is "
             "this system's package manager", DPKG_QUERY),
    Declared((LINUX,), "chat apps: installed rpm packages' versions, and whether rpm is this "
             "system's package manager", RPM_QUERY),
    Declared((LINUX,), "chat apps: installed Flatpak apps' versions", FLATPAK_LIST),
    Declared((LINUX,), "OS updates: apt's pending updates (simulated)", APT_SIMULATE),
    Declared((LINUX,), "OS updates: apt's automatic update settings", APT_CONFIG),
    Declared((LINUX,), "OS updates: dnf's pending security advisories (cache only)",
             DNF_UPDATEINFO),
    Declared((LINUX,), "OS updates: dnf's pending updates (cache only)", DNF_CHECK_UPDATE),
    Declared((LINUX,), "antivirus: freshclam's update settings (its options only)",
             (*_FRESHCLAM_GREP, Varies(_one_of(FRESHCLAM_CONFS), "a freshclam.conf"))),
    Declared((LINUX, MACOS), "antivirus: Microsoft Defender for Endpoint's health",
             MDATP_HEALTH),
    Declared((MACOS,), "firewall: the application firewall's state", SOCKETFILTERFW_STATE),
    Declared((MACOS,), "VPN: the configured VPN services and their state", SCUTIL_VPNS),
    Declared((MACOS,), "disk encryption: FileVault's state", FDESETUP_STATUS),
    Declared((MACOS,), "Wi-Fi: the network in use and its security", SYSTEM_PROFILER_WIFI),
    Declared((MACOS,), "OS updates: automatic update settings", SOFTWAREUPDATE_PREFS),
    Declared((MACOS,), "OS updates: pending updates", SOFTWAREUPDATE_LIST),
    Declared((MACOS,), "OS updates: updates installed", SOFTWAREUPDATE_HISTORY),
    Declared((MACOS,), "chat apps: an app's version",
             ("defaults", "read", Varies(r"/.+\.app/Contents/Info\.plist", "an app's Info.plist"),
              BUNDLE_VERSION_KEY)),
    Declared((WINDOWS,), "firewall: each profile's state (the active policy)", FIREWALL_PROFILES),
    Declared((WINDOWS,), "firewall: the same, from netsh", NETSH_FIREWALL),
    Declared((WINDOWS,), "firewall and Wi-Fi: each connection's network category",
             CONNECTION_PROFILES),
    Declared((WINDOWS,), "Wi-Fi: the network in use and its security", NETSH_WLAN),
    Declared((WINDOWS,), "VPN: network adapters", IPCONFIG),
    Declared((WINDOWS,), "VPN: network adapters, their driver and state, in no display language",
             NET_ADAPTERS),
    Declared((WINDOWS,), "disk encryption: BitLocker's volumes", MANAGE_BDE),
    Declared((WINDOWS,), "antivirus: products registered with Security Center",
             SECURITY_CENTER),
    Declared((WINDOWS,), "antivirus: Defender's status, with the culture's date patterns",
             DEFENDER),
    Declared((WINDOWS,), "OS updates: installed hotfixes", HOTFIX),
    Declared((WINDOWS,), "OS updates: automatic update policy", REG_AU),
    Declared((WINDOWS,), "OS updates: pending updates from Windows Update (a search)",
             UPDATE_SEARCH),
    Declared((WINDOWS,), "chat apps: a chat app's uninstall key (its version)",
             ("reg", "query", Varies(_UNINSTALL_KEYS, "a chat app's uninstall key"))),
)


def is_declared(argv: Sequence[str]) -> bool:
    """Whether `argv` is one of DECLARED: the agent's host runs nothing else."""
    return any(declared.matches(argv) for declared in DECLARED)
