"""`netsh advfirewall show allprofiles`: the firewall state of the domain, private and public
profiles, in the machine's language.

Each profile is a section: a header ("Domain Profile Settings:", "域配置文件 设置:"), a dashed
rule, then "label   value" lines with no colon. Only the state and the default policy are read.
Chinese Windows prints the state as 打开/关闭 (Windows 7, recorded) or 启用/禁用 (later builds,
per a parser written against real output); both are listed. Labels not in the tables are
skipped; a section without a readable state is a ParseError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_HEADERS: dict[str, str] = {
    "Domain Profile Settings": "domain",
    "Private Profile Settings": "private",
    "Public Profile Settings": "public",
    "域配置文件 设置": "domain",
    "专用配置文件 设置": "private",
    "公用配置文件 设置": "public",
}
_STATE_LABELS = ("State", "状态")
_POLICY_LABELS = ("Firewall Policy", "防火墙策略")
_ON = frozenset({"ON", "打开", "启用"})
_OFF = frozenset({"OFF", "关闭", "禁用"})
_HEADER = re.compile(r"^\s*(?P<title>.+?)\s*[:：]\s*$")


@dataclass(frozen=True)
class NetshProfile:
    name: str  # "domain", "private" or "public"
    enabled: bool
    # "drop" (BlockInbound, BlockInboundAlways), "allow" (AllowInbound) or "".
    default_inbound_action: str


def _inbound(policy: str) -> str:
    inbound = policy.split(",", 1)[0].strip().lower()
    if inbound.startswith("blockinbound"):
        return "drop"
    if inbound == "allowinbound":
        return "allow"
    if not inbound:
        return ""
    raise ParseError("netsh advfirewall: firewall policy not understood")


def _value(line: str, names: tuple[str, ...]) -> str | None:
    for name in names:
        if line.startswith(name) and line[len(name) : len(name) + 1].isspace():
            return line[len(name) :].strip()
    return None


def parse_allprofiles(text: str) -> list[NetshProfile]:
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.split("\n"):
        line = raw.strip()
        header = _HEADER.match(line)
        if header and header.group("title") in _HEADERS:
            sections.append((_HEADERS[header.group("title")], {}))
            continue
        if not sections:
            continue
        fields = sections[-1][1]
        state = _value(line, _STATE_LABELS)
        if state is not None:
            fields.setdefault("state", state)
        policy = _value(line, _POLICY_LABELS)
        if policy is not None:
            fields.setdefault("policy", policy)
    if not sections:
        raise ParseError("netsh advfirewall: no profile section found")
    profiles = []
    for name, fields in sections:
        state = fields.get("state")
        if state not in _ON and state not in _OFF:
            raise ParseError("netsh advfirewall: profile state not in the language tables")
        profiles.append(NetshProfile(name, state in _ON, _inbound(fields.get("policy", ""))))
    return profiles
