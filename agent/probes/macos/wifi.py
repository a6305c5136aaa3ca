"""Wi-Fi on macOS: the Wi-Fi card and its current network from
`system_profiler SPAirPortDataType -json`.

No Wi-Fi card listed is the fact has_wifi_interface=false. A card that is off or not
associated has an interface and no session. The current association becomes one WifiSession
started now (the watcher carries sessions across reports), with vpn_up from the VPN fact
collected before this one, classified on the device by `classify_network`.

When macOS redacts the SSID (no Location Services permission for the agent), the name is
unknown: the network is classified by its security alone (open, WEP and OWE networks are
public whatever their name), network_id stays empty for other networks rather than a hash
of a made-up name, and a PERMISSION_DENIED error for the "ssid" source says why.
"""

from __future__ import annotations

from agent.parsers.macos.airport import parse_airport_json
from agent.probes.outcome import FactOutcome, ProbeContext, error
from agent.probes.wifi_classify import current_session
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_WIFI
PROFILER_TIMEOUT = 30.0
_REDACTED = (
    "macOS redacted the Wi-Fi network name (the agent lacks Location Services permission); "
    "the network was classified by its security only"
)


def probe(ctx: ProbeContext) -> FactOutcome:
    timeout = max(ctx.config.command_timeout, PROFILER_TIMEOUT)
    result = ctx.host.run(["system_profiler", "SPAirPortDataType", "-json"], timeout)
    cards = parse_airport_json(result.stdout_text())
    fact = pb.WifiFact(has_wifi_interface=bool(cards))
    errors: list[pb.ProbeError] = []
    for card in cards:
        network = card.current
        if not card.associated or network is None:
            continue
        session = current_session(ctx, network.ssid, network.security, card.name)
        if network.ssid_redacted:
            errors.append(error(FACT, pb.PROBE_ERROR_CODE_PERMISSION_DENIED, _REDACTED, "ssid"))
            if session.classification == pb.NETWORK_CLASS_OTHER:
                session.network_id = ""  # not a hash of the placeholder "<redacted>"
        fact.sessions.append(session)
    return FactOutcome(fact, errors)
