"""Wi-Fi on macOS: the Wi-Fi card and its current network from
`system_profiler SPAirPortDataType -json`.

No Wi-Fi card listed is the fact has_wifi_interface=false. A card that is off or not
associated has an interface and no session. The current association becomes one WifiSession
started now (the watcher carries sessions across reports), with vpn_up from the VPN fact
collected before this one, classified on the device by `wifi_classify.classify`.

When macOS hides the SSID (printed as "<redacted>" or left empty: the agent lacks Location
Services permission, osquery#8220), the network cannot be told: open, WEP and OWE networks are
still public whatever their name, every other one is NETWORK_CLASS_UNKNOWN with an empty
network_id (never trusted, never "other", never a hash of a placeholder), and a
PERMISSION_DENIED error for the "ssid" source says how to fix it. macOS gives no captive
portal signal a program can read without the name (the known-networks plist is keyed by it),
so captive_portal stays unset.
"""

from __future__ import annotations

from devposture.agent.parsers.macos.airport import parse_airport_json
from devposture.agent.probes.commands import SYSTEM_PROFILER_WIFI
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, error
from devposture.agent.probes.wifi_classify import HIDDEN_BY_MACOS, NetworkSignals, current_session
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_WIFI
PROFILER_TIMEOUT = 30.0
_REDACTED = (
    "macOS hid the Wi-Fi network name (the agent lacks Location Services permission), so "
    "the network could not be classified; allow the agent in System Settings > Privacy & "
    "Security > Location Services"
)


def probe(ctx: ProbeContext) -> FactOutcome:
    timeout = max(ctx.config.command_timeout, PROFILER_TIMEOUT)
    result = ctx.host.run(SYSTEM_PROFILER_WIFI, timeout)
    cards = parse_airport_json(result.stdout_text())
    fact = pb.WifiFact(has_wifi_interface=bool(cards))
    errors: list[pb.ProbeError] = []
    for card in cards:
        network = card.current
        if not card.associated or network is None:
            continue
        hidden = HIDDEN_BY_MACOS if network.ssid_redacted else ""
        signals = NetworkSignals(network.ssid, network.security, hidden_reason=hidden)
        fact.sessions.append(current_session(ctx, signals, card.name))
        if hidden:
            errors.append(error(FACT, pb.PROBE_ERROR_CODE_PERMISSION_DENIED, _REDACTED, "ssid"))
    return FactOutcome(fact, errors)
