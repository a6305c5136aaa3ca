"""A real full file system for the tests of full disks: a small tmpfs mounted for the test,
and a file that takes its every free byte (deleted to give the space back).

Mounting needs root: a test using it is skipped with that reason only on a developer machine
that is not root; in CI (CI set) it fails instead, so that it cannot silently stop running.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _need_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("mounting a tmpfs needs root, and CI runs the suite as root")
    pytest.skip("mounting a tmpfs needs root: run the suite as root (CI does)")


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A new, empty tmpfs of `size` (mount's syntax, e.g. 4m) at `directory`."""
    _need_root()
    directory.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        yield directory
    finally:
        done = subprocess.run(
            ["umount", str(directory)], capture_output=True, timeout=60, check=False
        )
        if done.returncode != 0:  # something still holds a file there: detach it anyway
            subprocess.run(["umount", "-l", str(directory)], check=True, timeout=60)


def fill(directory: Path) -> Path:
    """Take every free byte of the file system holding `directory` with one file (written
    in ever smaller pieces until even one byte is refused); the file, to delete later."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for piece in (1 << 20, 1 << 16, 1 << 12, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * piece)
    finally:
        os.close(fd)
    with pytest.raises(OSError):  # really full
        (directory / "one-more-byte").write_bytes(b"x")
    return filler
