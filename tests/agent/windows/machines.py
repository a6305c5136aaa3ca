"""Three replayed Windows machines, each assembled from real recordings (see the fixture
README for where every output comes from). Public recordings never cover one machine end to
end, so each machine is a composite of outputs from real machines of its kind.
"""

from __future__ import annotations

from devposture.agent.host import NetInterface
from devposture.agent.probes import commands as cmd
from devposture.agent.probes.windows import (
    chat_clients,
)
from tests.agent.windows.replay_windows import (
    CHINA,
    EN_US_CULTURE,
    PACIFIC,
    WindowsReplayHost,
    fixture,
    one_run,
    output,
)

REG_MISSING = 1
# manage-bde's exit status for 0x80041003 (WBEM_E_ACCESS_DENIED) as an unsigned DWORD, which is
# how Python reports Windows exit codes (PowerShell shows it signed: -2147217405).
ACCESS_DENIED_EXIT = 0x80041003


def healthy_english() -> WindowsReplayHost:
    """Defender on and current, firewall on in every profile, BitLocker on, a WireGuard VPN up,
    a WPA3 network, nothing pending from Windows Update: what a compliant laptop looks like."""
    host = WindowsReplayHost(homes=["C:/Users/alex"])
    host.record(
        cmd.SECURITY_CENTER, output("security_center/cim-antivirusproduct-defender-only.txt")
    )
    # The Defender run: Microsoft's docs for each part (en-US culture, Pacific time zone, status).
    host.record(
        cmd.DEFENDER,
        one_run(EN_US_CULTURE, PACIFIC, "defender/mpcomputerstatus-msdocs-healthy.txt"),
    )
    host.record(cmd.FIREWALL_PROFILES, output("firewall/netfirewallprofile-all-enabled.txt"))
    host.record(
        cmd.CONNECTION_PROFILES,
        output("connection_profile/netconnectionprofile-ethernet-public.txt"),
    )
    # Nothing pending: PowerShell 5.1 prints nothing when the search finds nothing. No public
    # recording of this command's empty answer exists, so the replay states it here.
    host.record(cmd.UPDATE_SEARCH, (0, b"", b""))
    host.record(cmd.HOTFIX, output("hotfix/get-hotfix-json-ws2022-cnquery-reserialized.txt"))
    host.record(cmd.REG_AU, output("reg_query/au-policy-scheduled-install.txt"))
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-en-win11-wpa3-h2e-two-adapters.txt"))
    host.record(cmd.IPCONFIG, output("ipconfig/all-en-wireguard-unknown-adapter.txt"))
    # Get-NetAdapter of another English machine (one Ethernet adapter up, no VPN listed): the
    # WireGuard tunnel is seen through ipconfig alone.
    host.record(cmd.NET_ADAPTERS, output("netadapter/list-en-c2-agent-vmware-one-up.txt"))
    host.record(cmd.MANAGE_BDE, output("manage_bde/status-en-26100-encrypted.txt"))
    no_chat_client_keys(host, "reg_query/not-found-en.txt")
    return host


