"""`ipconfig /all`: the network adapters Windows knows, by type, with their description.

Sections start with "<type> adapter <name>:" in the machine's language ("Unknown adapter
jimber:", "PPP adapter VPN:", "以太网适配器 本地连接:", "乙太網路卡 乙太網路:",
"イーサネット アダプター LAN:", "이더넷 어댑터 이더넷:", "Неизвестный адаптер OpenVPN Wintun:");
fields are "Label . . . . : value" with dot padding.
A field continuation (a second DNS server) has no " :" separator. The adapter name is the
connection name the user chose and may be mojibake in a badly captured copy; it is kept as
printed. Only the type, description, media state and IPv4 addresses are read.

Every section title is looked up in `HEADERS`, which lists only the wordings seen in recorded
outputs (tests/fixtures/windows/README.md, "ipconfig"); the VPN probe reads a machine in another
language from Get-NetAdapter (agent/parsers/windows/netadapter.py). A title in another language
is a ParseError: the output says "Windows IP ..." in many languages, and skipping titles it did not
know read a Traditional Chinese machine as one without adapters, so a VPN on it read as none.
A title is told from a field by its colon: a field's label is padded with dots or spaces up to
its colon ("描述. . . :"), a title's name is not ("以太网适配器 以太网:"). A few fields have no
padding either (German "Verbindungsspezifisches DNS-Suffix:", empty): those are told by their
indentation, deeper than the titles' (ipconfig indents fields by three spaces; a copy indented
as a whole keeps the difference).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

# (title prefix, adapter kind). Japanese Windows prints "Wireless LAN adapter" in English.
HEADERS: tuple[tuple[str, str], ...] = (
    ("Ethernet adapter", "ethernet"),
    ("Wireless LAN adapter", "wireless"),
    ("Unknown adapter", "unknown"),
    ("PPP adapter", "ppp"),
    ("Tunnel adapter", "tunnel"),
    ("Mobile Broadband adapter", "mobile"),
    # Simplified Chinese
    ("以太网适配器", "ethernet"),
    ("无线局域网适配器", "wireless"),
    ("未知适配器", "unknown"),
    ("PPP 适配器", "ppp"),
    ("隧道适配器", "tunnel"),
    ("移动宽带适配器", "mobile"),
    # Traditional Chinese (a Windows Server ipconfig /all)
    ("乙太網路卡", "ethernet"),
    ("無線區域網路介面卡", "wireless"),
    ("通道介面卡", "tunnel"),
    # Japanese. 不明なアダプター (unknown adapter) is quoted from a real machine's header,
    # "不明なアダプター VPN - VPN Client:", in public notes (index id 5665369365).
    ("イーサネット アダプター", "ethernet"),
    ("不明なアダプター", "unknown"),
    # German (Windows 7 and Windows 11 recordings)
    ("Ethernet-Adapter", "ethernet"),
    ("Drahtlos-LAN-Adapter", "wireless"),
    ("Unbekannter Adapter", "unknown"),
    ("Tunneladapter", "tunnel"),
    # Korean (Windows 11 22000 and a Wi-Fi Direct adapter's /all section)
    ("이더넷 어댑터", "ethernet"),
    ("무선 LAN 어댑터", "wireless"),
    # Russian ("Неизвестный адаптер OpenVPN Wintun:" from a real machine's plain ipconfig)
    ("Адаптер Ethernet", "ethernet"),
    ("Адаптер беспроводной локальной сети", "wireless"),
    ("Неизвестный адаптер", "unknown"),
)
# A title: no padding before its colon; not an address continuing a field ("fe80::1%12").
_TITLE = re.compile(r"^\s*(?P<title>\S(?:.*\S)?)(?<![ .]):\s*$")
_ADDRESS_LINE = re.compile(r"^[0-9A-Fa-f:.%]+$")
_FIELD = re.compile(r"^\s*(?P<label>\S[^:]*?)[ .]+:(?: (?P<value>.*))?$")
# A field whose label runs into its colon ("Verbindungsspezifisches DNS-Suffix:" in German):
# read as one only when indented deeper than the section titles.
_BARE_FIELD = re.compile(r"^\s*(?P<label>\S[^:]*?)\s*:(?: (?P<value>.*))?$")
_LABELS: dict[str, str] = {
    "Description": "description",
    "描述": "description",
    "説明": "description",
    "Media State": "media",
    "媒体状态": "media",
    "媒體狀態": "media",
    "メディアの状態": "media",
    "IPv4 Address": "ipv4",
    "IP Address": "ipv4",
    "IPv4 地址": "ipv4",
    "IPv4 位址": "ipv4",
    "IPv4 アドレス": "ipv4",
    "Beschreibung": "description",
    "Medienstatus": "media",
    "IPv4-Adresse": "ipv4",
    "설명": "description",
    "미디어 상태": "media",
    "IPv4 주소": "ipv4",
    "Описание": "description",
    "Состояние среды": "media",
    "IPv4-адрес": "ipv4",
}
_DISCONNECTED = frozenset(
    {
        "Media disconnected",
        "媒体已断开连接",
        "媒體已中斷連線",
        "メディアは接続されていません",
        "Medium getrennt",
        "미디어 연결 끊김",
        "Среда передачи недоступна.",
    }
)
_ADDRESS = re.compile(r"^(?P<address>\d{1,3}(?:\.\d{1,3}){3})")


@dataclass(frozen=True)
class Adapter:
    kind: str  # "ethernet", "wireless", "unknown", "ppp", "tunnel" or "mobile"
    name: str
    description: str
    media_disconnected: bool
    ipv4: tuple[str, ...]


def _header(line: str) -> tuple[str, str] | None:
    """(kind, name) when `line` is a section title; None when it is not one. Raises
    ParseError for a title in no table."""
    match = _TITLE.match(line)
    if match is None or _ADDRESS_LINE.match(match["title"]):
        return None
    title = match["title"]
    for prefix, kind in HEADERS:
        if title.startswith(prefix + " "):
            return kind, title[len(prefix) + 1 :]
    raise ParseError("ipconfig: adapter type not in the language tables")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def parse_ipconfig(text: str) -> list[Adapter]:
    sections: list[tuple[str, str, dict[str, list[str]]]] = []
    title_indent = 0
    for line in text.split("\n"):
        field = _FIELD.match(line)
        if field is None and sections and _indent(line) > title_indent:
            field = _BARE_FIELD.match(line)
        if field is None:
            header = _header(line)
            if header is not None:
                sections.append((header[0], header[1], {}))
                title_indent = _indent(line)
            continue
        if not sections:
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
