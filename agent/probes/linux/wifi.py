"""Wi-Fi on Linux: wireless interfaces from /sys/class/net, the association from NetworkManager.

A wireless interface has a `wireless` (or `phy80211`) entry in /sys/class/net/<if>; none at all
is the fact has_wifi_interface=false. With one, nmcli tells whether it is connected and the
security of the access point in use (a name nmcli printed with "?", as it prints any character
the C locale cannot show, is read again from its bytes, and an empty security from the access
point's flags: parsers/nmcli.py). The current
association becomes one WifiSession started now (the agent's session log carries sessions
across reports). The network's name is classified on the device: only TRUSTED and PUBLIC
names leave it (see wifi_classify).

NetworkManager also says whether the device sits behind a captive portal (its connectivity
check: IP4-/IP6-CONNECTIVITY "portal"), a sign of a public hotspot whatever its name. That
answer is a second source: when it cannot be read the session is still reported, without the
portal signal, and an error for the "nmcli connectivity" source says why.
nmcli's error text is not copied into reports, because it can name a network.
"""

from __future__ import annotations

from dataclasses import replace

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.nmcli import (
    UNPRINTABLE,
    NmAccessPoint,
    details_in_use,
    parse_connectivity,
    parse_devices,
    parse_wifi_list,
    security_from_flags,
    wifi_security,
)
from devposture.agent.probes.commands import (
    NMCLI_AP_DETAILS,
    NMCLI_CONNECTIVITY,
    NMCLI_DEVICES,
    NMCLI_WIFI,
)
from devposture.agent.probes.outcome import (
    FactOutcome,
    ProbeContext,
    ProbeFailure,
    code_of,
    describe,
    source_error,
)
from devposture.agent.probes.wifi_classify import NetworkSignals, current_session
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_WIFI
_SYS = "/sys/class/net"
CONNECTIVITY_SOURCE = "nmcli connectivity"


def wireless_interfaces(ctx: ProbeContext) -> list[str]:
    names = ctx.host.list_dir(_SYS)
    return [
        name
        for name in names
        if any(ctx.host.exists(f"{_SYS}/{name}/{entry}") for entry in ("wireless", "phy80211"))
    ]


def _nmcli(ctx: ProbeContext, argv: tuple[str, ...]) -> str:
    try:
        return ctx.host.run(argv, ctx.config.command_timeout).stdout_text()
    except HostError as exc:
        raise ProbeFailure(code_of(exc), describe(exc, with_stderr=False), "nmcli") from exc


def captive_portals(ctx: ProbeContext, errors: list[pb.ProbeError]) -> dict[str, bool | None]:
    """Per device, whether NetworkManager saw a captive portal ({} when it cannot be read)."""
    try:
        result = ctx.host.run(NMCLI_CONNECTIVITY, ctx.config.command_timeout)
        return parse_connectivity(result.stdout_text())
    except (HostError, ParseError) as exc:
        errors.append(source_error(FACT, CONNECTIVITY_SOURCE, exc, with_stderr=False))
        return {}


def _needs_details(ap: NmAccessPoint) -> bool:
    """nmcli printed "?" for what the C locale cannot show (every Chinese name would read the
    same), or no security, which an open network and one nmcli has no word for share."""
    return UNPRINTABLE in ap.ssid or not ap.security.strip()


def _with_details(
    ap: NmAccessPoint, security: pb.WifiSecurity.ValueType, listing: str
) -> tuple[NmAccessPoint, pb.WifiSecurity.ValueType]:
    if not _needs_details(ap):
        return ap, security
    details = details_in_use(listing, ap.bssid)
    if UNPRINTABLE in ap.ssid:
        ap = replace(ap, ssid=details.ssid)
    if not ap.security.strip():
        security = security_from_flags(details)
    return ap, security


def probe(ctx: ProbeContext) -> FactOutcome:
    try:
        interfaces = wireless_interfaces(ctx)
    except HostError as exc:
        raise ProbeFailure(code_of(exc), f"cannot list network interfaces: {exc}", "sysfs") from exc
    fact = pb.WifiFact(has_wifi_interface=bool(interfaces))
    if not interfaces:
        return FactOutcome(fact)
    if not ctx.host.which("nmcli"):
        raise ProbeFailure(
            pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND,
            "a wireless interface exists but nmcli (NetworkManager) is not installed",
            "nmcli",
        )
    try:
        devices = parse_devices(_nmcli(ctx, NMCLI_DEVICES))
        connected = [d for d in devices if d.type == "wifi" and d.state.startswith("connected")]
        if not connected:
            return FactOutcome(fact)
        listing = _nmcli(ctx, NMCLI_WIFI)
        in_use = [(ap, wifi_security(ap.security)) for ap in parse_wifi_list(listing) if ap.in_use]
        if any(_needs_details(ap) for ap, _ in in_use):
            details = _nmcli(ctx, NMCLI_AP_DETAILS)
            in_use = [_with_details(ap, security, details) for ap, security in in_use]
    except ParseError as exc:
        raise ProbeFailure(pb.PROBE_ERROR_CODE_PARSE_ERROR, str(exc), "nmcli") from exc
    if not in_use:
        raise ProbeFailure(
            pb.PROBE_ERROR_CODE_NO_SOURCE,
            "Wi-Fi is connected but nmcli listed no access point in use",
            "nmcli",
        )
    errors: list[pb.ProbeError] = []
    device = connected[0].device
    portal = captive_portals(ctx, errors).get(device)
    seen: set[str] = set()
    for ap, security in in_use:
        if ap.ssid in seen:
            continue
        seen.add(ap.ssid)
        signals = NetworkSignals(ap.ssid, security, captive_portal=portal)
        fact.sessions.append(current_session(ctx, signals, device))
    return FactOutcome(fact, errors)
