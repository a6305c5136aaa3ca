"""`ipconfig /all`: the network adapters Windows knows, by type, with their description.

Sections start with "<type> adapter <name>:" in the machine's language ("Unknown adapter
jimber:", "PPP adapter VPN:", "以太网适配器 本地连接:", "乙太網路卡 乙太網路:",
"イーサネット アダプター LAN:", "이더넷 어댑터 이더넷:", "Неизвестный адаптер OpenVPN Wintun:",
"Carte inconnue NordLynx :", "Adaptador desconocido CloudflareWARP:", "Scheda sconosciuta
OpenVPN Wintun:", "Adaptador desconhecido Tailscale:"); fields are "Label . . . . : value" with
dot padding. A field continuation (a second DNS server) has no " :" separator. The adapter name
is the connection name the user chose and may be mojibake in a badly captured copy; it is kept
as printed. Only the type, description, media state and IPv4 addresses are read.

Every section title is looked up in `HEADERS`, which lists only the wordings seen in recorded
outputs (tests/fixtures/windows/README.md, "ipconfig"); the VPN probe reads a machine in another
language from Get-NetAdapter (agent/parsers/windows/netadapter.py). A title in another language
is a ParseError: the output says "Windows IP ..." in many languages, and skipping titles it did not
know read a Traditional Chinese machine as one without adapters, so a VPN on it read as none.

A title is told from a field by its indentation. The colon cannot tell them: French writes a
space before it, in titles ("Carte Ethernet Ethernet :") as in fields, and a field may have no
dots before its colon ("   Liste de recherche de suffixes DNS propres à la connexion :", German
"   Verbindungsspezifisches DNS-Suffix:"). ipconfig indents fields (by three spaces, by eight on
Windows XP) and never its titles, and a copy indented as a whole keeps the difference: titles are
the lines ending in a colon at the least indentation any such line has. A line at that
indentation whose label ends in dot padding ("Default Gateway . . . :") or that holds a value
after a padded colon is a field all the same.
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
    # French (Windows 10 19042, Windows 8, and a Windows 7 3G connection)
    ("Carte Ethernet", "ethernet"),
    ("Carte réseau sans fil", "wireless"),
    ("Carte inconnue", "unknown"),
    ("Carte PPP", "ppp"),
    ("Carte Tunnel", "tunnel"),
    # Spanish
    ("Adaptador de Ethernet", "ethernet"),
    ("Adaptador de LAN inalámbrica", "wireless"),
    ("Adaptador desconocido", "unknown"),
    ("Adaptador de túnel", "tunnel"),
    # Italian ("Scheda PPP" seen only on Windows XP, "Scheda Tunnel" on Vista)
    ("Scheda Ethernet", "ethernet"),
    ("Scheda LAN wireless", "wireless"),
    ("Scheda sconosciuta", "unknown"),
    ("Scheda PPP", "ppp"),
    ("Scheda Tunnel", "tunnel"),
    # Portuguese (Brazil)
    ("Adaptador Ethernet", "ethernet"),
    ("Adaptador de Rede sem Fio", "wireless"),
    ("Adaptador desconhecido", "unknown"),
)
# A line that may be a title: a name, then a colon ending the line. The name must not end in
# dot padding, hold a padded separator before a value ("Gateway predefinito . . . : ::") or be an
# address continuing a field ("fe80::1%12"); which such lines are titles is left to indentation.
_TITLE = re.compile(r"^(?P<indent>\s*)(?P<title>\S(?:.*\S)?)\s*:\s*$")
_PADDED_SEPARATOR = re.compile(r"[ .]:\s")
_ADDRESS_LINE = re.compile(r"^[0-9A-Fa-f:.%]+$")
# "Label . . . : value", "Label:" or "Label :" (no padding). The label holds no colon, so an
# address on a continuation line ("fe80::1%12") is not a field.
_FIELD = re.compile(r"^\s*(?P<label>\S[^:]*?)[ .]*:(?: (?P<value>.*))?$")
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
    "Statut du média": "media",
    "Adresse IPv4": "ipv4",
    "Descripción": "description",
    "Estado de los medios": "media",
    "Dirección IPv4": "ipv4",
    "Descrizione": "description",
    "Stato supporto": "media",
    "Indirizzo IPv4": "ipv4",
    "Indirizzo IP": "ipv4",  # Windows XP
    "Descrição": "description",
    "Estado da mídia": "media",
    "Endereço IPv4": "ipv4",
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
        "Média déconnecté",
        "medios desconectados",
        "Supporto disconnesso",
        "mídia desconectada",
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


def _title(line: str) -> re.Match[str] | None:
    """The match of `line` when it has a title's shape (see `_TITLE`), else None."""
    match = _TITLE.match(line)
    if match is None:
        return None
    title = match["title"]
    if title.endswith(".") or _PADDED_SEPARATOR.search(title) or _ADDRESS_LINE.match(title):
        return None
    return match


def _header(title: str) -> tuple[str, str]:
    """(kind, name) of a section title. Raises ParseError for a title in no table."""
    for prefix, kind in HEADERS:
        if title.startswith(prefix + " "):
            return kind, title[len(prefix) + 1 :]
    raise ParseError("ipconfig: adapter type not in the language tables")


def parse_ipconfig(text: str) -> list[Adapter]:
    lines = text.split("\n")
    shaped = [match for line in lines if (match := _title(line))]
    title_indent = min((len(match["indent"]) for match in shaped), default=0)
    sections: list[tuple[str, str, dict[str, list[str]]]] = []
    for line in lines:
        title = _title(line)
        if title is not None and len(title["indent"]) <= title_indent:
            kind, name = _header(title["title"])
            sections.append((kind, name, {}))
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
