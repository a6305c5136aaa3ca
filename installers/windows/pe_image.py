"""Is a file a 64-bit (x86-64) Windows program? Read from its PE headers, nothing run.

The MSI carries the agent frozen on a Windows build machine. Its main executable must be a
PE32+ image for x86-64 (machine 0x8664, optional header magic 0x20b), an executable and not a
DLL, for the console or GUI subsystem. Anything else (a Linux or macOS build, a 32-bit or ARM64
freeze, a truncated copy, a placeholder) is refused with what it is and how to get the right one.

Layout (Microsoft's "PE Format" specification): the DOS header starts with "MZ" and holds the
offset of the PE signature at 0x3c; "PE\\0\\0" is followed by the 20-byte COFF file header
(Machine, NumberOfSections, TimeDateStamp, PointerToSymbolTable, NumberOfSymbols,
SizeOfOptionalHeader, Characteristics), then the optional header (Magic first, Subsystem at
offset 68 in both PE32 and PE32+).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MACHINE_AMD64 = 0x8664
MACHINES = {0x14C: "x86 (32-bit)", 0x8664: "x86-64", 0xAA64: "ARM64", 0x1C4: "ARM (32-bit)",
            0x200: "Itanium"}  # fmt: skip
MAGIC_PE32 = 0x10B
MAGIC_PE32_PLUS = 0x20B
CHARACTERISTIC_EXECUTABLE = 0x0002
CHARACTERISTIC_DLL = 0x2000
SUBSYSTEM_GUI = 2
SUBSYSTEM_CONSOLE = 3
SUBSYSTEMS = {1: "native (a driver)", 2: "Windows GUI", 3: "Windows console", 10: "EFI application",
              11: "EFI boot service driver", 12: "EFI runtime driver"}  # fmt: skip
# The first bytes of other systems' programs, to say what was given instead.
FOREIGN = {b"\x7fELF": "an ELF file (a Linux program)",
           b"\xcf\xfa\xed\xfe": "a 64-bit Mach-O file (a macOS program)",
           b"\xce\xfa\xed\xfe": "a 32-bit Mach-O file (a macOS program)",
           b"\xca\xfe\xba\xbe": "a universal Mach-O file (a macOS program)",
           b"#!": "a script"}  # fmt: skip
# The PE signature, the COFF header and the optional header up to its Subsystem field.
_PE_HEADERS = 4 + 20 + 70


class NotAnX64Program(Exception):
    """The file is not a 64-bit x86-64 Windows executable; the message says what it is."""


@dataclass(frozen=True)
class PEHeaders:
    machine: int
    characteristics: int
    magic: int
    subsystem: int


def read_headers(path: Path) -> PEHeaders:
    """The PE headers of `path`; NotAnX64Program when it has none (not a PE, or cut short)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(0x40)
            size = path.stat().st_size
            if not data.startswith(b"MZ"):
                for magic, what in FOREIGN.items():
                    if data.startswith(magic):
                        raise NotAnX64Program(f"{path} is {what}, not a Windows program")
                raise NotAnX64Program(f"{path} is not a Windows program (no MZ header)")
            if len(data) < 0x40:
                raise NotAnX64Program(
                    f"{path} is cut short ({size} bytes): its DOS header is incomplete"
                )
            (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
            handle.seek(pe_offset)
            headers = handle.read(_PE_HEADERS)
            sections = b""
            if len(headers) == _PE_HEADERS:
                count, optional_size = struct.unpack_from("<H12xH", headers, 6)
                handle.seek(pe_offset + 24 + optional_size)
                sections = handle.read(40 * count)
    except OSError as error:
        raise NotAnX64Program(f"{path} cannot be read: {error.strerror}") from error
    if len(headers) < _PE_HEADERS:
        raise NotAnX64Program(
            f"{path} ends ({size} bytes) before its PE headers do (at {pe_offset + _PE_HEADERS}):"
            " it is cut short")  # fmt: skip
    if headers[:4] != b"PE\0\0":
        raise NotAnX64Program(f"{path} is a DOS program or damaged: no PE signature")
    machine, _, _, _, _, optional_size, characteristics = struct.unpack_from("<HHIIIHH", headers, 4)
    if optional_size < 70:
        raise NotAnX64Program(f"{path} has no optional header: it is an object file, not a program")
    (magic,) = struct.unpack_from("<H", headers, 24)
    (subsystem,) = struct.unpack_from("<H", headers, 24 + 68)
    (count,) = struct.unpack_from("<H", headers, 6)
    if len(sections) < 40 * count:
        raise NotAnX64Program(
            f"{path} ends ({size} bytes) within its section table: it is cut short"
        )
    for index in range(count):
        raw_size, raw_offset = struct.unpack_from("<II", sections, 40 * index + 16)
        if raw_size and raw_offset + raw_size > size:
            name = sections[40 * index : 40 * index + 8].rstrip(b"\0").decode("ascii", "replace")
            raise NotAnX64Program(
                f"{path} ends ({size} bytes) before its section {name} does "
                f"({raw_offset + raw_size} bytes): it is cut short")  # fmt: skip
    return PEHeaders(machine, characteristics, magic, subsystem)


def check_x64_program(path: Path) -> PEHeaders:
    """The headers of `path` if it is a PE32+ x86-64 console or GUI program, else
    NotAnX64Program saying what it is instead."""
    headers = read_headers(path)
    machine = MACHINES.get(headers.machine, f"machine 0x{headers.machine:04x}")
    if headers.machine != MACHINE_AMD64:
        raise NotAnX64Program(f"{path} is a Windows program for {machine}, not for x86-64")
    if headers.magic != MAGIC_PE32_PLUS:
        kind = "PE32 (32-bit)" if headers.magic == MAGIC_PE32 else f"magic 0x{headers.magic:x}"
        raise NotAnX64Program(f"{path} has a {kind} optional header, not PE32+")
    if headers.characteristics & CHARACTERISTIC_DLL:
        raise NotAnX64Program(f"{path} is a DLL, not a program")
    if not headers.characteristics & CHARACTERISTIC_EXECUTABLE:
        raise NotAnX64Program(f"{path} is not marked executable (an unlinked or broken image)")
    if headers.subsystem not in (SUBSYSTEM_CONSOLE, SUBSYSTEM_GUI):
        what = SUBSYSTEMS.get(headers.subsystem, f"subsystem {headers.subsystem}")
        raise NotAnX64Program(f"{path} is for the {what} subsystem, not a console or GUI program")
    return headers
