"""`nft -j list ruleset` (nftables JSON, schema 1) into a firewall profile.

Inbound traffic meets every base chain hooked on "input" in the ip, ip6 and inet families;
a packet is dropped if any of them drops it. Each is read in order (parsers/inbound.py), with
the chains it jumps or goes to and its verdict maps: the profile filters inbound when a rule
drops or rejects traffic by what it is (a port, a protocol, a destination, or everything), or
a chain's drop policy is reached, before an accept takes every new connection. A bare
`accept` first in a chain with policy drop, or a jump to a chain whose `counter accept` takes
everything, is no firewall; `ct state established,related accept` (no new connection is
either), `iif "lo" accept` or `tcp dport 22 accept` first is. With no input base chain at all,
netfilter accepts everything; a dormant table's chains see no packet.

An `ip` table's base chain sees IPv4 alone, an `ip6` table's IPv6 alone, an `inet` table's
both: the reading tells the families apart (`filters(card, IPV4)`), for a drop in ufw's `ip6`
tables leaves IPv4 open when an accept comes first in its `ip` ones. nft shows every table of
nf_tables, so a family without an input base chain there is one netfilter lets in whole.

As for iptables (parsers/iptables.py), a rule that drops only by where a packet comes from (its
source address or set of addresses, with the interface it came in on: blocklists, a VPN
client's anti-spoofing rule) or only packets conntrack finds invalid does not make a firewall:
it is counted in `rule_count` and does not make the profile enabled. Nor does a rule that drops
only packets for a loopback address (kube-proxy's KUBE-FIREWALL, through iptables-nft on every
Kubernetes node), nor one past a rate (`limit`, `quota`, `ct count`). iptables-nft writes its
matches as opaque `xt` statements: a comment matches everything, any other narrows its rule by
an amount nft does not show (so its drop is not vouched for, and its return ends the chain for
the walk: ufw-not-local's addrtype returns). iptables -S reads those rules in full: when it
did, the probe leaves iptables-nft's `filter` tables out of this reading (`leave_out`), for an
accept behind an opaque match (`-m conntrack --ctstate NEW -j ACCEPT`, every new connection)
reads here as letting only some in, and a drop policy behind it as a filter.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterator
from typing import Any

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.inbound import (
    ACCEPT,
    BLOCKING,
    GOTO,
    IPV4,
    IPV6,
    JUMP,
    RETURN,
    Cover,
    InboundReading,
    Program,
    Rule,
    narrowest,
    summary,
)
from devposture.agent.parsers.iptables import loopback_network
from devposture.v1 import devposture_pb2 as pb

_INBOUND_FAMILIES = {"ip", "ip6", "inet"}
_ONE_FAMILY = {"ip": IPV4, "ip6": IPV6}  # an inet table's chains see both
_BLOCKING = ("drop", "reject")
# Statements that do not make a rule conditional: "counter drop" still drops everything.
_NEUTRAL = {"counter", "log"}

ChainKey = tuple[str, str, str]

# What a source-only rule may match on (see the module's docstring).
_SOURCE_FIELDS = {"saddr"}
_INTERFACE_KEYS = {"iif", "iifname"}
# iptables-nft's matches that nft shows only by name (`"xt": {"type": "match", ...}`): a
# comment matches every packet; a conntrack or state match only narrows the rule it is in.
_XT_NARROWING = {"comment", "conntrack", "state"}


def _xt_narrowing(statement: dict[str, Any]) -> bool:
    xt = statement.get("xt")
    return (isinstance(xt, dict) and xt.get("type") == "match"
            and xt.get("name") in _XT_NARROWING)  # fmt: skip


def _loopback_prefix(right: object) -> bool:
    """Whether a match's right side is a loopback address or network (`127.0.0.0/8`, ::1)."""
    if isinstance(right, dict) and isinstance(right.get("prefix"), dict):
        prefix = right["prefix"]
        network = f"{prefix.get('addr')}/{prefix.get('len')}"
    elif isinstance(right, str):
        network = right
    else:
        return False
    return loopback_network(network)


