"""`iptables -S` (the filter table as rule specifications) into a firewall profile.

Lines are "-P CHAIN POLICY", "-N CHAIN" and "-A CHAIN <match...> -j TARGET". Inbound traffic
goes through INPUT and every user chain it jumps to (ufw's ufw-before-input and friends), in
order (parsers/inbound.py): the profile filters inbound when a rule drops or rejects traffic by
what it is (a port, a protocol, a destination, or everything), or INPUT's DROP policy is
reached, before an accept takes every new connection. `-A INPUT -j ACCEPT` ahead of a DROP
policy, or ufw's `-A ufw-user-input -j ACCEPT` (`ufw allow from any`), is no firewall.
iptables prints every match, so the walk reads conntrack's states (a new connection is NEW)
and addrtype's `--dst-type LOCAL` (what ufw-not-local returns before its drop).

A rule that drops only by where a packet comes from does not make a firewall: a blocklist
(fail2ban's f2b-* chains, an ipset of bad sources) or a VPN client's anti-spoofing rule
(Tailscale adds `-s 100.64.0.0/10 ! -i tailscale0 -j DROP` to every Linux machine it runs on)
leaves every port open to everyone else. Such rules, and the hygiene rules that drop packets
conntrack finds INVALID or packets for 127.0.0.0/8 that did not come from it (kube-proxy's
KUBE-FIREWALL on every Kubernetes node: "block incoming localnet connections"), are listed in
`rule_count` but do not make the profile enabled. Nor does a drop past a rate (`-m limit`,
`-m recent --hitcount`: ufw's LIMIT rejects a seventh connection in 30 seconds).

The same parser reads iptables-legacy, iptables-nft and ip6tables output. `iptables -S` shows
IPv4 alone and `ip6tables -S` IPv6 alone: each reading speaks for its own family only
(`family`), and says nothing of the other.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Collection, Iterator

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.inbound import (
    ACCEPT,
    BLOCKING,
    GOTO,
    IPV4,
    JUMP,
    RETURN,
    Cover,
    InboundReading,
    Program,
    Rule,
    narrowest,
    summary,
)
from devposture.v1 import devposture_pb2 as pb

_TARGET_FLAGS = ("-j", "-g", "--jump", "--goto")
# Match modules a source-only rule may use, and their options (with how many values each).
_SOURCE_MODULES = {"comment", "conntrack", "state", "set"}
_SOURCE_ADDRESS = {"-s": 1, "--source": 1}
_ALSO_ALLOWED = {"-i": 1, "--in-interface": 1, "--comment": 1}


def _target(args: list[str]) -> str:
    for flag in _TARGET_FLAGS:
        if flag in args:
            i = args.index(flag)
            if i + 1 < len(args):
                return args[i + 1]
    return ""


def _matches(args: list[str]) -> list[str]:
    """A rule's words before its target: its matches."""
    ends = [args.index(flag) for flag in _TARGET_FLAGS if flag in args]
    return args[: min(ends)] if ends else args


def _options(args: list[str]) -> Iterator[tuple[bool, str, list[str]]]:
    """A rule's matches as (negated, option, its values): `! -s 10.0.0.0/8` is
    (True, "-s", ["10.0.0.0/8"]). `--match-set` takes two values (the set, then src or dst),
    every other option one (fewer where the rule ends early)."""
    words = _matches(args)
    negated, i = False, 0
    while i < len(words):
        word = words[i]
        if word == "!":
            negated, i = True, i + 1
            continue
        count = 2 if word == "--match-set" else 1
        yield negated, word, words[i + 1 : i + 1 + count]
        negated, i = False, i + 1 + count


def _by_source_only(args: list[str]) -> bool:
    """Whether the rule matches packets only by their source (address, ipset of sources; with
    the interface they came in on), or only as conntrack's INVALID: see the module's
    docstring. An unconditional rule is not source-only."""
    by_source = invalid_only = False
    for _, option, values in _options(args):
        value = values[0] if values else ""
        if option in ("-m", "--match"):
            if value not in _SOURCE_MODULES:
                return False
        elif option in _SOURCE_ADDRESS:
            by_source = True
        elif option == "--match-set":  # --match-set NAME src|dst[,...]
            if len(values) < 2 or values[1] != "src":
                return False
            by_source = True
        elif option in ("--ctstate", "--state"):
            if value != "INVALID":
                return False
            invalid_only = True
        elif option not in _ALSO_ALLOWED:
            return False
    return by_source or invalid_only


_DESTINATION = ("-d", "--destination")
_LOOPBACK_MODULES = {"comment", "conntrack", "state"}


def loopback_network(network: str) -> bool:
    """Whether an address or network (`127.0.0.0/8`, `::1/128`, given to -d or as nft's
    prefix) lies within the loopback range."""
    try:
        found = ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False
    return found.is_loopback


