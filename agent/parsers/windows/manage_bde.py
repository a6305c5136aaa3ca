"""`manage-bde -status`: BitLocker's view of every volume, in the machine's language.

Each volume starts with a header ("Volume C: [OS]", German 'Volume "C:" []', Russian
"Том C: [Windows ]", Chinese "卷 C: [OS]", or "Volume \\\\?\\Volume{...}\\ [Recovery]" for one
without a letter) and has "Label:   value" lines (Chinese Windows: "转换状态:", "保护状态:").
A volume counts as encrypted only when its conversion is complete AND protection is on:
"Fully Decrypted" is not encrypted, an encryption still in progress is not yet, and a fully
encrypted volume with protection off (suspended) keeps its key in the clear, so it is not
either. A locked volume is encrypted (BitLocker will not open it). Any
other combination is unknown (None). Wordings come from recorded outputs (see the fixture
README); an unknown one is a ParseError. Error lines ("ERROR: ...") are a ParseError too: the
probe looks for access denial before parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_HEADER = re.compile(
    r'^\s*(?:Volume|Том|卷)\s+"?(?P<volume>[A-Za-z]:|\\\\\?\\Volume\{[^}]+\}\\)"?\s*\[(?P<label>.*)\]\s*$'
)
_FIELD = re.compile(r"^\s*(?P<label>[^:]+?)\s*:\s*(?P<value>.*)$")

_LABELS: dict[str, str] = {
    "Conversion Status": "conversion",
    "Protection Status": "protection",
    "Encryption Method": "method",
    "Lock Status": "lock",
    "Konvertierungsstatus": "conversion",
    "Schutzstatus": "protection",
    "Verschlüsselungsmethode": "method",
    "Sperrungsstatus": "lock",
    "Состояние преобразования": "conversion",
    "Состояние защиты": "protection",
    "Метод шифрования": "method",
    "Состояние блокировки": "lock",
    "转换状态": "conversion",
    "保护状态": "protection",
    "加密方法": "method",
    "锁定状态": "lock",
}
_CONVERSION: dict[str, str] = {
    "Fully Encrypted": "encrypted",
    "Used Space Only Encrypted": "encrypted",
    "Fully Decrypted": "decrypted",
    "Encryption in Progress": "in progress",
    "Encryption In Progress": "in progress",
    "Decryption in Progress": "in progress",
    "Encryption Paused": "in progress",
    "Decryption Paused": "in progress",
    "Unknown": "unknown",
    "Vollständig entschlüsselt": "decrypted",
    "Зашифровано только занятое место": "encrypted",
    "Выполняется шифрование": "in progress",
    "完全解密": "decrypted",
    "仅加密了已用空间": "encrypted",
}
_PROTECTION: dict[str, bool | None] = {
    "Protection On": True,
    "Protection Off": False,
    "Unknown": None,
    "Der Schutz ist aktiviert.": True,
    "Der Schutz ist deaktiviert.": False,
    "Защита отключена": False,
    "保护已启用": True,
    "保护关闭": False,
}
_NO_METHOD = frozenset({"None", "Kein", "无", ""})


@dataclass(frozen=True)
class BitLockerVolume:
    mount_point: str  # "C:", or "" for a volume without a drive letter
    volume: str  # the drive letter or the \\?\Volume{...}\ path
    conversion: str  # "encrypted", "decrypted", "in progress" or "unknown"
    protection_on: bool | None
    locked: bool
    algorithm: str  # "XTS-AES 128", "" when none
    encrypted: bool | None


def _encrypted(conversion: str, protection: bool | None, locked: bool) -> bool | None:
    if locked:
        return True
    if conversion in ("decrypted", "in progress") or protection is False:
        return False
    if conversion == "encrypted" and protection is True:
        return True
    return None


def _volume(volume: str, fields: dict[str, str]) -> BitLockerVolume:
    conversion = fields.get("conversion")
    protection = fields.get("protection")
    if conversion not in _CONVERSION or protection not in _PROTECTION:
        raise ParseError("manage-bde: conversion or protection status not in the tables")
    locked = fields.get("lock", "") == "Locked"
    method = fields.get("method", "")
    state = _CONVERSION[conversion]
    protected = _PROTECTION[protection]
    return BitLockerVolume(
        mount_point=volume if volume.endswith(":") else "",
        volume=volume,
        conversion=state,
        protection_on=protected,
        locked=locked,
        algorithm="" if method in _NO_METHOD else method,
        encrypted=_encrypted(state, protected, locked),
    )


def parse_manage_bde_status(text: str) -> list[BitLockerVolume]:
    volumes: list[tuple[str, dict[str, str]]] = []
    for line in text.split("\n"):
        if line.strip().startswith("ERROR:"):
            raise ParseError("manage-bde reported an error")
        header = _HEADER.match(line)
        if header:
            volumes.append((header.group("volume").upper(), {}))
            continue
        field = _FIELD.match(line)
        if field is None or not volumes:
            continue
        key = _LABELS.get(field.group("label"))
        if key is not None:
            volumes[-1][1].setdefault(key, field.group("value").strip())
    if not volumes:
        raise ParseError("manage-bde: no volume found")
    return [_volume(volume, fields) for volume, fields in volumes]
