"""Whether a file is a macOS program for the Macs the package installs on.

The .pkg carries the agent frozen on a macOS build machine (installers/README.md); a Linux
program, a Windows one or a placeholder must never be packaged as if it were. A 64-bit Mach-O
executable for x86_64 or arm64 is accepted, thin or universal (fat: several slices, each a
Mach-O of its own); anything else is refused with what it is and how to get the right file.
"""

from __future__ import annotations

import struct
from pathlib import Path

MH_MAGIC_64 = 0xFEEDFACF  # a thin 64-bit Mach-O, in the byte order of its CPU (little on both)
MH_MAGIC_32 = 0xFEEDFACE
FAT_MAGIC = 0xCAFEBABE  # a universal binary's header, always big-endian
FAT_MAGIC_64 = 0xCAFEBABF
MH_EXECUTE = 2
CPU_TYPES = {0x01000007: "x86_64", 0x0100000C: "arm64"}
# The `file`-style names of the other CPU types a slice may have, for the messages.
OTHER_CPU_TYPES = {7: "i386", 12: "arm", 18: "ppc", 0x01000012: "ppc64", 0x0200000C: "arm64_32"}
# A universal binary has a handful of slices; Java's class files share FAT_MAGIC and have
# their version (45 and up) where the slice count would be.
MAX_SLICES = 16

FIX = (
    "freeze the agent on a macOS build machine (installers/README.md: the native-installers"
    " workflow, or installers/python/freeze.py on a Mac) and give that folder to --frozen"
)


class NotMacProgram(ValueError):
    """The file is not a macOS executable the package can carry; the message says why."""


def _what_else(head: bytes) -> str:
    if head.startswith(b"MZ"):
        return "a Windows program (PE, starts with MZ)"
    if head.startswith(b"\x7fELF"):
        return "a Linux program (ELF)"
    if head.startswith(b"#!"):
        return "a script (starts with #!), not a frozen program"
    if not head:
        return "empty"
    return f"not a program macOS runs (it starts with {head[:4].hex()})"


def _thin(data: bytes, where: str) -> str:
    """The architecture of the 64-bit Mach-O executable at the start of `data`."""
    if len(data) < 16:
        raise NotMacProgram(f"{where} is cut short (a Mach-O header is 32 bytes)")
    (magic,) = struct.unpack_from("<I", data)
    if magic == MH_MAGIC_32 or struct.unpack_from(">I", data)[0] == MH_MAGIC_32:
        raise NotMacProgram(f"{where} is a 32-bit Mach-O, which macOS 11 and later do not run")
    if magic != MH_MAGIC_64:
        raise NotMacProgram(f"{where} is {_what_else(data[:4])}")
    cpu, _subtype, filetype = struct.unpack_from("<iII", data, 4)
    cpu &= 0xFFFFFFFF
    if filetype != MH_EXECUTE:
        raise NotMacProgram(
            f"{where} is a Mach-O of file type {filetype}, not an executable (type 2): pass the"
            " frozen program itself, not a library"
        )
    if cpu not in CPU_TYPES:
        name = OTHER_CPU_TYPES.get(cpu, hex(cpu))
        raise NotMacProgram(f"{where} is for {name}; a Mac needs x86_64 or arm64")
    return CPU_TYPES[cpu]


def architectures(path: Path) -> list[str]:
    """The Mac architectures `path` runs on (["x86_64", "arm64"] for a universal2 program), or
    NotMacProgram naming what the file is instead and how to get the right one."""
    data = path.read_bytes()
    try:
        if len(data) >= 8 and struct.unpack_from(">I", data)[0] in (FAT_MAGIC, FAT_MAGIC_64):
            return _fat(data, path)
        return [_thin(data, str(path))]
    except NotMacProgram as exc:
        raise NotMacProgram(f"{exc}: {FIX}") from None


def _fat(data: bytes, path: Path) -> list[str]:
    magic, count = struct.unpack_from(">II", data)
    if not 0 < count <= MAX_SLICES:
        raise NotMacProgram(f"{path} starts like a universal binary but has {count} slices")
    wide = magic == FAT_MAGIC_64
    size = 32 if wide else 20
    found: list[str] = []
    for index in range(count):
        at = 8 + index * size
        if at + size > len(data):
            raise NotMacProgram(f"{path} is cut short in its list of slices")
        if wide:
            _cpu, _sub, offset, length = struct.unpack_from(">iIQQ", data, at)
        else:
            _cpu, _sub, offset, length = struct.unpack_from(">iIII", data, at)
        if offset + length > len(data) or length < 32:
            raise NotMacProgram(f"{path}: slice {index + 1} lies outside the file")
        try:
            found.append(_thin(data[offset : offset + length], f"{path} (slice {index + 1})"))
        except NotMacProgram as exc:
            if "a Mac needs" not in str(exc):
                raise
    if not found:
        raise NotMacProgram(f"{path} is a universal binary without an x86_64 or arm64 slice")
    return sorted(set(found), key=["x86_64", "arm64"].index)
