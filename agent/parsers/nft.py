"""`nft -j list ruleset` (nftables JSON, schema 1) into a firewall profile.

Inbound traffic meets every base chain hooked on "input" in the ip, ip6 and inet families;
a packet is dropped if any of them drops it. The profile filters inbound when such a chain has
policy drop, or when a rule in it (or in a chain it jumps to, or in a verdict map) drops or
rejects traffic by what it is (a port, a protocol, a destination, or everything). With no input
base chain at all, netfilter accepts everything; a dormant table's chains see no packet.

As for iptables (parsers/iptables.py), a rule that drops only by where a packet comes from (its
source address or set of addresses, with the interface it came in on: blocklists, a VPN
client's anti-spoofing rule) or only packets conntrack finds invalid does not make a firewall:
it is counted in `rule_count` and does not make the profile enabled. Nor does a rule that drops
only packets for a loopback address (kube-proxy's KUBE-FIREWALL, through iptables-nft on every
Kubernetes node). iptables-nft writes its comment and conntrack matches as opaque `xt`
statements: a comment matches everything, and a conntrack match only narrows such a rule.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.iptables import loopback_network
from devposture.v1 import devposture_pb2 as pb

_INBOUND_FAMILIES = {"ip", "ip6", "inet"}
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


def _unconditional_verdict(expr: list[Any]) -> str:
    """ "drop"/"reject" when the rule blocks every packet that reaches it, else ""."""
    if not expr or not isinstance(expr[-1], dict):
        return ""
    *head, last = expr
    verdict = next((k for k in _BLOCKING if k in last), "")
    if verdict and all(isinstance(s, dict) and set(s) <= _NEUTRAL for s in head):
        return verdict
    return ""


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
        elif isinstance(ct, dict) and ct.get("key") == "state" and match.get("right") in (
            "invalid", ["invalid"]
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


def parse_nft_json(text: str) -> pb.FirewallProfile:
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
        and (key[0], key[1]) not in dormant
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

    rule_count = sum(len(rules.get(key, [])) for key in seen)
    blocking_rule = any(
        any(True for _ in _find(expr, _BLOCKING)) and not _by_source_only(expr)
        and not _to_loopback_only(expr)
        for key in seen
        for expr in rules.get(key, [])
    )
    policies = {chains[k].get("policy", "accept") for k in bases}
    default = ""
    if "drop" in policies:
        default = "drop"
    else:
        tails = [_unconditional_verdict(rules[k][-1]) for k in bases if rules.get(k)]
        default = next((t for t in tails if t), "allow")
    return pb.FirewallProfile(
        name="nftables",
        source="nft",
        enabled=default in _BLOCKING or blocking_rule,
        active=bool(bases),
        default_inbound_action=default,
        rule_count=rule_count,
    )