def chinese() -> WindowsReplayHost:
    """Chinese Windows (console code page cp936): GBK netsh output, a UTF-16 Security Center
    listing, Defender with real-time protection off, a Windows 7 era host without the
    NetSecurity cmdlets, no AU policy key (Chinese error text), a Windows Update search that
    cannot reach its server, and manage-bde timing out."""
    host = WindowsReplayHost(console_encoding="cp936", homes=["C:/Users/li"])
    host.record(
        cmd.SECURITY_CENTER,
        output(
            "security_center/cim-antivirusproduct-bitdefender-and-defender.utf16le-bom-crlf.txt"
        ),
    )
    # No public printout of a zh-CN (Get-Culture).DateTimeFormat was found, so this run has the
    # China time zone (a real Get-TimeZone) and the zh-CN status, and no date pattern: the date
    # is then not read (a PARSE_ERROR), while the rest of Defender's status is.
    host.record(
        cmd.DEFENDER, one_run(CHINA, "defender/mpcomputerstatus-zh-cn-realtime-off.txt")
    )
    # Windows 7 has no Get-NetFirewallProfile/Get-NetConnectionProfile (NetSecurity arrived
    # with Windows 8). The real error text was not recorded, so the replay only makes the
    # calls fail, with no output.
    host.record(cmd.FIREWALL_PROFILES, (1, b"", b""))
    host.record(cmd.CONNECTION_PROFILES, (1, b"", b""))
    host.record(
        cmd.NETSH_FIREWALL,
        output("netsh_firewall/allprofiles-zh-win7-all-on.cp936-crlf.txt"),
    )
    # A failed search, exit 0: the script's all-null update on stdout and the COM error on
    # stderr, two recordings of failed searches (see the fixture README).
    host.record(
        cmd.UPDATE_SEARCH,
        (
            0,
            fixture("windows_update/search-json-failed-search-phantom.txt"),
            fixture("windows_update/search-stderr-8024401c.txt"),
        ),
    )
    host.record(cmd.HOTFIX, output("hotfix/get-hotfix-json-ws2019-cnquery.txt"))
    host.record(cmd.REG_AU, output("reg_query/not-found-zh.cp936-crlf.txt", REG_MISSING))
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-zh-win11-ax211-wpa2.cp936-crlf.txt"))
    host.record(cmd.IPCONFIG, output("ipconfig/all-en-win7-tap-disconnected-mojibake.txt"))
    # Windows 7 has no NetAdapter module either: the call fails (no output recorded), and
    # ipconfig, which was read, lists every adapter.
    host.record(cmd.NET_ADAPTERS, (1, b"", b""))
    host.record(cmd.MANAGE_BDE, output("manage_bde/status-en-26100-encrypted.txt"))
    host.timeouts.add(tuple(cmd.MANAGE_BDE))
    no_chat_client_keys(host, "reg_query/not-found-zh.cp936-crlf.txt")
    return host


def failing_english() -> WindowsReplayHost:
    """Defender not running (another product registered), firewall off in every profile
    including the active public one, updates left to a person and two security updates
    pending, no disk encryption, an open café network without VPN."""
    host = WindowsReplayHost(homes=["C:/Users/sam"])
    host.record(
        cmd.SECURITY_CENTER,
        output("security_center/cim-antivirusproduct-sentinelone-and-defender.txt"),
    )
    host.record(
        cmd.DEFENDER,
        one_run(EN_US_CULTURE, PACIFIC, "defender/mpcomputerstatus-not-running.txt"),
    )
    host.record(cmd.FIREWALL_PROFILES, output("firewall/netfirewallprofile-all-disabled.txt"))
    host.record(
        cmd.CONNECTION_PROFILES,
        output("connection_profile/netconnectionprofile-ja-three-networks.txt"),
    )
    host.record(cmd.UPDATE_SEARCH, output("windows_update/search-json-ws2019-six-pending.crlf.txt"))
    host.record(cmd.HOTFIX, output("hotfix/get-hotfix-json-ws2019-cnquery.txt"))
    host.record(cmd.REG_AU, output("reg_query/au-policy-notify-install.txt"))
    host.record(cmd.NETSH_WLAN, output("netsh_wlan/interfaces-fr-win11-ax201-open.txt"))
    host.record(cmd.IPCONFIG, output("ipconfig/all-en-win7-tap-disconnected-mojibake.txt"))
    # A Spanish Windows 10's adapters: OpenVPN's TAP adapter installed, down and disconnected.
    host.record(cmd.NET_ADAPTERS, output("netadapter/list-es-17763-tap-down-npcap.txt"))
    host.record(cmd.MANAGE_BDE, output("manage_bde/status-en-25267-three-volumes-decrypted.txt"))
    host.interfaces = [NetInterface("Ethernet", True)]
    no_chat_client_keys(host, "reg_query/not-found-en.txt")
    return host


def no_chat_client_keys(host: WindowsReplayHost, missing: str) -> None:
    """No WeChat or WeCom Uninstall key: reg's recorded "key not found" answer (exit 1) for
    each key agent.probes.windows.chat_clients queries; no install folder either."""
    for _, argv in chat_clients.UNINSTALL_QUERIES:
        host.record(argv, output(missing, REG_MISSING))
