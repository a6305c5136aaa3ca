"""`zfs get -t filesystem encryption,keystatus` (OpenZFS) into each dataset's encryption at rest.

A ZFS dataset is no block device: lsblk shows only the pool's disks ("zfs_member"), and
/proc/self/mounts names the dataset ("rpool/USERDATA/li_x1y2z3", type "zfs"). Whether it is
encrypted is ZFS' own property `encryption`: "off", or the cipher suite ("aes-256-gcm"; the six
suites of zfsprops(7)). A dataset created under an encrypted one inherits its encryption root's
key and shows that root's cipher as its own `encryption` (zfs-load-key(8); openzfs/zfs#6624), so
each dataset's own row says whether it is encrypted; an encrypted pool may still hold a dataset
made with `encryption=off` (openzfs/zfs#12181). `keystatus` is "available" or "unavailable"
for an encrypted dataset and "-" for one that is not (pdf/zfs_exporter#70); a dataset whose key
is not loaded cannot be mounted, so a mounted one reads "available".

The agent asks for the table zfs prints for people (header NAME PROPERTY VALUE SOURCE, columns
padded with spaces, every value left-aligned under its header), not `-H`: that is the form
published outputs show. Each row is cut where the header's columns start, so a name or a
source with spaces ("inherited from rpool") stays whole. Rows of other properties are ignored;
anything else not understood is a ParseError, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devposture.agent.parsers.errors import ParseError

_HEADER = ("NAME", "PROPERTY", "VALUE", "SOURCE")
# zfsprops(7): encryption=off|on|aes-128-ccm|aes-192-ccm|aes-256-ccm|aes-128-gcm|aes-192-gcm|
# aes-256-gcm; "on" is only what is asked for at creation, zfs get shows the suite chosen.
CIPHERS = frozenset(f"aes-{bits}-{mode}" for bits in (128, 192, 256) for mode in ("ccm", "gcm"))
_KEY_STATES = frozenset({"available", "unavailable", "-"})


@dataclass(frozen=True)
class DatasetEncryption:
    """One dataset's `encryption` ("off" or a suite) and `keystatus` ("" when not listed)."""

    name: str
    encryption: str
    keystatus: str = ""

    @property
    def encrypted(self) -> bool:
        return self.encryption != "off"

    @property
    def method(self) -> str:
        """As the evidence names it: "ZFS aes-256-gcm", or "" when not encrypted."""
        return f"ZFS {self.encryption}" if self.encrypted else ""


def parse_zfs_get(text: str) -> dict[str, DatasetEncryption]:
    """Each dataset with an `encryption` row, by name (empty when zfs lists no dataset)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    starts = _columns(lines[0])
    values: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        name, prop, value, _ = _cut(line, starts)
        if not name or not prop or not value:
            raise ParseError("zfs get: a row without a name, property or value")
        values.setdefault(name, {})[prop] = value
    found: dict[str, DatasetEncryption] = {}
    for name, props in values.items():
        if "encryption" not in props:
            continue
        found[name] = _dataset(name, props["encryption"], props.get("keystatus", ""))
    return found


def _dataset(name: str, encryption: str, keystatus: str) -> DatasetEncryption:
    if encryption != "off" and encryption not in CIPHERS:
        raise ParseError("zfs get: an encryption value that is neither off nor a known suite")
    if keystatus and keystatus not in _KEY_STATES:
        raise ParseError("zfs get: a keystatus that is not available, unavailable or -")
    if keystatus == "-" and encryption != "off":
        raise ParseError("zfs get: an encrypted dataset without a key status")
    return DatasetEncryption(name, encryption, keystatus)


def _columns(header: str) -> list[int]:
    """Where each of the four columns starts, from the header line."""
    words = [(m.group(), m.start()) for m in re.finditer(r"\S+", header)]
    if tuple(w for w, _ in words) != _HEADER:
        raise ParseError("zfs get: the header is not NAME PROPERTY VALUE SOURCE")
    return [start for _, start in words]


def _cut(line: str, starts: list[int]) -> list[str]:
    """The four values of a row, each from its column's start to the next column's."""
    bounds = [*starts[1:], len(line)]
    cells = [line[start:end] for start, end in zip(starts, bounds, strict=True)]
    for cell, start in zip(cells[1:], starts[1:], strict=True):
        if line[start - 1 : start] not in (" ", ""):
            raise ParseError("zfs get: a row whose values are not under the header's columns")
        if cell[:1] == " ":
            raise ParseError("zfs get: a row whose values are not under the header's columns")
    return [cell.strip() for cell in cells]
