"""Firewall on Linux: every backend that is installed, each read on its own.

Backends: nftables (`nft -j list ruleset`), iptables (`iptables -S`, and `ip6tables -S` for
IPv6; when either is the nf_tables variant, its legacy tables too if the kernel has their filter
table in use: below), ufw (`ufw status verbose`) and firewalld (`firewall-cmd --state`, then
its default zone and its zones in force).
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

IPv4 and IPv6 are judged apart (parsers/inbound.py): inbound traffic is filtered only when
every family in use is, each by a backend that shows it (nft and ufw both, `iptables -S` IPv4,
`ip6tables -S` IPv6, firewalld's zones both). A family no backend filters anywhere is sent as
a profile of its own, named "IPv4" or "IPv6" (enabled false, default "allow"), as an open card
is; the backends' profiles are judged on the families in use. IPv4 is always in use. IPv6 is
not in use when the kernel has none (no /proc/net/if_inet6: built without it, or booted with
`ipv6.disable=1`), or when it is switched off everywhere: `disable_ipv6` is 1 in every entry of
/proc/sys/net/ipv6/conf but loopback's, `all` and `default` (what the next card to appear
takes) included; writing `all` sets them all, and a card switched back on afterwards (its own
entry 0) puts IPv6 back in use. An IPv6 address alone does not decide: a laptop on an
IPv4-only network still has its link-local address, which a neighbour on a public Wi-Fi
reaches. When the sysctls cannot be read, IPv6 counts as in use. `ip6tables -S` is run with
`iptables -S` when IPv6 is in use; ip6tables missing or unreadable is an error for that
source, and leaves the IPv6 side unknown unless another backend (nft) shows it.

A card open in one family only, the other filtered on it (or unknown), is named with its
family, "wlp2s0 (IPv6)": a card open in every family in use is named alone, as before (interface
names hold no space, so the two never meet).

Legacy tables: when iptables (ip6tables) is the nf_tables variant, the legacy IPv4 (IPv6)
tables are read too, with `iptables-legacy -S` (`ip6tables-legacy -S`), when the kernel has their
filter table in use (/proc/net/ip_tables_names, ip6_tables_names): rules a legacy tool wrote
(Docker on the legacy backend, a host whose iptables alternative alone was switched) sit
there and every packet meets them too. A names file without `filter` (the module built in,
never used, or only Docker's nat table) is not listed: `-S` would make that table.
ip6tables is an alternative of its own: `iptables -V` says nothing of it.

iptables-nft's tables: the `filter` tables iptables-nft and ip6tables-nft write (`ip filter`,
`ip6 filter`) show in `nft -j list ruleset` too, their matches only by name (`xt conntrack`,
`xt addrtype`): nft cannot tell `--ctstate NEW -j ACCEPT` (every new connection let in) from
an accept of replies. When `iptables -S` (`ip6tables -S`) read them through the nf_tables
variant, they are judged from it alone and left out of nft's reading (parsers/nft.py,
`leave_out`); each rule is counted once. So iptables and ip6tables are read before nft, and
the profiles kept in BACKENDS' order.

At most MAX_PROFILES profiles (the collector's limit): the tools' and the open families' first,
then the open cards in their order; how many cards were left out is said in an error of
source CARDS_SOURCE, which no check reads (the cards kept already decide).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devposture.agent.host import HostError
from devposture.agent.parsers import ParseError
from devposture.agent.parsers.firewalld import (
    firewalld_profile,
    parse_default_zone,
    parse_firewalld_state,
    parse_zones,
)
from devposture.agent.parsers.inbound import BOTH, IPV4, IPV6, InboundReading
from devposture.agent.parsers.iptables import read_iptables_s
from devposture.agent.parsers.nft import read_nft_json
from devposture.agent.parsers.ufw import read_ufw_status
from devposture.agent.probes.commands import (
    FIREWALLD_DEFAULT_ZONE,
    FIREWALLD_STATE,
    FIREWALLD_ZONES,
    IP6TABLES_LEGACY_RULES,
    IP6TABLES_RULES,
    IP6TABLES_VERSION,
    IPTABLES_LEGACY_RULES,
    IPTABLES_RULES,
    IPTABLES_VERSION,
    NFT_RULESET,
    UFW_STATUS,
)
from devposture.agent.probes.outcome import (
    FactOutcome,
    ProbeContext,
    ProbeFailure,
    error,
    source_error,
)
from devposture.agent.probes.report_room import keep
from devposture.v1 import devposture_pb2 as pb

FACT = pb.FACT_FIREWALL
ANY_EXIT = frozenset(range(256))
MAX_PROFILES = 64  # the collector's DEFAULT_MAX_ITEMS, "devposture.v1.FirewallFact.profiles"
CARDS_SOURCE = "cards"
# The legacy kernel tables in use: listing one that is not would make it (or load its
# module), so the agent looks first.
_LEGACY_TABLES = {IPV4: "/proc/net/ip_tables_names", IPV6: "/proc/net/ip6_tables_names"}
_SYS = "/sys/class/net"
_IF_INET6 = "/proc/net/if_inet6"
_IPV6_CONF = "/proc/sys/net/ipv6/conf"


@dataclass
class _Run:
    """One run of the probe: the families in use, and those whose iptables-nft `filter` table
    iptables or ip6tables (the nf_tables variant) read whole, which nft's reading leaves out."""

    families: frozenset[str]
    nf_tables_read: set[str] = field(default_factory=set)


