"""`ufw status verbose` into a firewall profile.

    Status: active
    Default: deny (incoming), allow (outgoing), disabled (routed)
    To                         Action      From
    --                         ------      ----
    22/tcp                     ALLOW IN    Anywhere

ufw is Python and translates with Python's gettext, which reads LANGUAGE before LC_ALL: with
LANGUAGE=zh_CN:zh (what Ubuntu's Chinese installs put in /etc/default/locale, and so in every
service's environment) it prints "状态： 激活", "状态：不活动", "狀態: 啓用", and a translation may
leave some labels in English (zh_TW's "Default:" line) or translate the actions too (Japanese).
The host layer runs it with LANGUAGE removed and LC_ALL=C; a translated output that still
arrives is refused as translated, never read by guessing which words mean what. An active ufw
whose "Default: ... (incoming)" line cannot be read is refused too: without it a default deny
with only ALLOW rules would read as no firewall.

"enabled" means ufw filters inbound: active, and denying or rejecting by default or by at least
one rule that blocks traffic by what it is (to a port, a protocol, an address of
this machine, or everything), read in order as ufw applies them (first match wins; see
parsers/inbound.py): "Anywhere  ALLOW IN  Anywhere" (`ufw allow from any`) takes every new
connection before the default deny, so that ufw is no firewall, and "Anywhere on wlp2s0  ALLOW
IN  Anywhere" (`ufw allow in on wlp2s0`) every one that arrives on that interface. As for
iptables and nft (parsers/iptables.py), a rule that denies only where traffic comes from
("Anywhere  DENY IN  203.0.113.7": a blocklist) leaves every port open to everyone else, and a
routed rule (FWD) or an outgoing one (OUT) does not guard this machine: neither makes ufw
enabled. A LIMIT rule lets connections in at every normal rate. An inactive ufw leaves the
kernel's rules to the other backends.
"""

from __future__ import annotations

import re

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.inbound import (
    ACCEPT,
    IPV4,
    IPV6,
    InboundReading,
    Program,
    Rule,
    summary,
)
from devposture.agent.parsers.inbound import Cover as _Cover
from devposture.v1 import devposture_pb2 as pb

_DEFAULT = re.compile(r"^Default:\s*(\w+)\s*\(incoming\)")
_ACTIONS = {"deny": "drop", "reject": "reject", "allow": "allow", "limit": "allow"}


_ANYWHERE = re.compile(r"^Anywhere( \(v6\))?( on \S+)?$")
_ON = re.compile(r" on (\S+)$")
_VERDICTS = {"ALLOW": ACCEPT, "LIMIT": ACCEPT, "DENY": "drop", "REJECT": "reject"}
_COLUMNS = re.compile(r"\s{2,}")


def _filters_inbound(rule: str) -> bool:
    """Whether a rule line ("To  Action  From") denies or rejects inbound traffic by what it is:
    see the module's docstring."""
    columns = _COLUMNS.split(rule.strip())
    if len(columns) < 3:  # not the three columns: judged by its words, as a deny or not
        return bool(re.search(r"\b(DENY|REJECT)\b(?! (OUT|FWD))", rule))
    to, action, source = columns[0], columns[1].split(), columns[2].split(" #")[0].strip()
    if not action or action[0] not in ("DENY", "REJECT") or action[1:2] in (["OUT"], ["FWD"]):
        return False
    return not _ANYWHERE.match(to) or bool(_ANYWHERE.match(source))


# A first line "label: value" (ASCII or full-width colon) that is not English's "Status:".
_TRANSLATED_STATUS = re.compile(r"^[^\x00-\x7f]+\s*[:：]")


def _rule(line: str) -> Rule | None:
    """A rule line ("To  Action  From") as the walk reads it: an incoming rule's verdict, the
    interface it is limited to ("Anywhere on wlp2s0"), and whether it takes every new
    connection (Anywhere to Anywhere) or some."""
    columns = _COLUMNS.split(line.strip())
    words = columns[1].split() if len(columns) >= 3 else line.split()
    verb = next((w for w in words if w in _VERDICTS), "")
    if not verb or any(w in ("OUT", "FWD") for w in words[:3]):
        return None
    if len(columns) < 3:  # not the three columns: some traffic, judged as before
        verdict = _VERDICTS[verb]
        return Rule(verdict, cover=_Cover.SOME, hygiene=not _filters_inbound(line))
    to, source = columns[0], columns[2].split(" #")[0].strip()
    on = _ON.search(to)
    everything = bool(_ANYWHERE.match(to) and _ANYWHERE.match(source))
    return Rule(_VERDICTS[verb], cover=_Cover.ALL if everything else _Cover.SOME,
                interfaces=(on.group(1),) if on else (),
                hygiene=_VERDICTS[verb] != ACCEPT and not _filters_inbound(line))  # fmt: skip


def read_ufw_status(text: str) -> InboundReading:
    lines = [line.rstrip() for line in text.splitlines()]
    status = next((line for line in lines if line.startswith("Status:")), None)
    if status is None:
        first = next((line.strip() for line in lines if line.strip()), "")
        if _TRANSLATED_STATUS.match(first):
            raise ParseError(
                "ufw: its output is translated (LANGUAGE reached it); only English is read"
            )
        raise ParseError("ufw: no 'Status:' line")
    state = status.split(":", 1)[1].strip().lower()
    if state not in ("active", "inactive"):
        raise ParseError("ufw: status is neither active nor inactive")
    profile = pb.FirewallProfile(name="ufw", source="ufw")
    if state == "inactive":
        profile.enabled = False
        profile.active = False
        return InboundReading(profile)

    default = ""
    for line in lines:
        match = _DEFAULT.match(line)
        if match:
            default = _ACTIONS.get(match.group(1).lower(), "")
    rules: list[str] = []
    if "--" in (line.split()[0] if line.split() else "" for line in lines):
        start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["--"])
        rules = [line for line in lines[start + 1 :] if line.strip()]
    if not default:
        raise ParseError("ufw: active, but no 'Default: ... (incoming)' policy line read")
    # IPv4 and IPv6 rules stand in separate chains (ufw-user-input, ufw6-user-input).
    chains: dict[str, list[Rule]] = {"v4": [], "v6": []}
    for line in rules:
        rule = _rule(line)
        if rule:
            chains["v6" if "(v6)" in line else "v4"].append(rule)
    program = Program(chains, [("v4", default), ("v6", default)], {"v4": IPV4, "v6": IPV6})
    found = summary(program)
    profile.active = True
    profile.enabled = found.filters
    profile.default_inbound_action = found.default
    profile.rule_count = len(rules)
    return InboundReading(profile, program)


def parse_ufw_status(text: str) -> pb.FirewallProfile:
    return read_ufw_status(text).profile
