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
"""

from __future__ import annotations

from agent.host import HostError
from agent.parsers import ParseError
from agent.parsers.windows.netsh_wlan import parse_wlan_interfaces
from agent.probes.outcome import FactOutcome, ProbeContext, ProbeFailure, code_of
from agent.probes.wifi_classify import current_session
from agent.probes.windows.commands import ANY_EXIT, run_text
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_WIFI
NETSH = ["netsh", "wlan", "show", "interfaces"]
_SOURCE = "netsh wlan"


def probe(ctx: ProbeContext) -> FactOutcome:
    try:
        report = parse_wlan_interfaces(run_text(ctx, NETSH, ANY_EXIT))
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
    seen: set[str] = set()
    for interface in report.interfaces:
        if not interface.connected or interface.ssid in seen:
            continue
        seen.add(interface.ssid)
        fact.sessions.append(
            current_session(ctx, interface.ssid, interface.security, interface.name)
        )
    return FactOutcome(fact)