def _to_loopback_only(expr: list[Any]) -> bool:
    """Whether a rule ending in drop or reject matches only packets for a loopback address
    (with conditions on their source, interface and connection state besides): martian
    hygiene that no outside caller's traffic meets."""
    conditions = _conditions(expr)
    if conditions is None:
        return False
    to_loopback = False
    for match, payload, meta, ct in conditions:
        if isinstance(payload, dict) and payload.get("field") == "daddr":
            if match.get("op", "==") != "==" or not _loopback_prefix(match.get("right")):
                return False
            to_loopback = True
        elif not _narrows_by_origin(payload, meta, ct):
            return False
    return to_loopback


Condition = tuple[dict[str, Any], object, object, object]  # match, its payload, meta, ct


def _conditions(expr: list[Any]) -> list[Condition] | None:
    """The matches of a rule that ends in drop or reject, each with what its left side reads
    (counters, logs and iptables-nft's narrowing `xt` matches left out); None for any other
    rule: a verdict map, a verdict not at the end, a statement that is not a plain match."""
    if not expr or not isinstance(expr[-1], dict) or not any(k in expr[-1] for k in _BLOCKING):
        return None
    found: list[Condition] = []
    for statement in expr[:-1]:
        if not isinstance(statement, dict):
            return None
        if set(statement) <= _NEUTRAL or _xt_narrowing(statement):
            continue
        match = statement.get("match")
        if not isinstance(match, dict) or len(statement) != 1:
            return None
        left = match.get("left")
        if not isinstance(left, dict):
            return None
        found.append((match, left.get("payload"), left.get("meta"), left.get("ct")))
    return found


def _narrows_by_origin(payload: object, meta: object, ct: object) -> bool:
    """A match on where a packet comes from (source, interface) or its connection's state."""
    return (
        (isinstance(payload, dict) and payload.get("field") in _SOURCE_FIELDS)
        or (isinstance(meta, dict) and meta.get("key") in _INTERFACE_KEYS)
        or (isinstance(ct, dict) and ct.get("key") in ("state", "status"))
    )


