"""Firewall on macOS: the application firewall, `socketfilterfw --getglobalstate`.

It becomes one FirewallProfile named "application", always in force (active=True) because it
is the one firewall macOS ships on by default; enabled for State 1 and 2. Blocking all
incoming connections, where the output says so (parsers/macos/socketfilterfw.py), is
reported with default_inbound_action "drop"; State 0 lets everything in ("allow"); otherwise
the firewall decides per application, or the output does not say, so no single default
action is claimed. pf is not read: no real `pfctl -s info` recording was available.
Stealth mode has no field in the contract yet and is not read either.
"""

from __future__ import annotations

from devposture.agent.parsers.macos.socketfilterfw import parse_global_state
from devposture.agent.probes.commands import SOCKETFILTERFW_STATE
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.v1 import devposture_pb2 as pb


def probe(ctx: ProbeContext) -> FactOutcome:
    result = ctx.host.run(SOCKETFILTERFW_STATE, ctx.config.command_timeout)
    state = parse_global_state(result.stdout_text())
    profile = pb.FirewallProfile(
        name="application",
        enabled=state.enabled,
        active=True,
        default_inbound_action="allow" if not state.enabled else (
            "drop" if state.block_all else ""
        ),
        source="socketfilterfw",
    )
    return FactOutcome(pb.FirewallFact(enabled=state.enabled, profiles=[profile]))
