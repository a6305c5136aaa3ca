"""A POSIX.1 "odc" cpio archive (`cpio -o -H odc`), the format of a flat package's Payload and
Scripts (each then compressed with gzip).

Each member is a 76-character header of octal fields, its NUL-terminated name, then its data
with no padding; "TRAILER!!!" ends the archive. Names are "." and "./path" as `find .`
prints them (what pkgbuild writes). Every member is owned by uid 0 and gid 0 (root:wheel on
macOS), has the archive's one modification time, and a distinct inode number with one link,
so no reader takes two members for hard links of one file. A link's data is its target.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pkg_payload import Entry

MAGIC = b"070707"
TRAILER = "TRAILER!!!"
# Field widths in octal digits: dev ino mode uid gid nlink rdev mtime namesize filesize.
WIDTHS = (6, 6, 6, 6, 6, 6, 6, 11, 6, 11)


def _header(*, ino: int, mode: int, nlink: int, mtime: int, namesize: int, size: int) -> bytes:
    values = (0, ino, mode, 0, 0, nlink, 0, mtime, namesize, size)
    fields = []
    for value, width in zip(values, WIDTHS, strict=True):
        text = f"{value:0{width}o}"
        if len(text) > width:
            raise ValueError(f"{value} does not fit an odc header field of {width} octal digits")
        fields.append(text)
    return MAGIC + "".join(fields).encode("ascii")


class Writable(Protocol):
    """Where the archive goes: a file, a gzip.GzipFile."""

    def write(self, data: bytes, /) -> object: ...


def member_name(entry: Entry) -> str:
    return f"./{entry.path}" if entry.path else "."


def write(entries: Iterable[Entry], out: Writable, *, mtime: int) -> int:
    """Write the archive of `entries` (in their order: folders before their contents) to
    `out`; returns the number of members."""
    count = 0
    for ino, entry in enumerate(entries, start=1):
        name = member_name(entry).encode() + b"\0"
        size = entry.size
        out.write(_header(ino=ino, mode=entry.st_mode, nlink=2 if entry.kind == "dir" else 1,
                          mtime=mtime, namesize=len(name), size=size))  # fmt: skip
        out.write(name)
        written = 0
        for chunk in entry.chunks():
            out.write(chunk)
            written += len(chunk)
        if written != size:
            raise ValueError(f"{entry.source} changed while it was archived")
        count += 1
    trailer = TRAILER.encode() + b"\0"
    out.write(_header(ino=0, mode=0, nlink=1, mtime=0, namesize=len(trailer), size=0))
    out.write(trailer)
    return count