def _find(node: object, keys: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """Every (key, value) with key in `keys`, anywhere inside a rule's JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys:
                yield key, value
            yield from _find(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from _find(item, keys)


def _by_source_only(expr: list[Any]) -> bool:
    """Whether a rule ending in drop or reject matches only by source (and the interface the
    packet came in on), or only conntrack's invalid state. An unconditional rule is not."""
    conditions = _conditions(expr)
    if conditions is None:
        return False  # a verdict map, or a verdict not at the end: judged as blocking
    by_source = invalid_only = False
    for match, payload, meta, ct in conditions:
        if isinstance(payload, dict) and payload.get("field") in _SOURCE_FIELDS:
            by_source = True
        elif isinstance(meta, dict) and meta.get("key") in _INTERFACE_KEYS:
            continue
        elif (
            isinstance(ct, dict)
            and ct.get("key") == "state"
            and match.get("right") in ("invalid", ["invalid"])
        ):
            invalid_only = True
        else:
            return False
    return by_source or invalid_only


def _is_dormant(table: dict[str, Any]) -> bool:
    """Whether a table is dormant (`flags dormant`): its chains see no packet. nft 1.0.6
    (Debian 12) prints a table's flags as the table's own name ("flags": "dormantfw"); later
    versions print "dormant". Read as active, a dormant table with policy drop was a firewall
    on while everything came in."""
    flags = table.get("flags")
    names = flags if isinstance(flags, list) else [flags] if isinstance(flags, str) else []
    return "dormant" in names or (bool(names) and names == [table.get("name")])


_VERDICTS = {"accept": ACCEPT, "drop": "drop", "reject": "reject", "return": RETURN,
             "jump": JUMP, "goto": GOTO}  # fmt: skip
# Statements that match some packets by a count or a rate: a drop they decide is no firewall.
_RATED = {"limit", "quota", "ct count"}


def _words(right: object) -> list[str] | None:
    """A match's right side as plain words ("wlp2s0", ["established", "related"], a set of
    names), or None when it is anything else (a prefix, a range, a named set)."""
    if isinstance(right, str):
        return [right]
    items = right.get("set") if isinstance(right, dict) else right
    if isinstance(items, list) and all(isinstance(i, str) for i in items):
        return list(items)
    return None


def _state_cover(states: list[str], negated: bool) -> Cover:
    """A new connection's conntrack state is "new", never established, related or invalid."""
    return Cover.ALL if ("new" in states) != negated else Cover.NONE


Limit = tuple[tuple[str, ...], bool]  # the interfaces a rule is limited to, negated or not


def _match(match: dict[str, Any]) -> Cover | Limit:
    """One match: how many new connections it takes, or the interfaces it names."""
    left, op = match.get("left"), match.get("op", "==")
    negated = op == "!="
    words = _words(match.get("right"))
    if not isinstance(left, dict) or words is None:
        return Cover.SOME
    meta, ct, fib = left.get("meta"), left.get("ct"), left.get("fib")
    if isinstance(meta, dict) and meta.get("key") in _INTERFACE_KEYS:
        return tuple(words), negated
    if isinstance(ct, dict) and ct.get("key") == "state":
        return _state_cover(words, negated)
    if isinstance(fib, dict) and fib.get("result") == "type" and "daddr" in fib.get("flags", ()):
        return Cover.ALL if ("local" in words) != negated else Cover.NONE  # fib daddr type local
    return Cover.SOME


def _vmap_rules(vmap: dict[str, Any], table: str, covers: list[Cover], limit: Limit) -> list[Rule]:
    """A verdict map (`iifname vmap { "wlp2s0" : accept }`, `ct state vmap { ... }`) as one
    rule per element, in its order; a named map is not read (no verdict)."""
    data = vmap.get("data")
    elements = data.get("set") if isinstance(data, dict) else None
    if not isinstance(elements, list):
        return []
    key = vmap.get("key")
    found: list[Rule] = []
    for element in elements:
        if not (isinstance(element, list) and len(element) == 2 and isinstance(element[1], dict)):
            continue
        value, verdict = element
        rule_covers, rule_limit = list(covers), limit
        keyed = _match({"left": key, "right": value})
        if isinstance(keyed, tuple):
            rule_limit = rule_limit if rule_limit[0] else keyed
        else:
            rule_covers.append(keyed)
        found.extend(_verdict_rules([verdict], table, rule_covers, rule_limit, hygiene=False))
    return found


def _verdict_rules(
    tail: list[Any], table: str, covers: list[Cover], limit: Limit, hygiene: bool
) -> list[Rule]:
    for statement in tail:
        for key, verdict in _VERDICTS.items():
            if isinstance(statement, dict) and key in statement:
                target = statement[key].get("target") if verdict in (JUMP, GOTO) else ""
                if verdict in (JUMP, GOTO) and not isinstance(target, str):
                    return []
                return [Rule(verdict, f"{table}\x00{target}" if target else "",
                             narrowest(covers), limit[0], limit[1],
                             hygiene and verdict in BLOCKING)]  # fmt: skip
    return []


def _rules(expr: list[Any], table: str) -> list[Rule]:
    """A rule as the walk reads it (parsers/inbound.py): its matches, then its verdict."""
    covers: list[Cover] = []
    limit: Limit = ((), False)
    for statement in expr:
        if not isinstance(statement, dict):
            covers.append(Cover.SOME)
            continue
        if "match" in statement and isinstance(statement["match"], dict):
            found = _match(statement["match"])
            if isinstance(found, tuple) and not limit[0]:
                limit = found
            elif isinstance(found, Cover):
                covers.append(found)
            else:
                covers.append(Cover.SOME)  # a second interface match
        elif "xt" in statement and isinstance(statement["xt"], dict):
            xt = statement["xt"]
            if xt.get("type") == "target":
                if xt.get("name") == "REJECT":  # iptables-nft's REJECT target
                    return [Rule("reject", "", narrowest(covers), limit[0], limit[1])]
                return []  # LOG, MARK ...: no verdict
            if xt.get("name") != "comment":
                covers.append(Cover.OPAQUE)
        elif "vmap" in statement and isinstance(statement["vmap"], dict):
            return _vmap_rules(statement["vmap"], table, covers, limit)
        elif set(statement) & _RATED:
            covers.append(Cover.OPAQUE)
        elif set(statement) & set(_VERDICTS):
            hygiene = _by_source_only(expr) or _to_loopback_only(expr)
            return _verdict_rules([statement], table, covers, limit, hygiene)
    return []


def read_nft_json(text: str, leave_out: Collection[tuple[str, str]] = ()) -> InboundReading:
    """The reading of a ruleset; the tables named in `leave_out` ((family, name): iptables-nft's
    `("ip", "filter")` when `iptables -S` read it whole) are left out, as if absent."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError("nft: output is not JSON") from exc
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not any(
        isinstance(i, dict) and "metainfo" in i for i in items
    ):
        raise ParseError("nft: no nftables list with metainfo")
    chains: dict[ChainKey, dict[str, Any]] = {}
    rules: dict[ChainKey, list[list[Any]]] = defaultdict(list)
    dormant: set[tuple[str, str]] = set()
    for item in items:
        if not isinstance(item, dict):
            raise ParseError("nft: ruleset item is not an object")
        if "table" in item and isinstance(item["table"], dict) and _is_dormant(item["table"]):
            dormant.add((str(item["table"].get("family")), str(item["table"].get("name"))))
        if "chain" in item:
            c = item["chain"]
            chains[(c["family"], c["table"], c["name"])] = c
        elif "rule" in item:
            r = item["rule"]
            expr = r.get("expr")
            if not isinstance(expr, list):
                raise ParseError("nft: rule without an expr list")
            rules[(r["family"], r["table"], r["chain"])].append(expr)

    bases = [
        key
        for key, c in chains.items()
        if c.get("hook") == "input" and key[0] in _INBOUND_FAMILIES and c.get("type") == "filter"
        and (key[0], key[1]) not in dormant and (key[0], key[1]) not in leave_out
    ]  # fmt: skip
    # Chains reachable from the input hooks through jump/goto (verdict maps included).
    seen: set[ChainKey] = set()
    todo = list(bases)
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        for expr in rules.get(key, []):
            for _, target in _find(expr, ("jump", "goto")):
                if isinstance(target, dict) and isinstance(target.get("target"), str):
                    todo.append((key[0], key[1], target["target"]))

    def name(key: tuple[str, ...]) -> str:
        return "\x00".join(key)

    program = Program(
        {
            name(key): [rule for expr in rules.get(key, []) for rule in _rules(expr, name(key[:2]))]
            for key in seen
        },
        [(name(k), "drop" if chains[k].get("policy") == "drop" else "accept") for k in bases],
        {name(k): _ONE_FAMILY[k[0]] for k in bases if k[0] in _ONE_FAMILY},
    )
    found = summary(program)
    profile = pb.FirewallProfile(
        name="nftables",
        source="nft",
        enabled=found.filters,
        active=bool(bases),
        default_inbound_action=found.default,
        rule_count=sum(len(rules.get(key, [])) for key in seen),
    )
    return InboundReading(profile, program)


def parse_nft_json(text: str) -> pb.FirewallProfile:
    return read_nft_json(text).profile
