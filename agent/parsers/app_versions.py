"""Version numbers of installed chat clients, as the places that record them write them.

Every source the agent reads gives a WeChat or WeCom version in a different dress: a bare
dotted number from macOS's Info.plist ("4.1.5"), a Debian package version with an epoch and a
packager's suffix ("1:4.1.32.6005deepin2" for the deepin-wine WeCom), or the name of the
folder each Windows install keeps its binaries in ("[3.9.8.25]" for WeChat 3.x,
"4.0.0.26" for Weixin 4.x, "5.0.9.6029" for WeCom). These functions take those texts and
return the dotted number alone, or say they cannot: a version that is not understood is never
guessed, because the collector compares it with the policy's minimum.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from devposture.agent.parsers.errors import ParseError

_DOTTED = re.compile(r"\d+(?:\.\d+)+")
_EPOCH = re.compile(r"^\d+:")
# Windows install folders: "[3.9.8.25]" (WeChat 3.x), "4.0.0.26" (Weixin 4.x, WeCom).
_FOLDER = re.compile(r"^\[?(?P<version>\d+(?:\.\d+){2,})\]?$")
_MAX_PART = 10**9  # a longer part is not a version number any tool writes


def dotted_version(text: str) -> str:
    """`text` when it is exactly a dotted number ("4.1.5", "3.9.12.17"), else ParseError."""
    value = text.strip()
    if not _DOTTED.fullmatch(value):
        raise ParseError("not a dotted version number")
    return value


def package_version(text: str) -> str:
    """The dotted number at the start of a package version, without the epoch or a packager's
    suffix: "1:4.0.1.11-1" -> "4.0.1.11", "3.0.20.1618deepin5" -> "3.0.20.1618"."""
    match = _DOTTED.match(_EPOCH.sub("", text.strip()))
    if match is None:
        raise ParseError("the package version does not start with a dotted number")
    return match.group(0)


def folder_version(name: str) -> str | None:
    """The version a Windows install folder is named after, None for any other name."""
    match = _FOLDER.match(name.strip())
    return match.group("version") if match else None


def version_key(version: str) -> tuple[int, ...]:
    """The numbers of a dotted version, for ordering: "3.9.10.19" after "3.9.8.25"."""
    parts = tuple(int(p) for p in dotted_version(version).split("."))
    if any(p > _MAX_PART for p in parts):
        raise ParseError("a part of the version number is too large")
    return parts


def newest(versions: Iterable[str]) -> str | None:
    """The highest of `versions` by their numbers, None when there is none."""
    return max(versions, key=version_key, default=None)
