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
this machine, or everything). As for iptables and nft (parsers/iptables.py), a rule that denies
only where traffic comes from ("Anywhere  DENY IN  203.0.113.7": a blocklist) leaves every port
open to everyone else, and a routed rule (FWD) does not guard this machine: neither makes ufw
enabled. An inactive ufw leaves the kernel's rules to the other backends.
"""

from __future__ import annotations

import re

from devposture.agent.parsers.errors import ParseError
from devposture.v1 import devposture_pb2 as pb

_DEFAULT = re.compile(r"^Default:\s*(\w+)\s*\(incoming\)")
_ACTIONS = {"deny": "drop", "reject": "reject", "allow": "allow", "limit": "allow"}


_ANYWHERE = re.compile(r"^Anywhere( \(v6\))?( on \S+)?$")
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


def parse_ufw_status(text: str) -> pb.FirewallProfile:
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
        return profile

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
    blocking_rule = any(_filters_inbound(rule) for rule in rules)
    profile.active = True
    profile.enabled = default in ("drop", "reject") or blocking_rule
    profile.default_inbound_action = default
    profile.rule_count = len(rules)
    return profile
