"""Whether a ruleset filters new connections that arrive on a given interface, rules read in
order. Shared by the nft, iptables and ufw parsers, which each turn their tool's output into a
`Program` of `Rule`s.

The question is the clause's: does anything stop an outside caller from opening a connection
to this machine? So the walk follows one kind of packet, the first of a new connection from
another host to one of this host's own addresses, into every input base chain, through the
jumps and gotos, first rule first, and stops where every such packet has met a verdict:

- An accept that takes all of them (a bare `-j ACCEPT`, nft's `counter accept`, a jump into a
  chain that does) ends the walk: whatever follows, the drop policy included, is never
  reached. Limited to an interface (`-i wlp2s0 -j ACCEPT`), it ends the walk for packets that
  arrive there only.
- An accept that takes some of them (established and related connections do not count at
  all: a new connection is neither; loopback; a port; a source) lets the rest go on.
- A drop or reject of some or all of them, met before such an accept, is a filter. Drops that
  only a blocklist, a VPN's anti-spoofing rule, conntrack's INVALID state or packets for a
  loopback address meet are not (each parser says which: `Rule.hygiene`), and neither is a
  drop that only a rate decides (ufw's LIMIT, `-m limit`, `-m recent --hitcount`): it lets
  every connection in at a normal rate.
- A match the agent cannot read (iptables-nft's matches, which nft shows only by name:
  addrtype, recent, icmp ...) narrows its rule without saying how much: such an accept takes
  some, such a drop is no filter the agent can vouch for, and such a return ends the chain for
  the walk (ufw-not-local returns every packet for this host before its drop, which only
  packets for other hosts meet). iptables itself prints those matches, and reads them.

`Reading.filters(interface)` is the answer for packets arriving on that interface; the profile
the parser returns says whether the ruleset filters anywhere (see `summary`).

IPv4 and IPv6 are walked apart: each base chain sees one family (iptables' INPUT IPv4,
ip6tables' IPv6, nft's `ip` and `ip6` tables theirs, ufw's v4 and v6 chains theirs) or both
(nft's `inet` tables), `Program.families` says which. A reading speaks only for the families
its tool shows (`InboundReading.families`: `iptables -S` says nothing of IPv6), and
`filters(interface, family)` and `filters_anywhere(family)` answer for one family. A filter
in one family protects nothing in the other: an `iptables -I INPUT -j ACCEPT` ahead of ufw's
chains leaves every IPv4 port open though ufw's IPv6 chains still drop.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devposture.v1 import devposture_pb2 as pb

ACCEPT, RETURN, JUMP, GOTO = "accept", "return", "jump", "goto"
IPV4, IPV6 = "IPv4", "IPv6"
BOTH = frozenset({IPV4, IPV6})
BLOCKING = ("drop", "reject")
_LOOPBACK = "lo"
_MAX_DEPTH = 64  # nft and iptables refuse loops; a deeper nesting is not a real ruleset


class Cover(enum.IntEnum):
    """How many of the walked packets a rule's matches take (its interface aside)."""

    NONE = 0  # none: another interface, a state no new connection has
    OPAQUE = 1  # some, or none, or all: a match the agent cannot read
    SOME = 2  # some, never all: a port, a protocol, an address
    ALL = 3  # every one: no match, or only matches every new connection meets


def narrowest(covers: Sequence[Cover]) -> Cover:
    """The cover of matches that must all hold: NONE wins, then OPAQUE, then SOME."""
    if Cover.NONE in covers:
        return Cover.NONE
    if Cover.OPAQUE in covers:
        return Cover.OPAQUE
    return Cover.SOME if Cover.SOME in covers else Cover.ALL


def interface_matches(pattern: str, name: str) -> bool:
    """iptables' `wl+` and nft's `wl*` name every interface whose name starts with `wl`."""
    if pattern.endswith(("+", "*")):
        return name.startswith(pattern[:-1])
    return pattern == name


@dataclass(frozen=True)
class Rule:
    """One rule: its verdict (accept, drop, reject, return, jump, goto, or "" for none: a log,
    a counter, a mark), the chain a jump or goto enters, how many packets its matches take, and
    the interfaces it is limited to (`negated`: every interface but those)."""

    verdict: str
    target: str = ""
    cover: Cover = Cover.ALL
    interfaces: tuple[str, ...] = ()
    negated: bool = False
    hygiene: bool = False  # a drop that is no firewall (see the module's docstring)

    def cover_on(self, interface: str) -> Cover:
        if self.interfaces:
            named = any(interface_matches(p, interface) for p in self.interfaces)
            if named == self.negated:
                return Cover.NONE
        return self.cover


