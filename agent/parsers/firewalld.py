"""firewalld through `firewall-cmd --state`, `--get-default-zone` and `--list-all-zones`.

`--state` prints "running" (exit 0) or "not running" (exit 252); firewall-cmd writes every
answer with an exit code above 1 to stderr (`print_and_exit`), so "not running" is the last
line of stderr, after "Waiting on dbus connection..." when D-Bus was slow to answer (firewalld's
own regression test RHEL-186856). Without a system D-Bus it fails with "DBUS_ERROR: Failed to
connect", and firewalld cannot run without D-Bus, so that is also "not running". "failed"
(exit 251, firewalld in its failsafe configuration) is neither: unknown.

What firewalld does with inbound traffic is decided per zone, not by the zone's name: a zone's
target ("default" and %%REJECT%% reject, DROP drops, ACCEPT accepts what no rule refused) can be
changed (`--permanent --zone=public --set-target=ACCEPT`), and the interfaces a machine uses may
be bound to zones other than the default one (NetworkManager's connection.zone puts a Wi-Fi
connection in `trusted`). The zones that matter are the default zone, which also takes every
interface bound to no zone, and each zone with interfaces bound to it. Zones bound only to
source addresses are allow rules for those addresses, as a source-only rule is for nftables
and iptables, and are left out. So is Docker's zone "docker": Docker 20.10+ makes it and puts
the bridges it makes for its own containers there (docs.docker.com, "Integration with
firewalld"; real hosts list it with target ACCEPT); they carry no network the machine joins.

`--list-all-zones` prints each zone's runtime settings, the ones in force: `--get-target` is
refused without `--permanent` ("Option can be used only with --permanent.", exit 2, in every
firewall-cmd from 0.4.3 to 2.5), and the permanent target is not in force until a reload. The
output has had one form since firewalld 0.4.3 (command.py `print_zone_info`): a zone's name on
its own line ("public (active)"; "public (default, active)" since 2.1), then indented
"  key: value" lines, forward ports and rich rules each on a line of their own starting with a
tab (before 0.9 an empty one after "rich rules:"), zones separated by empty lines. Before
0.4.3 it printed no target: unknown, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

# Targets as firewall-cmd prints them (core/base.py ZONE_TARGETS; "default" is the runtime
# form of "{chain}_{zone}", "REJECT" what `--permanent --get-target` prints for %%REJECT%%).
_TARGET_ACTIONS = {
    "default": "reject", "%%REJECT%%": "reject", "REJECT": "reject", "DROP": "drop",
    "ACCEPT": "allow",
}  # fmt: skip
# A rich rule that refuses every packet that reaches it: no family, source, destination,
# service, port, protocol, log or limit, only an optional priority. NetworkManager's nm-shared
# zone and libvirt's zone end their ACCEPT target with `rule priority="32767" reject`.
_REFUSE_ALL = re.compile(r'rule(?: priority="?-?\d+"?)? (reject|drop)')
_HEADER = re.compile(r"(?P<name>\S+)(?: \((?P<marks>[^()]*)\))?")
# Docker's zone (see the module's docstring).
DOCKER_ZONE = "docker"
# Bounds of what one profile carries (the collector refuses more than 64 items in a list).
MAX_ZONES = 32
MAX_INTERFACES = 32


@dataclass(frozen=True)
class Zone:
    """One zone of `firewall-cmd --list-all-zones`, as printed."""

    name: str
    target: str = ""
    interfaces: tuple[str, ...] | None = None  # None: no "interfaces:" line
    rich_rules: tuple[str, ...] = field(default=())


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


def parse_zones(stdout: str) -> list[Zone]:
    """Every zone of `firewall-cmd --list-all-zones`, in the order printed."""
    blocks: list[tuple[str, dict[str, list[str]]]] = []
    key = ""
    for line in stdout.splitlines():
        if not line.strip():
            key = "" if not line.startswith("\t") else key
            continue
        if line.startswith("\t"):  # a forward port or a rich rule, under the key above
            if not blocks or not key:
                raise ParseError("firewall-cmd --list-all-zones: a tab line outside a zone")
            blocks[-1][1][key].append(line.strip())
        elif line.startswith(" "):
            if not blocks:
                raise ParseError("firewall-cmd --list-all-zones: settings before any zone")
            key, _, value = line.strip().partition(":")
            blocks[-1][1][key] = value.split()
        else:
            header = _HEADER.fullmatch(line.rstrip())
            if header is None:
                raise ParseError(f"firewall-cmd --list-all-zones: not a zone: {line!r}")
            blocks.append((header["name"], {}))
            key = ""
    if not blocks:
        raise ParseError("firewall-cmd --list-all-zones printed no zone")
    return [_zone(name, settings) for name, settings in blocks]


def _zone(name: str, settings: dict[str, list[str]]) -> Zone:
    target = settings.get("target", [])
    interfaces = settings.get("interfaces")
    rules = settings.get("rich rules", [])
    return Zone(
        name=name,
        target=" ".join(target),
        interfaces=tuple(interfaces) if interfaces is not None else None,
        rich_rules=tuple(" ".join(rule.split()) for rule in rules),
    )


def zone_action(zone: Zone) -> str:
    """What the zone does with inbound traffic its rules did not allow: "reject", "drop" or
    "allow". A target firewall-cmd did not print, or one it never prints, is a ParseError."""
    if not zone.target:
        raise ParseError(
            f"firewall-cmd --list-all-zones printed no target for zone {zone.name}"
            " (firewalld before 0.4.3)"
        )
    action = _TARGET_ACTIONS.get(zone.target)
    if action is None:
        raise ParseError(f"firewalld zone {zone.name}: unknown target {zone.target!r}")
    if action == "allow":
        refusing = [m[1] for m in map(_REFUSE_ALL.fullmatch, zone.rich_rules) if m is not None]
        if refusing:
            return refusing[0]
    return action


def zones_in_force(default_zone: str, zones: Sequence[Zone]) -> list[pb.FirewallZone]:
    """The zones networks reach the machine through (see the module's docstring), those that
    accept everything first, at most MAX_ZONES."""
    if default_zone not in {zone.name for zone in zones}:
        raise ParseError(f"firewalld's default zone {default_zone} is not in --list-all-zones")
    found: list[pb.FirewallZone] = []
    for zone in zones:
        if zone.interfaces is None:
            raise ParseError(f"firewall-cmd --list-all-zones: no interfaces line for {zone.name}")
        is_default = zone.name == default_zone
        if not is_default and (not zone.interfaces or zone.name == DOCKER_ZONE):
            continue
        found.append(
            pb.FirewallZone(
                name=zone.name,
                target=zone.target,
                default_inbound_action=zone_action(zone),
                interfaces=zone.interfaces[:MAX_INTERFACES],
                is_default=is_default,
            )
        )
    found.sort(key=lambda z: z.default_inbound_action != "allow")
    return found[:MAX_ZONES]


def firewalld_profile(
    running: bool, default_zone: str = "", zones: Sequence[Zone] = ()
) -> pb.FirewallProfile:
    """firewalld's profile: on when it runs and every zone in force refuses what its rules did
    not allow; its default inbound action is the default zone's."""
    profile = pb.FirewallProfile(name="firewalld", source="firewall-cmd")
    profile.active = running
    if not running:
        profile.enabled = False
        return profile
    in_force = zones_in_force(default_zone, zones)
    profile.zones.extend(in_force)
    profile.default_inbound_action = next(
        zone_action(zone) for zone in zones if zone.name == default_zone
    )
    profile.enabled = all(z.default_inbound_action != "allow" for z in in_force)
    return profile
