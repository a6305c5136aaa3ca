"""`iptables -S` (the filter table as rule specifications) into a firewall profile.

Lines are "-P CHAIN POLICY", "-N CHAIN" and "-A CHAIN <match...> -j TARGET". Inbound traffic
goes through INPUT and every user chain it jumps to (ufw's ufw-before-input and friends). The
profile filters inbound when INPUT's policy is DROP, or when a reachable rule drops or rejects.
The same parser reads iptables-legacy, iptables-nft and ip6tables output.
"""

from __future__ import annotations

import shlex

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

_BLOCKING = {"DROP": "drop", "REJECT": "reject"}


def _target(args: list[str]) -> str:
    for flag in ("-j", "-g", "--jump", "--goto"):
        if flag in args:
            i = args.index(flag)
            if i + 1 < len(args):
                return args[i + 1]
    return ""


def parse_iptables_s(
    text: str, name: str = "iptables", source: str = "iptables"
) -> pb.FirewallProfile:
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

    reachable = [args for chain in seen for args in rules.get(chain, [])]
    blocking_rule = any(_target(args) in _BLOCKING for args in reachable)
    policy = policies["INPUT"]
    default = _BLOCKING.get(policy, "")
    if not default and policy == "ACCEPT":
        last = rules["INPUT"][-1] if rules["INPUT"] else []
        unconditional = last[:1] == ["-j"] and _target(last) in _BLOCKING
        default = _BLOCKING[_target(last)] if unconditional else "allow"
    return pb.FirewallProfile(
        name=name,
        source=source,
        enabled=default in _BLOCKING.values() or blocking_rule,
        active=policy != "ACCEPT" or bool(reachable),
        default_inbound_action=default,
        rule_count=len(reachable),
    )
