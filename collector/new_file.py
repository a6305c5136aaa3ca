"""A file that appears only whole, under a name that was free: audit bundles (exported here,
or streamed from a collector) are written beside their name, then put in place.

Why a name of its own for each writing: with one fixed `OUT.partial`, a partial left by an
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
