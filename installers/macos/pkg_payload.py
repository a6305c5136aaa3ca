"""What a package installs: every folder, file and symbolic link with its mode, before any
archive format is written (cpio_odc.py writes the Payload from it, bom.py the Bom).

Paths are relative to the install location ("/"): "" is that folder itself, "opt/x" below it.
Everything is owned by root:wheel (uid 0, gid 0 on macOS) whoever runs the build, and every
entry gets the same modification time, so the same input gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

CHUNK = 1 << 20
# What the frozen program's files keep of their modes: a program root runs must not be
# writable by anyone else, and needs no set-id or sticky bits.
KEPT_BITS = 0o755

Kind = Literal["dir", "file", "symlink"]


class PayloadError(ValueError):
    """The tree cannot be packaged as it is; the message says why and what to do."""


@dataclass(frozen=True)
class Entry:
    """One path of the payload. A file's contents are `source` (read when written) or `data`."""

    path: str
    kind: Kind
    mode: int  # permission bits only
    source: Path | None = None
    data: bytes | None = None
    target: str = ""  # a symbolic link's

    @property
    def st_mode(self) -> int:
        """Type and permission bits, as stat() gives them."""
        kinds = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK}
        return kinds[self.kind] | self.mode

    @property
    def size(self) -> int:
        if self.kind == "symlink":
            return len(self.target.encode())
        if self.kind == "dir":
            return 0
        if self.data is not None:
            return len(self.data)
        assert self.source is not None
        return self.source.stat().st_size

    @property
    def name(self) -> str:
        """The last component ("." for the install location itself)."""
        return PurePosixPath(self.path).name if self.path else "."

    @property
    def parent(self) -> str:
        parent = str(PurePosixPath(self.path).parent)
        return "" if parent == "." else parent

    def chunks(self) -> Iterator[bytes]:
        """The contents: a file's bytes, a link's target; nothing for a folder."""
        if self.kind == "symlink":
            yield self.target.encode()
        elif self.kind == "file" and self.data is not None:
            yield self.data
        elif self.kind == "file":
            assert self.source is not None
            with self.source.open("rb") as stream:
                while chunk := stream.read(CHUNK):
                    yield chunk


def _checked(path: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("..", ".") for part in pure.parts) or "\0" in path:
        raise PayloadError(f"{path!r}: payload paths are relative, without . or ..")
    return str(pure)


class Payload:
    """The tree being assembled: `entries()` lists it with every folder before its contents."""

    def __init__(self, root_mode: int = 0o755) -> None:
        self._entries: dict[str, Entry] = {"": Entry("", "dir", root_mode)}

    def _add(self, entry: Entry) -> None:
        if entry.path in self._entries:
            raise PayloadError(f"{entry.path} is in the payload twice")
        self.add_dir(entry.parent)
        self._entries[entry.path] = entry

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        """A folder and any missing parents (0755)."""
        path = _checked(path) if path else ""
        existing = self._entries.get(path)
        if existing is not None:
            if existing.kind != "dir":
                raise PayloadError(f"{path} is in the payload as a {existing.kind}, not a folder")
            return
        self._add(Entry(path, "dir", mode))

    def add_file(self, path: str, mode: int, *, source: Path | None = None,
                 data: bytes | None = None) -> None:  # fmt: skip
        if (source is None) == (data is None):
            raise PayloadError(f"{path}: give either a source file or the data")
        self._add(Entry(_checked(path), "file", mode, source=source, data=data))

    def add_symlink(self, path: str, target: str) -> None:
        """A symbolic link (mode 0755, as macOS makes them) to a relative `target`."""
        path = _checked(path)
        if target.startswith("/") or not target:
            raise PayloadError(f"{path} -> {target!r}: the payload's links are relative")
        self._add(Entry(path, "symlink", 0o755, target=target))

    def add_folder(self, path: str, source: Path) -> None:
        """`source`'s whole tree at `path`: folders, files (modes kept, less group and other
        write and set-id bits) and relative symbolic links that stay inside it. Anything
        else (a device, a socket, a link leading out of the folder) is refused."""
        self._copy(_checked(path), source, top=_checked(path))

    def _copy(self, path: str, source: Path, top: str) -> None:
        self.add_dir(path, stat.S_IMODE(source.stat().st_mode) & KEPT_BITS)
        for entry in sorted(os.scandir(source), key=lambda e: os.fsencode(e.name)):
            inside = f"{path}/{entry.name}"
            where = Path(entry.path)
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                target = str(where.readlink())
                landing = posixpath.normpath(posixpath.join(path, target))
                if target.startswith("/") or not landing.startswith(top + "/"):
                    raise PayloadError(
                        f"{where} -> {target} leads out of the frozen folder: the link would"
                        " point at nothing on the Mac; freeze again, or copy the file instead"
                    )
                self.add_symlink(inside, target)
            elif stat.S_ISDIR(info.st_mode):
                self._copy(inside, where, top)
            elif stat.S_ISREG(info.st_mode):
                self.add_file(inside, stat.S_IMODE(info.st_mode) & KEPT_BITS, source=where)
            else:
                raise PayloadError(f"{where} is neither a file, a folder nor a link")

    def set_mode(self, path: str, mode: int) -> None:
        """Change the mode of an entry already added."""
        entry = self._entries[_checked(path)]
        self._entries[entry.path] = dataclasses.replace(entry, mode=mode)

    def entries(self) -> list[Entry]:
        """Every entry, each folder before its contents, siblings by name (bytewise)."""
        return sorted(self._entries.values(),
                      key=lambda e: [p.encode() for p in PurePosixPath(e.path).parts])  # fmt: skip
