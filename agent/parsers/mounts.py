"""/proc/self/mounts (fstab(5) format): device, mount point, type, options, dump, pass.

Spaces and other special characters in paths are written as octal escapes ("\\040"). The lines
are in the order the mounts were made: of two at one mount point, the later hides the earlier."""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    device: str
    mount_point: str
    fs_type: str
    options: tuple[str, ...] = ()


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3:
            raise ParseError("mounts: a line has fewer than three fields")
        options = tuple(fields[3].split(",")) if len(fields) > 3 else ()
        mounts.append(Mount(_unescape(fields[0]), _unescape(fields[1]), fields[2], options))
    if not mounts:
        raise ParseError("mounts: empty")
    return mounts
