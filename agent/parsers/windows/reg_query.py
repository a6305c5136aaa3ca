"""`reg query <key>`: the values of one registry key, or the fact that it does not exist.

Output is the key's full name on its own line, then "    Name    REG_TYPE    Data" lines. A
missing key prints one error line ("ERROR: The system was unable to find the specified
registry key or value." in English, "错误: 系统找不到指定的注册表项或值。" on Chinese Windows, its
Traditional Chinese and Japanese wordings below) and exits 1; that is an answer (no such
policy), not a failure. A wording no table has is not taken for a missing key.
"""

from __future__ import annotations

import re

from devposture.agent.parsers.errors import ParseError

_NOT_FOUND = (
    "unable to find the specified registry key or value",
    "找不到指定的注册表项或值",
    # Traditional Chinese, "錯誤: 系統找不到指定的登錄機碼或值。", and Japanese, "エラー: 指定された
    # レジストリ キーまたは値が見つかりませんでした" (tests/fixtures/windows/README.md, reg_query).
    "找不到指定的登錄機碼或值",
    "指定されたレジストリ キーまたは値が見つかりませんでした",
)
_VALUE = re.compile(r"^\s+(?P<name>.+?)\s{2,}(?P<type>REG_[A-Z_]+)(?:\s{2,}(?P<data>.*))?$")

RegistryValues = dict[str, tuple[str, str]]


def key_missing(text: str) -> bool:
    return any(message in text for message in _NOT_FOUND)


def parse_reg_query(text: str) -> RegistryValues:
    """{value name: (type, data)} of the key. Raises ParseError unless `text` is a listing."""
    if not any(line.startswith("HKEY_") for line in text.split("\n")):
        raise ParseError("reg query: no key in the output")
    values: RegistryValues = {}
    for line in text.split("\n"):
        match = _VALUE.match(line)
        if match:
            values[match.group("name")] = (match.group("type"), (match.group("data") or "").strip())
    return values


def dword(values: RegistryValues, name: str) -> int | None:
    """A REG_DWORD value ("0x4"), None when absent."""
    if name not in values:
        return None
    kind, data = values[name]
    if kind != "REG_DWORD":
        raise ParseError(f"reg query: {name} is not a REG_DWORD")
    try:
        return int(data, 16)
    except ValueError as exc:
        raise ParseError(f"reg query: {name} is not a number") from exc
