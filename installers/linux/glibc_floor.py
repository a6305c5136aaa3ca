"""The oldest glibc a folder of Linux binaries runs on: the highest GLIBC_x.y they require.

Each ELF file lists, per library, the symbol versions it needs (`objdump -p`, "Version
References"); a glibc older than the highest GLIBC_ version named there refuses to load it.

    python3 installers/linux/glibc_floor.py FOLDER      # prints e.g. 2.35
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
_REQUIRED = re.compile(r"^\s+0x[0-9a-f]+ 0x[0-9a-f]+ \d+ GLIBC_(\d+)\.(\d+)(?:\.\d+)?$", re.M)


def is_elf(path: Path) -> bool:
    if not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as handle:
        return handle.read(4) == ELF_MAGIC


def required_versions(path: Path) -> set[tuple[int, int]]:
    """The GLIBC_ versions one ELF file requires (objdump, from binutils)."""
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return {(int(major), int(minor)) for major, minor in _REQUIRED.findall(out)}


def glibc_floor(folder: Path) -> str:
    """The highest GLIBC_ version any ELF file under `folder` requires, as "2.35"."""
    versions: set[tuple[int, int]] = set()
    for path in sorted(folder.rglob("*")):
        if is_elf(path):
            versions |= required_versions(path)
    if not versions:
        raise SystemExit(f"no ELF file under {folder} requires a glibc version")
    major, minor = max(versions)
    return f"{major}.{minor}"


if __name__ == "__main__":
    print(glibc_floor(Path(sys.argv[1])))
