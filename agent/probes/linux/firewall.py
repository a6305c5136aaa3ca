"""Firewall on Linux: every backend that is installed, each read on its own.

Backends: nftables (`nft -j list ruleset`), iptables (`iptables -S`; when iptables is the
nf_tables variant, the legacy tables too if the kernel has them loaded), ufw (`ufw status
verbose`) and firewalld (`firewall-cmd --state`, then its default zone and its zones in force).
Each one read becomes a FirewallProfile; one that could not be read becomes a ProbeError for its
source.

The fact's `enabled` is true when any backend filters inbound traffic and leaves no network
card open (below), false only when every installed backend was read and none does (or a card
is open), and unset when some could not be read (reading nftables and iptables needs root).
ufw's status shows only ufw's own rules, which sit in iptables' INPUT chain behind whatever is
put ahead of them there: once `iptables -S` was read, ufw's profile is reported but does not
decide (`_layers`). One exception: when firewalld runs and a zone in force
accepts everything (parsers/firewalld.py), the fact is false whatever nftables or iptables
show, for what they show of firewalld is its own rules, and those accept that traffic (nft
reads a Wi-Fi in `trusted` as filtering: firewalld's table rejects what reaches its end). None
of the tools installed is COMMAND_NOT_FOUND: without them the agent cannot tell, and that is
not "disabled".
"""

from __future__ import annotations

from collections.abc import Callable

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.firewalld import (
    firewalld_profile,
    parse_default_zone,
    parse_firewalld_state,
    parse_zones,
)
from devposture.agent.parsers.inbound import InboundReading
from devposture.agent.parsers.iptables import read_iptables_s
from devposture.agent.parsers.nft import read_nft_json
from devposture.agent.parsers.ufw import read_ufw_status
from devposture.agent.probes.commands import (
    FIREWALLD_DEFAULT_ZONE,
    FIREWALLD_STATE,
    FIREWALLD_ZONES,
    IPTABLES_LEGACY_RULES,
    IPTABLES_RULES,
    IPTABLES_VERSION,
    NFT_RULESET,
    UFW_STATUS,
)
from devposture.agent.probes.outcome import FactOutcome, ProbeContext, ProbeFailure, source_error
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_FIREWALL
ANY_EXIT = frozenset(range(256))
# The legacy iptables kernel tables exist only when the ip_tables module is loaded; listing
# them would load it, so the agent looks first.
_LEGACY_TABLES = "/proc/net/ip_tables_names"
_SYS = "/sys/class/net"

Reader = Callable[[ProbeContext], list[InboundReading]]


def _nft(ctx: ProbeContext) -> list[InboundReading]:
    result = ctx.host.run(NFT_RULESET, ctx.config.command_timeout)
    return [read_nft_json(result.stdout_text())]


def _iptables(ctx: ProbeContext) -> list[InboundReading]:
    timeout = ctx.config.command_timeout
    profiles = [read_iptables_s(ctx.host.run(IPTABLES_RULES, timeout).stdout_text())]
    version = ctx.host.run(IPTABLES_VERSION, timeout).stdout_text()
    if (
        "nf_tables" in version
        and ctx.host.which("iptables-legacy")
        and ctx.host.exists(_LEGACY_TABLES)
    ):
        legacy = ctx.host.run(IPTABLES_LEGACY_RULES, timeout).stdout_text()
        profiles.append(read_iptables_s(legacy, "iptables-legacy", "iptables-legacy"))
    return profiles


def _ufw(ctx: ProbeContext) -> list[InboundReading]:
    result = ctx.host.run(UFW_STATUS, ctx.config.command_timeout)
    return [read_ufw_status(result.stdout_text())]


def _firewalld(ctx: ProbeContext) -> list[InboundReading]:
    """firewalld, read by its zones (its profile filters every interface or lets a zone's in,
    which the probe judges first); its rules are read through nft."""
    timeout = ctx.config.command_timeout
    state = ctx.host.run(FIREWALLD_STATE, timeout, ok_codes=ANY_EXIT)
    if not parse_firewalld_state(state.stdout_text(), state.stderr_text()):
        return [InboundReading(firewalld_profile(False))]
    default_zone = parse_default_zone(ctx.host.run(FIREWALLD_DEFAULT_ZONE, timeout).stdout_text())
    zones = parse_zones(ctx.host.run(FIREWALLD_ZONES, timeout).stdout_text())
    return [InboundReading(firewalld_profile(True, default_zone, zones))]


def _cards(ctx: ProbeContext) -> list[str] | None:
    """This computer's network cards (see the module's docstring), or None when they cannot
    be listed."""
    try:
        names = ctx.host.list_dir(_SYS)
        return [n for n in names if n != "lo" and ctx.host.exists(f"{_SYS}/{n}/device")]
    except HostError:
        return None


def _open_cards(ctx: ProbeContext, readings: list[InboundReading]) -> list[pb.FirewallProfile]:
    """A profile for each card whose new connections no backend filters."""
    sources = ",".join(r.profile.source for r in readings if r.profile.enabled)
    return [
        pb.FirewallProfile(name=card, source=sources, enabled=False, active=True,
                           default_inbound_action="allow")
        for card in _cards(ctx) or ()
        if not any(reading.filters(card) for reading in readings)
    ]  # fmt: skip


def _firewalld_lets_a_network_in(profile: pb.FirewallProfile) -> bool:
    """firewalld runs and one of its zones in force accepts everything."""
    return (
        profile.name == "firewalld" and profile.active
        and any(zone.default_inbound_action == "allow" for zone in profile.zones)
    )  # fmt: skip


def _layers(readings: list[InboundReading]) -> list[InboundReading]:
    """The readings that each stand for rules a packet must pass. ufw's status shows ufw's own
    rules only, and they live in iptables' INPUT chain, behind whatever comes first there (an
    ACCEPT inserted ahead of ufw's chains, Tailscale's ts-input): once `iptables -S` was read,
    which shows that chain whole, ufw's profile is reported but does not decide."""
    if any(r.profile.source == "iptables" for r in readings):
        return [r for r in readings if r.profile.source != "ufw"]
    return readings


BACKENDS: tuple[tuple[str, Reader], ...] = (
    ("nft", _nft),
    ("iptables", _iptables),
    ("ufw", _ufw),
    ("firewall-cmd", _firewalld),
)


def probe(ctx: ProbeContext) -> FactOutcome:
    readings: list[InboundReading] = []
    errors: list[pb.ProbeError] = []
    installed = [(tool, read) for tool, read in BACKENDS if ctx.host.which(tool)]
    if not installed:
        tools = ", ".join(tool for tool, _ in BACKENDS)
        raise ProbeFailure(
            pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND, f"no firewall tool is installed ({tools})"
        )
    for tool, read in installed:
        try:
            readings.extend(read(ctx))
        except (HostError, ParseError) as exc:
            errors.append(source_error(FACT, tool, exc))
    if not readings:
        return FactOutcome(None, errors)
    profiles = [reading.profile for reading in readings]
    fact = pb.FirewallFact(profiles=profiles)
    layers = _layers(readings)
    if any(_firewalld_lets_a_network_in(p) for p in profiles):
        fact.enabled = False
    elif any(layer.profile.enabled for layer in layers):
        open_cards = _open_cards(ctx, layers)
        fact.profiles.extend(open_cards)
        if not open_cards:
            fact.enabled = True
        elif not errors:
            fact.enabled = False
    elif not errors:
        fact.enabled = False
    return FactOutcome(fact, errors)
