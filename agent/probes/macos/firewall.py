"""Firewall on macOS: the application firewall, `socketfilterfw --getglobalstate`.

It becomes one FirewallProfile named "application", always in force (active=True) because it
is the one firewall macOS ships on by default; enabled for State 1 and 2. State 2 ("block all
incoming connections") is the strictest setting and reported with default_inbound_action
"drop"; State 0 lets everything in ("allow"); State 1 decides per application, so no single
default action is claimed. pf is not read: no real `pfctl -s info` recording was available.
Stealth mode has no field in the contract yet and is not read either.
"""

from __future__ import annotations

from devposture.agent.parsers.macos.socketfilterfw import parse_global_state
from devposture.agent.probes.outcome import FactOutcome, ProbeContext
from devposture.v1 import devposture_pb2 as pb

SOCKETFILTERFW = "/usr/libexec/ApplicationFirewall/socketfilterfw"
_DEFAULT_ACTION = {0: "allow", 1: "", 2: "drop"}


def probe(ctx: ProbeContext) -> FactOutcome:
    result = ctx.host.run([SOCKETFILTERFW, "--getglobalstate"], ctx.config.command_timeout)
    state = parse_global_state(result.stdout_text())
    profile = pb.FirewallProfile(
        name="application",
        enabled=state.enabled,
        active=True,
        default_inbound_action=_DEFAULT_ACTION[state.state],
        source="socketfilterfw",
    )
    return FactOutcome(pb.FirewallFact(enabled=state.enabled, profiles=[profile]))
