"""`ipconfig /all`: the network adapters Windows knows, by type, with their description.

Sections start with "<type> adapter <name>:" ("Unknown adapter jimber:", "PPP adapter VPN:",
Chinese "未知适配器 ...:", "以太网适配器 本地连接:"); fields are "Label . . . . : value" with
dot padding. A field continuation (a second DNS server) has no " :" separator. The adapter
name is the connection name the user chose and may be mojibake in a badly captured copy; it
is kept as printed. Only the type, description, media state and IPv4 addresses are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_TYPES: dict[str, str] = {
    "Ethernet": "ethernet",
    "Wireless LAN": "wireless",
    "Unknown": "unknown",
    "PPP": "ppp",
    "Tunnel": "tunnel",
    "Mobile Broadband": "mobile",
    "以太网": "ethernet",
    "无线局域网": "wireless",
    "未知": "unknown",
    "PPP ": "ppp",
    "隧道": "tunnel",
    "移动宽带": "mobile",
}
_HEADER_EN = re.compile(r"^\s*(?P<type>[A-Za-z ]+?) adapter (?P<name>.*):\s*$")
_HEADER_ZH = re.compile(r"^\s*(?P<type>\S+ ?)适配器 (?P<name>.*):\s*$")
_FIELD = re.compile(r"^\s*(?P<label>\S[^:]*?)[ .]+:(?: (?P<value>.*))?$")
_LABELS: dict[str, str] = {
    "Description": "description",
    "描述": "description",
    "Media State": "media",
    "媒体状态": "media",
    "IPv4 Address": "ipv4",
    "IP Address": "ipv4",
    "IPv4 地址": "ipv4",
}
_DISCONNECTED = frozenset({"Media disconnected", "媒体已断开连接"})
_ADDRESS = re.compile(r"^(?P<address>\d{1,3}(?:\.\d{1,3}){3})")


@dataclass(frozen=True)
class Adapter:
    kind: str  # "ethernet", "wireless", "unknown", "ppp", "tunnel" or "mobile"
    name: str
    description: str
    media_disconnected: bool
    ipv4: tuple[str, ...]


def _header(line: str) -> tuple[str, str] | None:
    for pattern in (_HEADER_EN, _HEADER_ZH):
        match = pattern.match(line)
        if match:
            kind = _TYPES.get(match.group("type"))
            if kind is None:
                raise ParseError("ipconfig: adapter type not in the language tables")
            return kind, match.group("name")
    return None


def parse_ipconfig(text: str) -> list[Adapter]:
    sections: list[tuple[str, str, dict[str, list[str]]]] = []
    for line in text.split("\n"):
        header = _header(line)
        if header is not None:
            sections.append((header[0], header[1], {}))
            continue
        field = _FIELD.match(line)
        if field is None or not sections:
            continue
        key = _LABELS.get(field.group("label"))
        if key is not None:
            sections[-1][2].setdefault(key, []).append((field.group("value") or "").strip())
    if not sections and "Windows IP" not in text:
        raise ParseError("ipconfig: output not understood")
    adapters = []
    for kind, name, fields in sections:
        media = fields.get("media", [""])[0]
        if media and media not in _DISCONNECTED:
            raise ParseError("ipconfig: media state not in the language tables")
        addresses = []
        for value in fields.get("ipv4", []):
            match = _ADDRESS.match(value)
            if match:
                addresses.append(match.group("address"))
        adapters.append(
            Adapter(kind, name, fields.get("description", [""])[0], bool(media), tuple(addresses))
        )
    return adapters
