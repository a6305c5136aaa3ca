"""Wi-Fi on Windows: `netsh wlan show interfaces`, in the machine's language and code page.

"There is no wireless interface on the system." (or its translation) is the fact
has_wifi_interface=false. A stopped WLAN AutoConfig service (wlansvc) means Windows cannot say
anything about Wi-Fi: an error, not "no Wi-Fi". Windows 11 24H2 refuses WLAN queries from
programs without location permission: PERMISSION_DENIED. netsh's exit status carries nothing
its output does not, so every status is accepted and the output decides.

Each connected interface gives one session for its network, started now (the watcher carries
sessions across reports), with vpn_up from the VPN fact collected just before. The network's
name is classified on the device (agent.probes.wifi_classify): only trusted and public names
leave it. netsh's own messages are not copied into errors, because they can name a network.

Windows' own verdict on the network is its category (`Get-NetConnectionProfile`, the same
command the firewall probe runs): a connection filed as Public counts as a public network.
It is matched to netsh's interface by the interface's name (netsh's Name is the adapter's
InterfaceAlias). The category is a second source: when the cmdlet fails (PowerShell missing,
Windows 7 without the NetSecurity cmdlets) the sessions are reported without it and an error
for the "Get-NetConnectionProfile" source says why. An interface the cmdlet does not list
(Windows still identifying the network) has no category.

No captive-portal signal is read on Windows: the ones Windows has (the WinRT connectivity
level ConstrainedInternetAccess, the Network List Manager's WEBHIJACK flag) are documented but
no recorded output of a real machine showing them was found, and IPv4Connectivity
"LocalNetwork" is no such sign.
"""

from __future__ import annotations

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.windows.connection_profiles import categories_by_interface
from devposture.agent.parsers.windows.netsh_wlan import parse_wlan_interfaces
from devposture.agent.probes.commands import CONNECTION_PROFILES, NETSH_WLAN
from devposture.agent.probes.outcome import (
    FactOutcome,
    ProbeContext,
    ProbeFailure,
    code_of,
    source_error,
)
from devposture.agent.probes.wifi_classify import NetworkSignals, current_session
from devposture.agent.probes.windows.commands import ANY_EXIT, run_text
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_WIFI
_SOURCE = "netsh wlan"
_PROFILE_SOURCE = "Get-NetConnectionProfile"


def network_categories(ctx: ProbeContext, errors: list[pb.ProbeError]) -> dict[str, str]:
    """{interface name: Windows' network category} ({} when the cmdlet cannot be read)."""
    try:
        return categories_by_interface(run_text(ctx, CONNECTION_PROFILES))
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, _PROFILE_SOURCE, exc, with_stderr=False))
        return {}


def probe(ctx: ProbeContext) -> FactOutcome:
    try:
        report = parse_wlan_interfaces(run_text(ctx, NETSH_WLAN, ANY_EXIT))
    except (HostError, ParseError) as exc:
        raise ProbeFailure(code_of(exc), f"netsh wlan show interfaces: {exc}", _SOURCE) from exc
    if report.no_interface:
        return FactOutcome(pb.WifiFact(has_wifi_interface=False))
    if report.service_stopped:
        raise ProbeFailure(
            pb.PROBE_ERROR_CODE_COMMAND_FAILED,
            "the WLAN AutoConfig service (wlansvc) is not running, so Windows cannot report "
            "Wi-Fi; start the service to read it",
            _SOURCE,
        )
    if report.location_denied:
        raise ProbeFailure(
            pb.PROBE_ERROR_CODE_PERMISSION_DENIED,
            "netsh needs location permission to read WLAN information (Windows 11 24H2); "
            "turn on location access for desktop apps",
            _SOURCE,
        )
    fact = pb.WifiFact(has_wifi_interface=bool(report.interfaces))
    errors: list[pb.ProbeError] = []
    connected = [i for i in report.interfaces if i.connected]
    categories = network_categories(ctx, errors) if connected else {}
    seen: set[str] = set()
    for interface in connected:
        if interface.ssid in seen:
            continue
        seen.add(interface.ssid)
        signals = NetworkSignals(
            interface.ssid,
            interface.security,
            network_category=categories.get(interface.name, ""),
        )
        fact.sessions.append(current_session(ctx, signals, interface.name))
    return FactOutcome(fact, errors)