def _to_loopback_only(args: list[str]) -> bool:
    """Whether the rule matches only packets for a loopback address (by source, interface and
    connection state besides): martian hygiene, which no outside caller's service traffic
    can ever meet, not a firewall."""
    to_loopback = False
    for negated, option, values in _options(args):
        value = values[0] if values else ""
        if option in _DESTINATION:
            if negated or not loopback_network(value):
                return False  # everything but loopback, or another address: that filters
            to_loopback = True
        elif option in ("-m", "--match"):
            if value not in _LOOPBACK_MODULES:
                return False
        elif not (option in _SOURCE_ADDRESS or option in _ALSO_ALLOWED
                  or option in ("--ctstate", "--state")):  # fmt: skip
            return False
    return to_loopback


_TARGETS = {"ACCEPT": ACCEPT, "DROP": "drop", "REJECT": "reject", "RETURN": RETURN}
_INTERFACE = ("-i", "--in-interface")
_STATES = ("--ctstate", "--state")
# Matches that every new connection to this host meets, or none does: (option, value) -> cover
# when not negated. `--dst-type LOCAL` is every packet for this host; ufw-not-local returns
# those before it drops the rest (packets for other hosts).
_ADDRTYPES = {"LOCAL": Cover.ALL, "UNICAST": Cover.ALL}  # any other type: Cover.NONE
# Modules whose rule holds only past a rate: a drop they decide is no firewall.
_RATE_MODULES = {"limit", "hashlimit", "recent", "connlimit"}
_NEUTRAL_MODULES = {"comment"}


def _state_cover(value: str, negated: bool) -> Cover:
    """A new connection is in state NEW (never ESTABLISHED, RELATED or INVALID)."""
    new = "NEW" in value.upper().split(",")
    return Cover.ALL if new != negated else Cover.NONE


def _rule(args: list[str], chains: Collection[str]) -> Rule:
    """A rule's words as the walk reads them (parsers/inbound.py)."""
    target = _target(args)
    goto = any(flag in args for flag in ("-g", "--goto"))
    verdict = _TARGETS.get(target) or ((GOTO if goto else JUMP) if target in chains else "")
    covers: list[Cover] = []
    interfaces: tuple[str, ...] = ()
    negated_interface = False
    for negated, option, values in _options(args):
        value = values[0] if values else ""
        if option in ("-m", "--match"):
            if value in _RATE_MODULES:
                covers.append(Cover.OPAQUE)
            continue  # the module's options say what it matches
        if option in _INTERFACE and not interfaces:
            interfaces, negated_interface = (value,), negated
        elif option in _STATES:
            covers.append(_state_cover(value, negated))
        elif option == "--dst-type":
            local = _ADDRTYPES.get(value.upper(), Cover.NONE) is Cover.ALL
            covers.append(Cover.ALL if local != negated else Cover.NONE)
        elif option == "--comment" or (option in ("-p", "--protocol") and value == "all"):
            continue
        else:
            covers.append(Cover.SOME)
    hygiene = verdict in BLOCKING and (_by_source_only(args) or _to_loopback_only(args))
    return Rule(verdict, target if verdict in (JUMP, GOTO) else "", narrowest(covers),
                interfaces, negated_interface, hygiene)  # fmt: skip


def read_iptables_s(
    text: str, name: str = "iptables", source: str = "iptables", family: str = IPV4
) -> InboundReading:
    policies: dict[str, str] = {}
    rules: dict[str, list[list[str]]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise ParseError("iptables: unbalanced quoting in a rule") from exc
        if words[0] == "-P" and len(words) == 3:
            policies[words[1]] = words[2].upper()
            rules.setdefault(words[1], [])
        elif words[0] == "-N" and len(words) == 2:
            rules.setdefault(words[1], [])
        elif words[0] == "-A" and len(words) >= 2:
            rules.setdefault(words[1], []).append(words[2:])
        else:
            raise ParseError("iptables: a line is not -P, -N or -A")
    if "INPUT" not in policies:
        raise ParseError("iptables: no policy for the INPUT chain")

    seen: set[str] = set()
    todo = ["INPUT"]
    while todo:
        chain = todo.pop()
        if chain in seen:
            continue
        seen.add(chain)
        for args in rules.get(chain, []):
            target = _target(args)
            if target in rules:
                todo.append(target)

    reachable = sum(len(rules.get(chain, [])) for chain in seen)
    policy = policies["INPUT"]
    program = Program(
        {chain: [_rule(args, rules) for args in rules[chain]] for chain in seen},
        [("INPUT", "drop" if policy == "DROP" else "accept")],
        {"INPUT": family},
    )
    found = summary(program)
    profile = pb.FirewallProfile(
        name=name,
        source=source,
        enabled=found.filters,
        active=policy != "ACCEPT" or bool(reachable),
        default_inbound_action=found.default,
        rule_count=reachable,
    )
    return InboundReading(profile, program, frozenset({family}))


def parse_iptables_s(
    text: str, name: str = "iptables", source: str = "iptables"
) -> pb.FirewallProfile:
    return read_iptables_s(text, name, source).profile