@dataclass(frozen=True)
class Program:
    """Chains by name, the input base chains with their policies ("accept" or "drop"), and the
    one family a base chain sees (IPV4 or IPV6); a base chain not listed sees both."""

    chains: Mapping[str, Sequence[Rule]]
    bases: Sequence[tuple[str, str]]
    families: Mapping[str, str] = field(default_factory=dict)

    def bases_of(self, family: str | None) -> list[tuple[str, str]]:
        """The base chains packets of `family` meet (None: every base chain)."""
        return [(name, policy) for name, policy in self.bases
                if family is None or self.families.get(name, family) == family]  # fmt: skip

    def interfaces(self) -> list[str]:
        """The interfaces its rules name (loopback and catch-alls aside), in order."""
        names: dict[str, None] = {}
        for rules in self.chains.values():
            for rule in rules:
                for name in rule.interfaces:
                    if name != _LOOPBACK and name not in ("+", "*"):
                        names[name] = None
        return list(names)


@dataclass
class _Walk:
    program: Program
    interface: str
    filtered: bool = False

    def chain(self, name: str, certain: bool, depth: int) -> str | None:
        """Walk a chain; the verdict every packet that entered met inside it ("allow", "drop",
        "reject"), or None when some come back out (its end, a return)."""
        if depth > _MAX_DEPTH:
            return None
        for rule in self.program.chains.get(name, ()):
            cover = rule.cover_on(self.interface)
            if cover is Cover.NONE or not rule.verdict:
                continue
            sure = certain and cover is not Cover.OPAQUE
            whole = cover is Cover.ALL
            if rule.verdict == ACCEPT and whole:
                return "allow"
            if rule.verdict in BLOCKING and not rule.hygiene:
                self.filtered = self.filtered or sure
                if whole:
                    return rule.verdict
            elif rule.verdict == RETURN and cover in (Cover.ALL, Cover.OPAQUE):
                return None
            elif rule.verdict in (JUMP, GOTO):
                met = self.chain(rule.target, sure, depth + 1)
                if whole and (met or rule.verdict == GOTO):
                    return met  # a goto's chain returns past this one
        return None

    def base(self, name: str, policy: str) -> str:
        met = self.chain(name, True, 0)
        if met is None and policy in BLOCKING:
            self.filtered = True
        return met or ("allow" if policy not in BLOCKING else policy)


# Stands for an interface no rule names ("eth7"): what the ruleset does to the rest.
OTHER = "\x00other"


def _walk(program: Program, interface: str, family: str | None = None) -> tuple[bool, str]:
    """(filtered, what becomes of the walked packets in the end) for packets of `family` (None:
    either) on `interface`: a filter or a drop in any base chain they meet wins, for a packet
    must pass them all. With no base chain for the family, netfilter accepts it."""
    ends: list[str] = []
    filtered = False
    for name, policy in program.bases_of(family):
        walk = _Walk(program, interface)
        ends.append(walk.base(name, policy))
        filtered = filtered or walk.filtered
    blocking = [end for end in ends if end in BLOCKING]
    return filtered, blocking[0] if blocking else "allow"


@dataclass(frozen=True)
class Summary:
    """What the ruleset does: whether it filters somewhere (an interface no rule names, or one
    a rule names: `-i eth0 -j DROP` alone still reads as a firewall, as before), and what
    happens, in the end, to a new connection on an interface no rule names."""

    filters: bool
    default: str


def summary(program: Program, family: str | None = None) -> Summary:
    """What the ruleset does to `family` (None: a filter in either family counts, the parsers'
    profile, as before families were walked apart)."""
    others, default = _walk(program, OTHER, family)
    named = any(_walk(program, name, family)[0] for name in program.interfaces())
    return Summary(others or named, default)


@dataclass(frozen=True)
class InboundReading:
    """A backend's profile, its rules to ask about one interface at a time, and the families
    its tool shows (the others it cannot speak for)."""

    profile: pb.FirewallProfile
    program: Program | None = field(default=None, compare=False)
    families: frozenset[str] = BOTH

    def filters(self, interface: str, family: str | None = None) -> bool:
        """Whether new connections of `family` (None: either) arriving on `interface` meet a
        filter. Without rules to walk (an inactive ufw, firewalld judged by its zones) the
        profile's answer stands for every interface and family."""
        if self.program is None:
            return self.profile.enabled
        return _walk(self.program, interface, family)[0]

    def filters_anywhere(self, family: str) -> bool:
        """Whether the rules filter new connections of `family` on some interface."""
        if self.program is None:
            return self.profile.enabled
        return summary(self.program, family).filters

    def profile_for(self, families: frozenset[str]) -> pb.FirewallProfile:
        """The profile judged on the families in use that this reading shows: it filters only
        when it filters each of them, and lets in what any of them lets in."""
        judged = sorted(families & self.families)
        if self.program is None or not judged:
            return self.profile
        found = [summary(self.program, family) for family in judged]
        profile = pb.FirewallProfile()
        profile.CopyFrom(self.profile)
        profile.enabled = all(s.filters for s in found)
        ends = [s.default for s in found]
        profile.default_inbound_action = "allow" if "allow" in ends else ends[0]
        return profile