Reader = Callable[[ProbeContext, _Run], list[InboundReading]]


def families_in_use(ctx: ProbeContext) -> frozenset[str]:
    """IPv4, and IPv6 unless the kernel has none or it is off everywhere (see the module's
    docstring)."""
    try:
        if not ctx.host.exists(_IF_INET6):
            return frozenset({IPV4})
        names = [name for name in ctx.host.list_dir(_IPV6_CONF) if name != "lo"]
        values = [ctx.host.read_bytes(f"{_IPV6_CONF}/{name}/disable_ipv6", 16).strip()
                  for name in names]  # fmt: skip
    except HostError:
        return BOTH
    return frozenset({IPV4}) if names and all(v == b"1" for v in values) else BOTH


def _nft(ctx: ProbeContext, run: _Run) -> list[InboundReading]:
    result = ctx.host.run(NFT_RULESET, ctx.config.command_timeout)
    filters = {IPV4: ("ip", "filter"), IPV6: ("ip6", "filter")}
    return [read_nft_json(result.stdout_text(), {filters[f] for f in run.nf_tables_read})]


def _legacy_filter_in_use(ctx: ProbeContext, family: str, tool: str) -> bool:
    """Whether the legacy tool is there and the kernel's legacy filter table of `family` is in
    use (see the module's docstring)."""
    if not ctx.host.which(tool):
        return False
    try:
        names = ctx.host.read_bytes(_LEGACY_TABLES[family], 4096)
    except HostError:
        return False
    return b"filter" in names.split()


def _variant(
    ctx: ProbeContext,
    run: _Run,
    family: str,
    commands: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]],
) -> list[InboundReading]:
    """One family's tables through iptables or ip6tables: the rules `-S` shows and, when that
    is the nf_tables variant, the legacy tables in use besides."""
    rules, version, legacy = commands
    timeout = ctx.config.command_timeout
    readings = [read_iptables_s(ctx.host.run(rules, timeout).stdout_text(), rules[0], rules[0],
                                family)]  # fmt: skip
    nf_tables = "nf_tables" in ctx.host.run(version, timeout).stdout_text()
    if nf_tables and _legacy_filter_in_use(ctx, family, legacy[0]):
        text = ctx.host.run(legacy, timeout).stdout_text()
        readings.append(read_iptables_s(text, legacy[0], legacy[0], family))
    if nf_tables:
        run.nf_tables_read.add(family)
    return readings


def _iptables(ctx: ProbeContext, run: _Run) -> list[InboundReading]:
    return _variant(ctx, run, IPV4, (IPTABLES_RULES, IPTABLES_VERSION, IPTABLES_LEGACY_RULES))


def _ip6tables(ctx: ProbeContext, run: _Run) -> list[InboundReading]:
    """IPv6's rules, which `iptables -S` does not show; not asked when IPv6 is not in use."""
    if IPV6 not in run.families:
        return []
    return _variant(ctx, run, IPV6, (IP6TABLES_RULES, IP6TABLES_VERSION, IP6TABLES_LEGACY_RULES))


def _ufw(ctx: ProbeContext, run: _Run) -> list[InboundReading]:
    result = ctx.host.run(UFW_STATUS, ctx.config.command_timeout)
    return [read_ufw_status(result.stdout_text())]


def _firewalld(ctx: ProbeContext, run: _Run) -> list[InboundReading]:
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


def _open_cards(cards: list[str], layers: list[InboundReading], family: str) -> list[str]:
    """The cards whose new connections of `family` no backend that shows it filters."""
    shown = [layer for layer in layers if family in layer.families]
    return [card for card in cards if not any(r.filters(card, family) for r in shown)]


def _open_profile(name: str, layers: list[InboundReading]) -> pb.FirewallProfile:
    """A card or a family open to every new connection, with the backends that filter
    elsewhere."""
    sources = ",".join(r.profile.source for r in layers if r.profile.enabled)
    return pb.FirewallProfile(name=name, source=sources, enabled=False, active=True,
                              default_inbound_action="allow")  # fmt: skip


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


