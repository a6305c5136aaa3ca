"""firewalld through `firewall-cmd --state` and `firewall-cmd --get-default-zone`.

`--state` prints "running" (exit 0) or "not running" (exit 252); firewall-cmd writes every
answer with an exit code above 1 to stderr (`print_and_exit`), so "not running" is the last
line of stderr, after "Waiting on dbus connection..." when D-Bus was slow to answer (firewalld's
own regression test RHEL-186856). Without a system D-Bus it fails with "DBUS_ERROR: Failed to
connect", and firewalld cannot run without D-Bus, so that is also "not running". "failed"
(exit 251, firewalld in its failsafe configuration) is neither: unknown.

Zone targets follow firewalld.zone(5): "drop" drops, "block" rejects,
"trusted" accepts, every other predefined zone ("default" target) rejects unmatched inbound.
"""

from __future__ import annotations

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

_ZONE_ACTIONS = {"drop": "drop", "block": "reject", "trusted": "allow"}


def parse_firewalld_state(stdout: str, stderr: str = "") -> bool:
    """True when firewalld runs, False when it positively does not."""
    out = stdout.strip().lower()
    if out == "running":
        return True
    lines = [line.strip().lower() for line in stderr.splitlines() if line.strip()]
    if out == "not running" or (not out and lines[-1:] == ["not running"]):
        return False
    if "DBUS_ERROR" in stderr and "Failed to connect" in stderr:
        return False
    raise ParseError("firewall-cmd --state printed neither 'running' nor 'not running'")


def parse_default_zone(stdout: str) -> str:
    zone = stdout.strip()
    if not zone or len(zone.split()) != 1:
        raise ParseError("firewall-cmd --get-default-zone did not print one zone name")
    return zone


def firewalld_profile(running: bool, zone: str = "") -> pb.FirewallProfile:
    profile = pb.FirewallProfile(name="firewalld", source="firewall-cmd")
    profile.active = running
    if not running:
        profile.enabled = False
        return profile
    if zone:
        action = _ZONE_ACTIONS.get(zone, "reject")
        profile.default_inbound_action = action
        profile.enabled = action != "allow"
    return profile
