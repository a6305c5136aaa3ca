"""Files that appear only whole.

* A file under a name that was free: audit bundles (exported here, or streamed from a
  collector) are written beside their name, then put in place (`partial_beside`,
  `put_in_place`).
* A file replaced whole, and on disk before it is used (`write_atomic`): the server's
  certificate and the CA list a running collector reads, its copy of the policy in force.

Why a name of its own for each bundle written: with one fixed `OUT.partial`, a partial left by an
export that was killed (SIGKILL, a power cut) made the next export fail ("File exists") and
then deleted it, and two exports to the same name deleted each other's.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path


def partial_beside(out: Path) -> Path:
    """A name beside `out` for writing it, no other writing's: `OUT.<random>.partial`."""
    return out.with_name(f"{out.name}.{secrets.token_hex(4)}.partial")


def put_in_place(partial: Path, out: Path) -> None:
    """Give the written `partial` the name `out`, never replacing a file that has that name
    meanwhile (FileExistsError naming `out`)."""
    try:
        os.link(partial, out)  # refuses, where a rename would replace
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "File exists", str(out)) from None
    except OSError:  # a file system without hard links (FAT, some network shares)
        if out.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(out)) from None
        partial.rename(out)
        return
    partial.unlink()


def fsync_dir(path: Path) -> None:
    """Make a rename in folder `path` durable (a power cut after it keeps the new name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temporary(path: Path, data: bytes, mode: int) -> Path:
    """`data` on disk under a temporary name beside `path`, for a rename over it."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.chmod(mode)
    return temporary


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` so that a reader (the running server) sees the old or the new file whole,
    and a power cut leaves one of them, never an empty file."""
    write_temporary(path, data, mode).replace(path)
    fsync_dir(path.parent)