# (source, the tool whose presence runs it, reader): ip6tables ships with iptables, so its
# absence beside iptables is an error for the IPv6 side, never a silent pass.
BACKENDS: tuple[tuple[str, str, Reader], ...] = (
    ("nft", "nft", _nft),
    ("iptables", "iptables", _iptables),
    ("ip6tables", "iptables", _ip6tables),
    ("ufw", "ufw", _ufw),
    ("firewall-cmd", "firewall-cmd", _firewalld),
)
# What an error of a source leaves unknown (any other source's: both families).
_SCOPE = {"ip6tables": frozenset({IPV6})}


def _card_names(
    cards: list[str],
    open_cards: dict[str, list[str]],
    families: frozenset[str],
    open_families: list[str],
) -> list[str]:
    """Each card open in some filtered family: named alone when it is open in every family in
    use (a family open everywhere counts), else with the family it is open in."""
    names: list[str] = []
    for card in cards:
        open_in = [f for f, found in open_cards.items() if card in found]
        if not open_in:
            continue
        if families <= {*open_in, *open_families}:
            names.append(card)
        else:
            names.extend(f"{card} ({family})" for family in open_in)
    return names


def _judge(
    ctx: ProbeContext,
    layers: list[InboundReading],
    families: frozenset[str],
    errors: list[pb.ProbeError],
) -> tuple[bool | None, list[str]]:
    """Whether every family in use is filtered on every card (True), a path is known open
    (False), or the agent cannot tell (None); and the open families and cards to name."""
    unsure = frozenset().union(*(_SCOPE.get(e.source, BOTH) for e in errors))
    shown = {f: [layer for layer in layers if f in layer.families] for f in sorted(families)}
    filtered = [f for f, found in shown.items() if any(r.filters_anywhere(f) for r in found)]
    if not filtered:  # every family shown open: known unless an error hides a filter there
        return (False if any(shown[f] and f not in unsure for f in shown) else None), []
    cards = _cards(ctx) or []
    open_families = [f for f, found in shown.items() if found and f not in filtered]
    open_cards = {f: _open_cards(cards, layers, f) for f in filtered}
    named = [*open_families, *_card_names(cards, open_cards, families, open_families)]
    if any(f not in unsure for f in open_families) or any(
        open_cards[f] and f not in unsure for f in filtered
    ):
        return False, named  # a path known open
    if named or len(filtered) < len(families):
        return None, named
    return True, named


def _fitted(
    fact: pb.FirewallFact, tools: int, named: list[str], layers: list[InboundReading]
) -> list[pb.ProbeError]:
    """The open families and cards added to `fact` after its `tools` profiles, at most
    MAX_PROFILES in all (the tools' and the families' first); an error says how many cards
    were left out."""
    wanted = [*fact.profiles, *(_open_profile(name, layers) for name in named)]
    ranks = [0 if i < tools else 1 if p.name in (IPV4, IPV6) else 2 for i, p in enumerate(wanted)]
    kept, left_out = keep(range(len(wanted)), ranks.__getitem__, MAX_PROFILES)
    del fact.profiles[:]
    fact.profiles.extend(wanted[i] for i in kept)
    if not left_out:
        return []
    message = (
        f"{left_out} of {ranks.count(2)} open network cards left out of the report (the"
        f" collector takes {MAX_PROFILES} firewall profiles): the firewall tools and the IP"
        " families are kept first"
    )
    return [error(FACT, pb.PROBE_ERROR_CODE_UNSPECIFIED, message, CARDS_SOURCE)]


# iptables and ip6tables (iptables' package) are read before nft, whose reading leaves out
# what they read whole.
_READ_FIRST = frozenset(source for source, tool, _ in BACKENDS if tool == "iptables")


def probe(ctx: ProbeContext) -> FactOutcome:
    installed = [(source, read) for source, tool, read in BACKENDS if ctx.host.which(tool)]
    if not installed:
        tools = ", ".join(dict.fromkeys(tool for _, tool, _ in BACKENDS))
        raise ProbeFailure(
            pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND, f"no firewall tool is installed ({tools})"
        )
    run = _Run(families_in_use(ctx))
    found: dict[str, list[InboundReading]] = {}
    failed: dict[str, pb.ProbeError] = {}
    for source, read in sorted(installed, key=lambda one: one[0] not in _READ_FIRST):
        try:
            found[source] = read(ctx, run)
        except (HostError, ParseError) as exc:
            failed[source] = source_error(FACT, source, exc)
    readings = [r for source, _ in installed for r in found.get(source, [])]
    errors = [failed[source] for source, _ in installed if source in failed]
    if not readings:
        return FactOutcome(None, errors)
    fact = pb.FirewallFact(profiles=[reading.profile_for(run.families) for reading in readings])
    if any(_firewalld_lets_a_network_in(r.profile) for r in readings):
        fact.enabled = False
        return FactOutcome(fact, errors)
    layers = _layers(readings)
    judged, named = _judge(ctx, layers, run.families, errors)
    if judged is not None:
        fact.enabled = judged
    return FactOutcome(fact, errors + _fitted(fact, len(readings), named, layers))
